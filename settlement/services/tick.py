"""The settlement tick: periodic work (Celery beat, ``manage.py settle_due``), run by a named system actor."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cpm.base.capabilities import Cap, use_case
from events.choices import EventStatus
from events.models import Event

from ..choices import BatchKind
from .customer_settlement import customer_settlements_create_due
from .event_settlement import event_settle


@use_case("settlement.tick", Cap.RUN_SETTLEMENT)
def settlement_tick(*, now: dt.datetime, actor: Any) -> dict[str, int]:
    """Periodic work: settle every COMPLETED event that has no settlement batch yet (after-event programs get
    CALCULATED settlements, season-end programs DEFERRED ones that feed the season's kW drop), then create the
    customer settlements that have come due. Idempotent."""
    pending = (Event.objects.filter(status=EventStatus.COMPLETED).exclude(settlement_batches__kind=BatchKind.EVENT)
               .select_related("program").order_by("end"))
    events = 0
    for event in pending:
        event_settle(event=event, now=now, actor=actor)
        events += 1
    due = customer_settlements_create_due(now=now, actor=actor)
    return {"events": events, "customer": len(due)}
