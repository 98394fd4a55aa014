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


def _clock() -> dt.datetime:
    """The job's clock (progress and stall detection): the wall clock, not the batch's ``now``."""
    return dt.datetime.now(dt.UTC)


# Chunk tasks: acknowledged after they ran and returned to the broker if their worker dies (also the settings'
# defaults, stated here because these are the tasks that rely on it); idempotent through ``chunk_run``.
CHUNK_TASK = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(name="settlement.settle_event_chunk", **CHUNK_TASK)
def settle_event_chunk(*, batch_id: int, sp_first: int, sp_last: int, now: str,
                       job_chunk_id: int | None = None) -> dict | None:
    """One chunk of service points of an event batch, run once to completion (``cpm.base.jobs.chunk_run``): its
    settlements, the job chunk's "done" and the batch's counters and errors commit together. Any unexpected
    exception ends the job and the batch FAILED with the error in words. Returns the counts (None if the chunk was
    already done)."""
    from cpm.base.jobs import chunk_run

    from .models import SettlementBatch
    from .services import batch_chunk_done, event_settle_chunk

    when = _now(now)
    actor = system_actor("celery:settlement.settle_event_chunk")

    def body() -> tuple[dict, list]:
        errors: list[dict] = []
        batch = SettlementBatch.objects.get(pk=batch_id)
        return event_settle_chunk(batch=batch, sp_first=sp_first, sp_last=sp_last, now=when, actor=actor,
                                  errors=errors), errors

    def on_done(result: tuple[dict, list]) -> None:
        batch_chunk_done(batch_id=batch_id, now=when, actor=actor, counts=result[0], errors=result[1])

    result = chunk_run(chunk_id=job_chunk_id, now=_clock, body=body, on_done=on_done)
    return result[0] if result else None


@shared_task(name="settlement.settle_customer_chunk", **CHUNK_TASK)
def settle_customer_chunk(*, batch_id: int, account_first: int, account_last: int, period_kind: str,
                          now: str, job_chunk_id: int | None = None) -> dict | None:
    """One chunk of accounts of a season or billing-period batch, run once to completion like
    ``settle_event_chunk``."""
    from cpm.base.jobs import chunk_run

    from .models import SettlementBatch
    from .services import batch_chunk_done, customer_settle_chunk

    when = _now(now)
    actor = system_actor("celery:settlement.settle_customer_chunk")

    def body() -> tuple[dict, list]:
        errors: list[dict] = []
        batch = SettlementBatch.objects.select_related("program", "season").get(pk=batch_id)
        return customer_settle_chunk(batch=batch, account_first=account_first, account_last=account_last,
                                     period_kind=period_kind, now=when, actor=actor, errors=errors), errors

    def on_done(result: tuple[dict, list]) -> None:
        batch_chunk_done(batch_id=batch_id, now=when, actor=actor, counts=result[0], errors=result[1])

    result = chunk_run(chunk_id=job_chunk_id, now=_clock, body=body, on_done=on_done)
    return result[0] if result else None


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


@shared_task(name="settlement.interval_data_retire")
def interval_data_retire(*, now: str | None = None) -> dict:
    """Daily on beat: archive and drop the months of interval data older than ``CPM_INTERVAL_RETENTION_MONTHS``
    (nothing when it is 0); months unsettled events need are kept. Idempotent: a removed month is gone."""
    from django.conf import settings

    from .services.retention import interval_data_retire as retire

    months = int(getattr(settings, "CPM_INTERVAL_RETENTION_MONTHS", 0) or 0)
    if months <= 0:
        return {"removed": [], "kept": [], "disabled": True}
    result = retire(now=_now(now), keep_months=months, actor=system_actor("celery:settlement.interval_data_retire"))
    return {"removed": result.removed, "kept": result.kept}
