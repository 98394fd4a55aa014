"""``kill -9`` of a real Celery worker in the middle of an event settlement (issue 15): a new worker and the job
sweeper finish the batch by themselves, every participation settled exactly once, with the same amounts as an
undisturbed run (sum and a per-row hash), chunks_done == chunks_total and the job COMPLETED.

Needs PostgreSQL and Redis, e.g.
CELERY_BROKER_URL=redis://127.0.0.1:6379/10 DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_h_jobs \
    .venv/bin/python -m pytest tests/settlement/test_worker_killed.py -n 0
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import uuid
from decimal import Decimal

import pytest

from cpm.base.jobs import jobs_sweep
from cpm.models import Job, JobChunk
from programs.choices import IncentiveKind
from settlement import services
from settlement.choices import BatchStatus
from settlement.models import EventSettlement, SettlementBatch
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, write_hourly
from tests.workers import start_worker, stop_worker, wait_for

NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
PARTICIPANTS, CHUNK = 12, 2  # six chunks


def _digest(event) -> tuple[int, str, str]:
    """Rows, the sum of the amounts and a hash of every row (participation, status, kWh, amount, fingerprint)."""
    h, total, rows = hashlib.sha256(), Decimal(0), 0
    for pid, status, kwh, amount, fingerprint in EventSettlement.objects.filter(event=event).order_by(
            "participation_id").values_list("participation_id", "status", "kwh_avoided", "amount", "fingerprint"):
        h.update(f"{pid}:{status}:{kwh}:{amount}:{fingerprint}\n".encode())
        total += amount
        rows += 1
    return rows, str(total), h.hexdigest()


def _worker(queue: str, name: str, delay: float):
    return start_worker("tests.settlement.slow_worker", queue=queue, name=name,
                        env={"CPM_TEST_CHUNK_DELAY": str(delay)})


@pytest.mark.postgres
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_and_the_batch_completes_by_itself(settings):
    from cpm.celery import app

    settings.CPM_CHUNK_SIZE = CHUNK
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.25"))
    event = EventFactory(program=program)
    for n in range(PARTICIPANTS):
        sub = active_participant(program=program)
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), kwh=1.5 + 0.1 * n, overrides={h: 0.2 + 0.05 * n for h in event_hours()})
        ParticipationFactory(event=event, subscription=sub)

    # The undisturbed run (in this process), then its rows removed so the worker settles the same data again.
    old_eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    finally:
        app.conf.task_always_eager = old_eager
    reference = _digest(event)
    assert reference[0] == PARTICIPANTS and Decimal(reference[1]) > 0
    EventSettlement.objects.filter(event=event).delete()
    SettlementBatch.objects.filter(event=event).delete()

    queue = f"cpm-test-killed-{uuid.uuid4().hex[:8]}"
    old_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue  # this test's chunks (and the sweeper's re-sends) go to its own workers
    first = second = None
    try:
        first = _worker(queue, "first", delay=1.0)
        batch = services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
        batch.refresh_from_db()
        assert batch.chunks_total == PARTICIPANTS // CHUNK and not app.conf.task_always_eager

        # Kill the worker by its own PID once a chunk is done and another is under way.
        def mid_batch():
            done = SettlementBatch.objects.get(pk=batch.pk).chunks_done
            running = JobChunk.objects.filter(job_id=batch.job_id, status="running").exists()
            return 1 <= done < batch.chunks_total and running and done
        done_at_kill = wait_for(mid_batch, timeout=120, what="the first chunk")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
        batch.refresh_from_db()
        killed = list(JobChunk.objects.filter(job_id=batch.job_id, status="running").values_list("index", flat=True))
        assert batch.status == BatchStatus.RUNNING and batch.chunks_done < batch.chunks_total, done_at_kill
        assert len(killed) == 1  # the chunk the killed worker was running: nothing of it committed

        # A new worker takes what is still queued; the sweeper (beat's job, here every second with no stall
        # allowance) sends the killed worker's chunk again once its session (and row lock) is gone.
        second = _worker(queue, "second", delay=0.0)

        def completed():
            jobs_sweep(now=dt.datetime.now(dt.UTC), stall_seconds=0)
            return SettlementBatch.objects.get(pk=batch.pk).status != BatchStatus.RUNNING
        wait_for(completed, timeout=120, what="the batch to complete", step=1.0)
    finally:
        app.conf.task_default_queue = old_queue
        for proc in (first, second):
            if proc is not None:
                stop_worker(proc)

    batch.refresh_from_db()
    job = Job.objects.get(pk=batch.job_id)
    assert (batch.status, batch.chunks_done, batch.chunks_total, batch.items_calculated, batch.errors) == (
        BatchStatus.COMPLETED, PARTICIPANTS // CHUNK, PARTICIPANTS // CHUNK, PARTICIPANTS, [])
    assert (job.status, job.chunks_done, job.chunks_total) == (Job.Status.COMPLETED, batch.chunks_total,
                                                               batch.chunks_total)
    # Every participation settled exactly once, with the amounts of the undisturbed run.
    assert _digest(event) == reference
    assert JobChunk.objects.get(job=job, index=killed[0]).attempts == 2
    assert set(JobChunk.objects.filter(job=job).values_list("status", flat=True)) == {"done"}
