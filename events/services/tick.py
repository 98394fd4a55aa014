"""The scheduling tick: due events move through their statuses, completed after-event events go to settlement.

Run every minute by Celery beat (``events.tasks.tick``) as the named system actor ``system_actor("events.tick")``;
the actor is passed on to each status change, so the audit trail shows who moved the event.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction

from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, TransitionNotAllowed
from programs.choices import SettlementTiming

from ..choices import EventStatus
from ..models import Event
from .lifecycle import event_activate, event_complete, event_dispatch, settlement_hand_off

logger = logging.getLogger(__name__)


def _due_steps():
    """(count key, status the event is in, the instant field that makes it due, the service that moves it)."""
    return (
        ("dispatched", EventStatus.SCHEDULED, "notification_at", event_dispatch),
        ("activated", EventStatus.DISPATCHED, "start", event_activate),
        ("completed", EventStatus.ACTIVE, "end", event_complete),
    )


def _hand_off_completed(*, now: dt.datetime) -> int:
    """Completed after-event events not yet handed to settlement (e.g. completed before the hand-off existed, or a
    lost signal): each handed off in its own transaction."""
    done = 0
    for event in Event.objects.filter(status=EventStatus.COMPLETED, settlement_handed_off_at__isnull=True,
                                      program__settlement_timing=SettlementTiming.AFTER_EVENT).select_related(
                                      "program"):
        with transaction.atomic():
            done += settlement_hand_off(event, now=now)
    return done


@use_case("events.tick", Cap.MANAGE_EVENTS)
def events_tick(*, now: dt.datetime, actor: Any) -> dict[str, int]:
    """The scheduling tick (UTC, every minute): DISPATCHED at notification time, ACTIVE at start, COMPLETED at
    end, and completed after-event events handed to settlement. Idempotent; each event in its own transaction
    (one failing event is logged and does not stop the others)."""
    done = {"dispatched": 0, "activated": 0, "completed": 0, "handed_off": 0}
    for key, status, field, service in _due_steps():
        for event in Event.objects.filter(status=status, **{f"{field}__lte": now}).order_by(field, "pk"):
            try:
                service(event=event, now=now, actor=actor)
                done[key] += 1
            except (TransitionNotAllowed, ConflictError) as exc:
                logger.warning("events.tick: event %s: %s", event.pk, exc)
    done["handed_off"] = _hand_off_completed(now=now)
    return done
