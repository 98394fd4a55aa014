"""Settlement batches as jobs (issue 15): each chunk is a job chunk run once to completion (its settlements, its
"done" mark and the batch's counters commit together); an unexpected exception ends the job and the batch FAILED
with the error in words; the sweeper sends a stalled chunk again, or fails the job and the batch naming it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base import jobs
from cpm.models import AuditEntry, Job, JobChunk
from programs.choices import IncentiveKind, SettlementTiming
from settlement import services
from settlement.choices import BatchStatus, PeriodKind
from settlement.models import CustomerSettlement, EventSettlement
from settlement.tasks import settle_event_chunk
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)


def _event(n: int):
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.25"))
    event = EventFactory(program=program)
    for _ in range(n):
        sub = active_participant(program=program)
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), overrides={h: 0.5 for h in event_hours()})
        ParticipationFactory(event=event, subscription=sub)
    return event


def test_event_batch_chunks_are_job_chunks_counted_once(settings):
    settings.CPM_CHUNK_SIZE = 2
    event = _event(5)
    with run_on_commit():
        batch = services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    batch.refresh_from_db()
    job = batch.job
    assert (batch.status, batch.chunks_done, batch.chunks_total, batch.items_calculated) == (
        BatchStatus.COMPLETED, 3, 3, 5)
    assert (job.kind, job.status, job.chunks_done, job.chunks_total, job.subject_id, job.actor_label) == (
        "event_settlement", Job.Status.COMPLETED, 3, 3, str(batch.pk), "system:tests")
    assert list(JobChunk.objects.filter(job=job).values_list("task_name", "status", "attempts")) == [
        ("settlement.settle_event_chunk", "done", 1)] * 3
    # A redelivered (or re-sent) chunk does nothing: no settlement twice, the batch's counters unchanged.
    chunk = JobChunk.objects.get(job=job, index=1)
    assert settle_event_chunk.apply(kwargs={**chunk.kwargs, "job_chunk_id": chunk.pk}).get() is None
    batch.refresh_from_db()
    assert (batch.chunks_done, batch.items_calculated, batch.items_unchanged) == (3, 5, 0)
    assert EventSettlement.objects.filter(event=event).count() == 5


def test_an_unexpected_exception_fails_the_job_and_the_batch_in_words(settings, monkeypatch):
    settings.CPM_CHUNK_SIZE = 2
    event = _event(5)
    real = services.event_settle_chunk
    second_chunk = sorted(p.service_point_id for p in event.participations.all())[2]

    def flaky(**kw):
        if kw["sp_first"] == second_chunk:
            raise ZeroDivisionError("float division by zero")
        return real(**kw)

    monkeypatch.setattr(services, "event_settle_chunk", flaky)
    with run_on_commit():
        batch = services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    batch.refresh_from_db()
    job = batch.job
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("Chunk 1 failed: ZeroDivisionError: float division by zero (at ")
    assert batch.status == BatchStatus.FAILED and batch.finished_at is not None
    assert batch.errors == [{"error": job.error}]
    assert batch.chunks_done == 1  # chunk 0 done; chunk 1 rolled back, chunk 2 never ran (its job had failed)
    assert EventSettlement.objects.filter(event=event).count() == 2
    entry = AuditEntry.objects.get(object_type="settlement.settlementbatch", object_id=str(batch.pk),
                                   code="settlement_batch.failed")
    assert entry.actor_label == "system:jobs" and entry.reason.startswith("Chunk 1 failed: ZeroDivisionError")


def test_the_sweeper_resends_a_stalled_chunk_then_fails_the_batch_naming_it(settings,
                                                                           django_capture_on_commit_callbacks):
    settings.CPM_CHUNK_SIZE = 2
    event = _event(3)
    batch = services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)  # chunks recorded, not sent
    batch.refresh_from_db()
    # Chunk 0 was taken by a worker that was killed mid-chunk (running, nothing written).
    JobChunk.objects.filter(job=batch.job, index=0).update(status="running", attempts=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.jobs_sweep(now=later, stall_seconds=600, max_attempts=3) == {"resent": 2, "failed_jobs": 0}
    batch.refresh_from_db()
    assert (batch.status, batch.chunks_done, batch.items_calculated) == (BatchStatus.COMPLETED, 2, 3)
    assert EventSettlement.objects.filter(event=event).count() == 3

    stuck = services.event_settle(event=_event(1), now=NOW, actor=TEST_ACTOR)
    stuck.refresh_from_db()
    JobChunk.objects.filter(job=stuck.job).update(status="running", attempts=3)
    assert jobs.jobs_sweep(now=later, stall_seconds=600, max_attempts=3) == {"resent": 0, "failed_jobs": 1}
    stuck.refresh_from_db()
    assert stuck.status == BatchStatus.FAILED
    assert stuck.errors[0]["error"].startswith("Chunk 0 made no progress after 3 attempts")


def test_season_batch_chunks_are_job_chunks(settings):
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, amount=Decimal("20"), season=season,
                         min_participation_share=Decimal("0"))
    for _ in range(5):
        active_participant(program=program)
    settings.CPM_CHUNK_SIZE = 2
    with run_on_commit():
        batch = services.season_settle(program=program, season=season, now=dt.datetime(2026, 10, 5, tzinfo=dt.UTC),
                                       actor=TEST_ACTOR)
    batch.refresh_from_db()
    assert (batch.status, batch.chunks_done, batch.items_calculated, batch.job.kind, batch.job.status) == (
        BatchStatus.COMPLETED, 3, 5, "season_settlement", Job.Status.COMPLETED)
    assert CustomerSettlement.objects.filter(program=program, period_kind=PeriodKind.SEASON_END).count() == 5
