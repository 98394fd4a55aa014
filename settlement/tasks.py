"""Celery tasks of settlement: load by id, call one service, idempotent, keyword-only arguments.

``now`` travels as an ISO string (JSON serializer); the tick reads the clock once, at the edge.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from cpm.base.capabilities import system_actor


def _now(value: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if value else timezone.now()


@shared_task(name="settlement.settle_event")
def settle_event(*, event_id: int, now: str | None = None, recalculate: bool = False) -> int:
    """Settle (or recalculate) a completed event; returns the batch id."""
    from events.models import Event

    from .services import event_settle

    event = Event.objects.select_related("program").get(pk=event_id)
    return event_settle(event=event, now=_now(now), actor=system_actor("celery:settlement.settle_event"),
                        recalculate=recalculate).pk


@shared_task(name="settlement.settle_event_chunk", acks_late=True)
def settle_event_chunk(*, batch_id: int, sp_first: int, sp_last: int, now: str) -> dict:
    """One chunk of service points of an event batch; records progress on the batch (errors too)."""
    from .models import SettlementBatch
    from .services import batch_chunk_done, event_settle_chunk

    batch = SettlementBatch.objects.get(pk=batch_id)
    when = _now(now)
    actor = system_actor("celery:settlement.settle_event_chunk")
    try:
        counts = event_settle_chunk(batch=batch, sp_first=sp_first, sp_last=sp_last, now=when, actor=actor)
    except Exception as exc:
        batch_chunk_done(batch_id=batch_id, now=when, actor=actor, counts={"failed": 1},
                         error=f"service points {sp_first}..{sp_last}: {exc}")
        raise
    batch_chunk_done(batch_id=batch_id, now=when, actor=actor, counts=counts)
    return counts


@shared_task(name="settlement.settle_customer_chunk", acks_late=True)
def settle_customer_chunk(*, batch_id: int, account_first: int, account_last: int, period_kind: str,
                          now: str) -> dict:
    """One chunk of accounts of a season or billing-period batch."""
    from .models import SettlementBatch
    from .services import batch_chunk_done, customer_settle_chunk

    batch = SettlementBatch.objects.select_related("program", "season").get(pk=batch_id)
    when = _now(now)
    actor = system_actor("celery:settlement.settle_customer_chunk")
    counts = customer_settle_chunk(batch=batch, account_first=account_first, account_last=account_last,
                                   period_kind=period_kind, now=when, actor=actor)
    batch_chunk_done(batch_id=batch_id, now=when, actor=actor, counts=counts)
    return counts


@shared_task(name="settlement.settle_season")
def settle_season(*, program_id: int, season_id: int, now: str | None = None) -> int:
    from programs.models import Program, Season

    from .services import season_settle

    program = Program.objects.get(pk=program_id)
    season = Season.objects.get(pk=season_id, program=program)
    return season_settle(program=program, season=season, now=_now(now),
                         actor=system_actor("celery:settlement.settle_season")).pk


@shared_task(name="settlement.tick")
def tick(*, now: str | None = None) -> dict:
    """Beat tick (hourly): settle completed events without a batch, create due customer settlements."""
    from .services import settlement_tick

    return settlement_tick(now=_now(now), actor=system_actor("settlement.tick"))

# Interval-data load jobs live with meter data; imported here so Celery's autodiscovery registers them.
from .meterdata.tasks import run_meter_data_load  # noqa: E402, F401
