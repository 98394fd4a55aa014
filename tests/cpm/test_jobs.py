"""Jobs (issue 15): a chunk runs to completion once, an exception ends the job failed in words, a stalled chunk is
sent again by the sweeper and, past the attempt limit, fails its job naming it."""

from __future__ import annotations

import datetime as dt

import pytest
from celery import shared_task

from cpm.base import jobs
from cpm.models import Job, JobChunk
from tests.actors import TEST_ACTOR

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
RUNS: list[int] = []


def clock(at: dt.datetime = T0):
    return lambda: at


@shared_task(name="tests.job_chunk")
def job_chunk(*, n: int, job_chunk_id: int | None = None, fail: bool = False) -> None:
    def body():
        if fail:
            raise ValueError(f"chunk {n} could not parse row 7")
        RUNS.append(n)
        return n

    jobs.chunk_run(chunk_id=job_chunk_id, now=clock(), body=body)


@pytest.fixture(autouse=True)
def _clear():
    RUNS.clear()


def _job(n_chunks: int, **extra) -> Job:
    return jobs.job_create(kind="test", subject=None, chunks=[("tests.job_chunk", {"n": i, **extra})
                                                               for i in range(n_chunks)], now=T0, actor=TEST_ACTOR)


def test_chunks_run_once_and_complete_the_job(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = _job(3)
        jobs.job_enqueue(job)
    job.refresh_from_db()
    assert (job.status, job.chunks_done, job.chunks_total, sorted(RUNS)) == ("completed", 3, 3, [0, 1, 2])
    assert job.actor_label == "system:tests"
    # A redelivered chunk (the broker sends it again) does nothing.
    chunk = JobChunk.objects.get(job=job, index=1)
    job_chunk.apply(kwargs={"n": 1, "job_chunk_id": chunk.pk})
    job.refresh_from_db()
    assert (sorted(RUNS), job.chunks_done) == ([0, 1, 2], 3)


def test_an_exception_ends_the_job_failed_in_words(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = _job(2, fail=True)
        jobs.job_enqueue(job)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error.startswith("Chunk 0 failed: ValueError: chunk 0 could not parse row 7")
    assert JobChunk.objects.get(job=job, index=0).status == "failed"
    # The second chunk does not run once its job has failed.
    assert JobChunk.objects.get(job=job, index=1).status == "pending"


def test_sweeper_resends_a_stalled_chunk_then_fails_the_job(django_capture_on_commit_callbacks):
    job = _job(2)
    # Chunk 0 was taken by a worker that died (running, no progress); chunk 1 never left the queue.
    JobChunk.objects.filter(job=job, index=0).update(status="running", attempts=1)
    later = T0 + dt.timedelta(minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        counts = jobs.jobs_sweep(now=later, stall_seconds=600, max_attempts=3)
    assert counts == {"resent": 2, "failed_jobs": 0}
    job.refresh_from_db()
    assert (job.status, job.chunks_done, sorted(RUNS)) == ("completed", 2, [0, 1])
    assert JobChunk.objects.get(job=job, index=0).attempts == 2

    stuck = _job(1)
    JobChunk.objects.filter(job=stuck).update(status="running", attempts=3)
    assert jobs.jobs_sweep(now=later, stall_seconds=600, max_attempts=3) == {"resent": 0, "failed_jobs": 1}
    stuck.refresh_from_db()
    assert stuck.status == "failed"
    assert "Chunk 0 made no progress after 3 attempts" in stuck.error


def test_sweeper_leaves_fresh_chunks_alone():
    job = _job(1)
    assert jobs.jobs_sweep(now=T0 + dt.timedelta(minutes=5), stall_seconds=600) == {"resent": 0, "failed_jobs": 0}
    assert JobChunk.objects.get(job=job).status == "pending"


def test_single_step_job_failure_is_recorded():
    job = _job(0)
    Job.objects.filter(pk=job.pk).update(status="pending", finished_at=None)

    def body():
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    assert jobs.job_run(job=job, now=clock(), body=body) is None
    job.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("UnicodeDecodeError:")


def test_sweeper_fails_a_single_step_job_whose_worker_died():
    """A meter-data load runs as one step (no chunks). Killed mid-run it stays RUNNING with an old heartbeat: the
    sweeper fails its job in words, and the load (the job's subject) ends FAILED, ready for a retry."""
    from settlement.meterdata.models import MeterDataLoad

    load = MeterDataLoad.objects.create(source="csv", file_name="ami.csv", status="running", created_at=T0,
                                        started_at=T0)
    job = jobs.job_create(kind="meter_data_load", subject=load, chunks=[], now=T0, actor=TEST_ACTOR)
    Job.objects.filter(pk=job.pk).update(status="running", finished_at=None, heartbeat_at=T0)
    assert jobs.jobs_sweep(now=T0 + dt.timedelta(minutes=5), stall_seconds=600) == {"resent": 0, "failed_jobs": 0}
    assert jobs.jobs_sweep(now=T0 + dt.timedelta(minutes=11), stall_seconds=600) == {"resent": 0, "failed_jobs": 1}
    job.refresh_from_db()
    load.refresh_from_db()
    assert job.status == "failed" and job.error.startswith("No progress since 2026-07-01 05:00:00 PDT")
    assert load.status == "failed"
    assert load.errors[0]["field"] == "load" and "the worker running this job stopped" in load.errors[0]["message"]


def _sweep_from_another_session(at: dt.datetime) -> dict:
    """Run the sweeper as beat does: in another thread, so on another database session; waits at most 30 s."""
    import threading

    from django.db import connection

    out: dict = {}

    def sweep():
        try:
            out["counts"] = jobs.jobs_sweep(now=at, stall_seconds=600)
        finally:
            connection.close()

    thread = threading.Thread(target=sweep)
    thread.start()
    thread.join(timeout=30)
    return out


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_sweeper_leaves_a_live_single_step_job_alone():
    """A single-step job still running past the stall time (a long load or single-transaction reservation) is not a
    dead one: the sweeper running meanwhile on another session used to fail it ("the worker running this job
    stopped; nothing of it was written. Retry it.") while its worker went on and committed. Its worker's session
    holds the job's liveness lock for the whole body: the sweeper leaves it, and the job completes."""
    job = jobs.job_create(kind="test", subject=None, chunks=[], now=T0, actor=TEST_ACTOR)
    seen = {}

    def body():
        seen.update(_sweep_from_another_session(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11)))
        return "done"

    assert jobs.job_run(job=job, now=lambda: dt.datetime.now(dt.UTC), body=body) == "done"
    assert seen["counts"] == {"resent": 0, "failed_jobs": 0}
    job.refresh_from_db()
    assert (job.status, job.error) == ("completed", "")
    # Once the body has ended the lock is gone: a job left RUNNING (a worker killed after it) is failed as before.
    Job.objects.filter(pk=job.pk).update(status="running", finished_at=None)
    assert _sweep_from_another_session(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11))["counts"] == {
        "resent": 0, "failed_jobs": 1}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_meter_data_load_running_past_the_stall_time_completes(settings, tmp_path, monkeypatch):
    """The user-facing side: a CSV load whose merge outlasts the stall time ended FAILED ("nothing of it was
    written. Retry it.") with its reading written ("1 new"); it now completes, its job too."""
    from django.test import TestCase

    from settlement.meterdata import loaders
    from settlement.models import IntervalDay, MeterDataLoad
    from tests.factories.devices import ServicePointFactory

    settings.MEDIA_ROOT = tmp_path
    ServicePointFactory(service_point_id="SP-1")
    real_apply, seen = loaders._apply, {}

    def long_apply(*args, **kwargs):
        counts = real_apply(*args, **kwargs)
        seen.update(_sweep_from_another_session(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11)))
        return counts

    monkeypatch.setattr(loaders, "_apply", long_apply)
    text = "service_point_id,channel,interval_start,interval_minutes,kwh\nSP-1,delivered,2026-05-14T00:00:00Z,60,1.5\n"
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = loaders.meter_data_load_submit(source="csv", content=text.encode(), now=T0, file_name="r.csv",
                                              actor=TEST_ACTOR)
    load.refresh_from_db()
    assert seen["counts"] == {"resent": 0, "failed_jobs": 0}
    assert (load.status, load.summary, load.errors) == (MeterDataLoad.Status.COMPLETED,
                                                        "1 new, 0 unchanged, 0 corrected, 0 rejected", [])
    assert IntervalDay.objects.count() == 1
    assert list(Job.objects.values_list("status", flat=True)) == ["completed"]
