"""Reservation runs as jobs (issue 15): the single-transaction run and the distributed one are recorded with their
counts; a chunk whose worker died is sent again by the sweeper and the reservation completes by itself, with the
ledger of an undisturbed run."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base import jobs
from cpm.base.timeutils import format_local
from cpm.models import Job, JobChunk
from events import services, tasks
from events.choices import EventStatus
from events.choices import ReservationDecision as D
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory

from .test_celery_worker import NOW, _reset, _state

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    program = ProgramFactory(code="jobs-res")
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    for n in range(7):
        active_participant(program=program, device_kwargs={"last_seen_at": NOW, "capacity_kw": Decimal(n % 3 + 1)})
    offline = active_participant(program=program, device_kwargs={"last_seen_at": NOW - dt.timedelta(days=3)})
    assert offline
    return EventFactory(program=program, status=EventStatus.SCHEDULED)


def test_reserve_task_is_a_recorded_job(event, monkeypatch):
    monkeypatch.setattr(tasks, "_now", lambda: NOW)
    counts = tasks.reserve_event.apply(kwargs={"event_id": event.pk}).get()
    assert counts == {D.RESERVED: 7, D.OFFLINE: 1}
    job = Job.objects.get(kind="reservation", subject_id=str(event.pk))
    assert (job.status, job.result, job.actor_label) == ("completed", counts, "system:celery:events.reserve")
    # The job names its event in the program's zone, as the jobs list shows it (it said "... (2026-07-15 23:00 UTC)").
    assert job.subject_repr == f"{event.name} ({format_local(event.start, event.program.time_zone)})"
    assert job.subject_repr.endswith(" PDT)")


def test_distributed_reservation_completes_by_itself_after_a_worker_died(event, django_capture_on_commit_callbacks):
    single = services.event_reserve(event=event, now=NOW, actor=TEST_ACTOR)
    expected = _state(event)
    _reset(event)
    # The chunks are recorded but their messages are lost with a worker that died after taking chunk 0.
    with django_capture_on_commit_callbacks(execute=False):
        handle = tasks.reserve_event_distributed(event_id=event.pk, chunk_size=3, now=NOW)
    job = Job.objects.get(pk=handle.job_id)
    assert (job.status, job.chunks_total) == ("pending", 3)
    JobChunk.objects.filter(job=job, index=0).update(status="running", attempts=1)
    later = NOW + dt.timedelta(minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.jobs_sweep(now=later, stall_seconds=600) == {"resent": 3, "failed_jobs": 0}
    assert handle.get(timeout=5) == single
    assert _state(event) == expected
    job.refresh_from_db()
    assert (job.status, job.chunks_done) == ("completed", 3)
    assert JobChunk.objects.get(job=job, index=0).attempts == 2
    event.refresh_from_db()
    assert event.reserved_at == NOW
    # A redelivered chunk (the broker's copy arriving late) changes nothing.
    chunk = JobChunk.objects.get(job=job, index=1)
    assert tasks.reserve_chunk.apply(kwargs={**chunk.kwargs, "job_chunk_id": chunk.pk}).get() is None
    assert _state(event) == expected
