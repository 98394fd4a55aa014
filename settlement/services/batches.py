"""Batch bookkeeping: a batch's start (chunks and items to do), each finished chunk's counts (safe across workers),
its completion and the planner statistics of the tables it filled."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from cpm.base.jobs import job_create, job_enqueue
from cpm.base.states import transition

from ..choices import BATCH_TRANSITIONS, BatchKind, BatchStatus
from ..models import SettlementBatch

MAX_ERRORS = 100  # errors kept on a batch (the newest); the counts say how many failed


def batch_chunk_done(*, batch_id: int, now: dt.datetime, actor: Any, counts: dict[str, int] | None = None,
                     errors: list[dict] | None = None) -> SettlementBatch:
    """Record one finished chunk (counters by conditional ``F()`` updates under the batch's row lock, safe across
    workers) and the errors of what it could not settle; the chunk that completes the batch moves it to COMPLETED
    (or COMPLETED_WITH_ERRORS), audited with ``actor`` (the chunk task's system actor).

    Run by ``cpm.base.jobs.chunk_run``'s ``on_done``, in the transaction that marks the job chunk done: a chunk is
    counted exactly once, however often it is delivered. An internal step of a batch already checked when it
    started: no capability check here."""
    # Under the batch's row lock the counters are read and written by one worker at a time: the new values are
    # computed here and written in one UPDATE (no re-read). No savepoint: it runs inside the chunk's transaction.
    # FOR NO KEY UPDATE (``no_key``), the lock an UPDATE of non-key columns takes: the chunk's own settlements and
    # those of the other workers' chunks hold FOR KEY SHARE on the batch (their key to it, ``cpm.base.setkeys``),
    # which a plain FOR UPDATE would wait for: two chunks would wait for each other (a deadlock).
    with transaction.atomic(savepoint=False):
        batch = SettlementBatch.objects.select_for_update(no_key=True).get(pk=batch_id)
        updates: dict[str, Any] = {"chunks_done": batch.chunks_done + 1}
        for key, value in (counts or {}).items():
            updates[f"items_{key}"] = getattr(batch, f"items_{key}") + value
        if errors:
            updates["errors"] = [*batch.errors, *errors][-MAX_ERRORS:]
        SettlementBatch.objects.filter(pk=batch_id).update(**updates)
        for field, value in updates.items():
            setattr(batch, field, value)
        if batch.chunks_done >= batch.chunks_total and batch.status == BatchStatus.RUNNING:
            final = BatchStatus.COMPLETED_WITH_ERRORS if (batch.errors or batch.items_failed) else BatchStatus.COMPLETED
            transition(obj=batch, to=final, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                       reason=f"{batch.chunks_done} chunks done", extra_updates={"finished_at": now})
            transaction.on_commit(lambda: _refresh_statistics(batch.kind))
        elif _grown(batch.chunks_done):
            transaction.on_commit(lambda: _refresh_statistics(batch.kind))
    return batch


def _grown(chunks_done: int) -> bool:
    """Whether the tables a batch fills have doubled their batch's rows since the last refresh: after 2, 4, 8, ...
    chunks (log2 of the chunks: 7 ``ANALYZE`` runs in a batch of 200 chunks; none after the first chunk, whose
    bookkeeping stays a fixed handful of statements). A batch may fill a table from nothing
    (a program's first season) or grow it 10x; with the statistics taken before, the planner takes the batch's rows
    for a handful and a chunk's statements read far more than their chunk (at N = 1,000,000 a season batch slowed
    down by a third after 685,000 accounts, its statistics taken before it started)."""
    return chunks_done >= 2 and chunks_done & (chunks_done - 1) == 0


def batch_errors_add(*, batch_id: int, errors: list[dict]) -> None:
    """Append ``errors`` to the batch's list (under its row lock: safe across workers), the newest kept."""
    with transaction.atomic():
        batch = SettlementBatch.objects.select_for_update(no_key=True).get(pk=batch_id)
        SettlementBatch.objects.filter(pk=batch_id).update(errors=[*batch.errors, *errors][-MAX_ERRORS:])


def batch_fail(*, batch_id: int, error: str, now: dt.datetime, actor: Any) -> None:
    """End a batch FAILED with ``error`` (words; its job failed: an unexpected exception in a chunk, or a chunk
    that made no progress after its attempts), audited with ``actor``; nothing if it already ended. Receiver side of
    ``cpm.base.jobs.job_failed`` (``settlement.models``); no capability check (the job's failure is the trigger)."""
    with transaction.atomic():
        batch = SettlementBatch.objects.select_for_update(no_key=True).filter(pk=batch_id).first()
        if batch is None or batch.status not in (BatchStatus.PENDING, BatchStatus.RUNNING):
            return
        SettlementBatch.objects.filter(pk=batch_id).update(errors=[*batch.errors, {"error": error}][-MAX_ERRORS:])
        transition(obj=batch, to=BatchStatus.FAILED, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                   reason=error[:500], extra_updates={"finished_at": now})


def batch_run_chunks(batch: SettlementBatch, *, job_kind: str, task_name: str, chunk_kwargs: list[dict],
                     items: int, now: dt.datetime, actor: Any) -> None:
    """Start ``batch`` (``start_batch``) and record its chunks as a job (``cpm.base.jobs``: one ``JobChunk`` per
    ``(task_name, kwargs)``, linked from ``batch.job``), sent once the caller's transaction commits."""
    job = job_create(kind=job_kind, subject=batch, chunks=[(task_name, kw) for kw in chunk_kwargs], now=now,
                     actor=actor)
    batch.job = job
    batch.save(update_fields=["job"])
    start_batch(batch, chunks=len(chunk_kwargs), items=items, now=now, actor=actor)
    job_enqueue(job)


# The tables a batch of each kind fills: their planner statistics are refreshed when it completes.
BATCH_TABLES = {BatchKind.EVENT: ("settlement_eventsettlement",),
                BatchKind.EVENT_RECALC: ("settlement_eventsettlement",),
                BatchKind.CUSTOMER: ("settlement_customersettlement", "settlement_settlementline"),
                BatchKind.SEASON: ("settlement_customersettlement", "settlement_settlementline")}


def _refresh_statistics(kind: str) -> None:
    """``ANALYZE`` the tables a batch filled, when it completes and while it grows (``_grown``) (PostgreSQL; a
    sample, well under a second). A batch writes a settlement per participant at once; until autovacuum gets to the
    table (if it runs at all), the planner would take its new rows for a handful and scan a whole program's
    settlements for every chunk of the rest of the batch, or of the next one."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in BATCH_TABLES.get(kind, ()):
                cursor.execute(f"ANALYZE {table}")


def start_batch(batch: SettlementBatch, *, chunks: int, items: int, now, actor) -> None:
    """Record the batch's work (chunks, items) and move it to RUNNING (straight to COMPLETED with nothing to do)."""
    batch.chunks_total, batch.items_total = chunks, items
    batch.save(update_fields=["chunks_total", "items_total"])
    if chunks == 0:
        transition(obj=batch, to=BatchStatus.RUNNING, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                   extra_updates={"started_at": now})
        transition(obj=batch, to=BatchStatus.COMPLETED, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                   reason="nothing to settle", extra_updates={"finished_at": now})
    else:
        transition(obj=batch, to=BatchStatus.RUNNING, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                   reason=f"{chunks} chunks of at most {settings.CPM_CHUNK_SIZE}", extra_updates={"started_at": now})
