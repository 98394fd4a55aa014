"""Jobs: one record of every background job, its chunks, its failure, and a sweeper for chunks that stopped.

Modelled on NetBox's ``Job`` / ``JobRunner``:

- ``job_create`` records a job on a subject (a meter-data load, an event's reservation, a settlement batch) and its
  chunks (a Celery task name and keyword arguments each); ``job_enqueue`` sends the chunks once the transaction
  commits. Every chunk task receives ``job_chunk_id``.
- ``chunk_run`` is how a chunk task runs its body: it claims the chunk (a conditional update: a chunk already done is
  skipped, so a redelivered or re-enqueued task does nothing twice), runs the body, and marks the chunk done in the
  body's own transaction together with whatever the caller records on completion (``on_done``), so the body's
  writes and "done" commit or roll back together. Any unexpected exception marks the chunk failed and the job
  failed, with the error in words; nothing stays ``running`` because of an exception.
- ``job_run`` runs a single-step job (a meter-data load) with the same failure handling; its worker's session holds
  the job's liveness lock (a PostgreSQL advisory lock) while the body runs.
- ``job_failed`` (a Django signal, sent with ``job`` (the Job, re-read), ``error`` and ``now`` whenever a job ends
  failed, in the transaction that fails it): the owner of the job's subject ends its own record too (a settlement
  batch goes FAILED with the error), without ``cpm.base`` importing any app.
- ``jobs_sweep`` (Celery beat, every minute: ``cpm.sweep_jobs``) finds chunks that made no progress for
  ``CPM_JOB_STALL_SECONDS`` (a worker killed with ``kill -9`` never reports back; Redis would redeliver its
  unacknowledged message only after the visibility timeout) and sends them again, up to ``CPM_JOB_MAX_ATTEMPTS``
  attempts; past that the job fails naming the chunk. A single-step job quiet that long is failed only if no
  session holds its liveness lock (its worker died). Chunk tasks are idempotent, which is what makes sending one
  again safe.

A chunk being worked on holds a row lock on its ``JobChunk`` for the whole of its transaction: a second delivery of
the same chunk waits for the first and then finds it done, and the sweeper skips a locked chunk (its worker's
database session is alive: a long chunk is not a stalled one). A worker killed with ``kill -9`` loses its session,
and its lock with it.

Times are aware UTC (``now`` passed in). Tasks are declared ``acks_late`` with ``reject_on_worker_lost`` where they
are idempotent (settings), so a worker that dies returns its message to the broker.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce
from django.dispatch import Signal

from cpm.models import Job, JobChunk

from .audit import actor_label
from .timeutils import format_local

log = logging.getLogger(__name__)

JS = Job.Status
CS = JobChunk.Status

#: Sent when a job ends failed (``sender=Job``, ``job``, ``error``, ``now``), inside the failing transaction.
job_failed = Signal()


def _error_text(exc: BaseException) -> str:
    """The error in words for the job record: the exception's class and message, and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"[:2000]


def job_create(*, kind: str, subject: models.Model | None, chunks: Sequence[tuple[str, dict[str, Any]]],
               now: dt.datetime, actor: Any) -> Job:
    """Record a job and its chunks (``(task_name, kwargs)`` each; JSON-serialisable kwargs). Call inside the
    transaction that creates the subject; then ``job_enqueue``."""
    job = Job.objects.create(
        kind=kind, status=JS.PENDING if chunks else JS.COMPLETED, chunks_total=len(chunks),
        subject_type=subject._meta.label_lower if subject is not None else "",
        subject_id=str(subject.pk) if subject is not None else "", subject_repr=str(subject)[:200] if subject else "",
        actor_label=actor_label(actor)[:150], created_at=now, heartbeat_at=now,
        finished_at=None if chunks else now)
    JobChunk.objects.bulk_create([JobChunk(job=job, index=i, task_name=name, kwargs=kwargs, updated_at=now)
                                  for i, (name, kwargs) in enumerate(chunks)])
    return job


def _send(chunk: JobChunk) -> None:
    from cpm.celery import app

    app.tasks[chunk.task_name].apply_async(kwargs={**chunk.kwargs, "job_chunk_id": chunk.pk})


def job_enqueue(job: Job) -> None:
    """Send every pending chunk of ``job`` once the current transaction commits (at once outside one): to the
    broker, or, with none (tasks run eagerly in this process), one after the other, or on ``CPM_LOCAL_WORKERS``
    threads of this process (``_run_locally``)."""
    def send() -> None:
        chunks = list(JobChunk.objects.filter(job=job, status=CS.PENDING).order_by("index"))
        workers = _local_workers()
        if workers > 1 and len(chunks) > 1:
            _run_locally(chunks, workers)
        else:
            for chunk in chunks:
                _send(chunk)

    transaction.on_commit(send)


_local = threading.local()


def _local_workers() -> int:
    """How many threads of this process run a job's chunks: ``CPM_LOCAL_WORKERS`` when tasks run eagerly (no broker)
    on PostgreSQL, outside a chunk already running on such a thread (no pool inside a pool); else 1. SQLite (the
    embedded default) has one writer at a time, so it always runs them one after the other."""
    from cpm.celery import app

    if not app.conf.task_always_eager or connection.vendor != "postgresql" or getattr(_local, "worker", False):
        return 1
    return max(1, int(getattr(settings, "CPM_LOCAL_WORKERS", 1)))


def _run_locally(chunks: list[JobChunk], workers: int) -> None:
    """Run ``chunks`` (eager tasks) on ``workers`` threads of this process, as that many Celery workers would take
    them from the broker: each thread has its own database connection (Django's are per thread), so the chunks'
    transactions, row locks and the last chunk's finish work exactly as across worker processes (the chunk tasks
    are written for that); each thread closes its connection when done. Returns when every chunk has run; a chunk's
    failure is recorded on its job by ``chunk_run``, as on a worker. What this buys: one process uses as many
    PostgreSQL backends (cores) as threads, with no broker and no worker process to run."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def run(chunk: JobChunk) -> None:
        _local.worker = True
        try:
            _send(chunk)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cpm-chunk") as pool:
        for future in [pool.submit(run, chunk) for chunk in chunks]:
            future.result()


def job_fail(*, job_id: int, error: str, now: dt.datetime) -> None:
    """End the job failed with ``error`` (words), unless it already ended; tells the subject's owner
    (``job_failed``)."""
    with transaction.atomic():
        if Job.objects.filter(pk=job_id, status__in=[JS.PENDING, JS.RUNNING]).update(
                status=JS.FAILED, error=error[:2000], finished_at=now, heartbeat_at=now):
            job_failed.send(sender=Job, job=Job.objects.get(pk=job_id), error=error[:2000], now=now)


def chunk_run(*, chunk_id: int | None, now: Callable[[], dt.datetime], body: Callable[[], Any],
              on_done: Callable[[Any], None] | None = None, transactional: bool = True) -> Any:
    """Run one chunk's ``body`` at most once to completion.

    ``chunk_id`` None runs ``body`` untracked (a caller outside the job system, e.g. a test or a one-off). Returns
    the body's result, or None if the chunk was already done (a redelivered task) or its job already ended. The body
    runs in a transaction with the chunk's "done" mark and ``on_done(result)``; an exception rolls all of that
    back, marks the chunk and its job failed with the error, and is not re-raised (the job record carries it).

    ``transactional=False`` is for a body that commits its own steps and is idempotent step by step (sending
    customer messages: each batch claimed, handed over and recorded in transactions of its own, so that a killed
    worker leaves at most one batch in doubt): the body runs outside the chunk's transaction and row lock, then the
    "done" mark, the job's counter and ``on_done`` commit together; a second delivery running at the same time
    relies on the body's own claims, and the first to finish marks the chunk done.
    """
    if chunk_id is None:
        result = body()
        if on_done is not None:
            on_done(result)
        return result
    started = now()
    claimed = _claim(chunk_id=chunk_id, at=started)
    if claimed is None:
        return None
    job_id, index = claimed
    # The job is running (if it was pending) and alive: one conditional update.
    Job.objects.filter(pk=job_id).update(
        heartbeat_at=started,
        status=Case(When(status=JS.PENDING, then=Value(JS.RUNNING)), default=F("status")),
        started_at=Coalesce(F("started_at"), Value(started)))
    try:
        if not transactional:
            result = body()
        with transaction.atomic():
            # The chunk's row lock, held until commit: a second delivery waits here, then finds the chunk done;
            # the sweeper skips a locked (alive) chunk.
            if not JobChunk.objects.select_for_update().filter(pk=chunk_id, status=CS.RUNNING).exists():
                raise _AlreadyDone
            if transactional:
                result = body()
            done = now()
            kept = result if isinstance(result, dict) else {}
            if not JobChunk.objects.filter(pk=chunk_id, status=CS.RUNNING).update(status=CS.DONE, updated_at=done,
                                                                                  result=kept):
                raise _AlreadyDone
            # The job's counter, and COMPLETED with the last chunk: one conditional update.
            last = Q(status=JS.RUNNING, chunks_done=F("chunks_total") - 1)
            Job.objects.filter(pk=job_id).update(
                chunks_done=F("chunks_done") + 1, heartbeat_at=done,
                status=Case(When(last, then=Value(JS.COMPLETED)), default=F("status")),
                finished_at=Case(When(last, then=Value(done)), default=F("finished_at")))
            if on_done is not None:
                on_done(result)
        return result
    except _AlreadyDone:
        return None
    except Exception as exc:  # noqa: BLE001 - any failure ends the chunk and its job failed, in words
        error = _error_text(exc)
        log.exception("job chunk %s failed", chunk_id)
        failed_at = now()
        JobChunk.objects.filter(pk=chunk_id).update(status=CS.FAILED, last_error=error, updated_at=failed_at)
        job_fail(job_id=job_id, error=f"Chunk {index} failed: {error}", now=failed_at)
        return None


def _claim(*, chunk_id: int, at: dt.datetime) -> tuple[int, int] | None:
    """Claim a chunk for this delivery: RUNNING, one more attempt, ``updated_at`` = ``at``, if it is pending or
    running and its job has not ended. One ``UPDATE ... RETURNING`` (PostgreSQL and SQLite >= 3.35), committed on
    its own so that the attempt counts even if the worker dies in the body. Returns ``(job_id, index)``, or None if
    the chunk is done or failed or its job ended."""
    quote = connection.ops.quote_name
    chunk_table, job_table, index_column = quote(JobChunk._meta.db_table), quote(Job._meta.db_table), quote("index")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {chunk_table} SET status = %s, attempts = attempts + 1, updated_at = %s "
            f"WHERE id = %s AND status IN (%s, %s) "
            f"AND job_id IN (SELECT id FROM {job_table} WHERE status IN (%s, %s)) RETURNING job_id, {index_column}",
            [CS.RUNNING.value, connection.ops.adapt_datetimefield_value(at), chunk_id, CS.PENDING.value,
             CS.RUNNING.value, JS.PENDING.value, JS.RUNNING.value])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def job_is_completed(job_id: int) -> bool:
    """Whether the job has completed (read in the caller's transaction: in ``on_done``, true for the chunk that
    completed it, exactly once)."""
    return Job.objects.filter(pk=job_id, status=JS.COMPLETED).exists()


def job_chunk_results(job_id: int) -> list[dict]:
    """The results of the job's chunks, in chunk order."""
    return list(JobChunk.objects.filter(job_id=job_id).order_by("index").values_list("result", flat=True))


def job_set_result(job_id: int, result: dict) -> None:
    """Record what the job produced (e.g. the counts of a reservation)."""
    Job.objects.filter(pk=job_id).update(result=result)


class JobHandle:
    """A caller's handle on a job it started (what ``AsyncResult`` is for one task): ``get`` waits for the job to
    end and returns its result, or raises ``JobFailed`` with the job's error."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id

    def get(self, timeout: float = 600, interval: float = 0.2) -> dict:
        import time

        deadline = time.monotonic() + timeout
        while True:
            job = Job.objects.get(pk=self.job_id)
            if job.status == JS.COMPLETED:
                return job.result
            if job.status == JS.FAILED:
                raise JobFailed(job.error)
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {self.job_id} still {job.status} ({job.progress}) after {timeout} s")
            time.sleep(interval)


class JobFailed(RuntimeError):
    """The job ended failed; the message is its error in words."""


class _AlreadyDone(Exception):
    """Another delivery of the same chunk finished first: roll this one back."""


#: The first key of a single-step job's liveness lock (PostgreSQL ``pg_advisory_lock(int4, int4)``; the second key
#: is the job's id): "job" in ASCII.
_LIVE_LOCK_CLASS = 0x6A6F62


def _live_key(job_id: int) -> int:
    return job_id % 2**31


def _live_lock(job_id: int, *, hold: bool) -> None:
    """Take (``hold``) or release the job's liveness lock: a session-level advisory lock the worker's database
    session holds while the body runs, and loses with its session if the worker dies (PostgreSQL; a no-op
    elsewhere)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {'pg_advisory_lock' if hold else 'pg_advisory_unlock'}(%s, %s)",
                       [_LIVE_LOCK_CLASS, _live_key(job_id)])


def _live_jobs(job_ids: Sequence[int]) -> set[int]:
    """Those of ``job_ids`` whose liveness lock a session holds (their worker is alive); empty outside
    PostgreSQL."""
    if connection.vendor != "postgresql" or not job_ids:
        return set()
    keys = {_live_key(i): i for i in job_ids}
    with connection.cursor() as cursor:
        cursor.execute("SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
                       "AND classid = %s AND objsubid = 2 AND objid::bigint = ANY(%s)",
                       [_LIVE_LOCK_CLASS, list(keys)])
        return {keys[row[0]] for row in cursor.fetchall()}


def job_run(*, job: Job, now: Callable[[], dt.datetime], body: Callable[[], Any]) -> Any:
    """Run a single-step job: RUNNING, then COMPLETED with the body's result, or FAILED with the error in words
    (never left running). Returns the body's result, or None if it failed.

    While the body runs, the worker's database session holds the job's liveness lock (PostgreSQL), so the sweeper
    tells a long body (a big load, a single-transaction reservation) from a worker that died."""
    Job.objects.filter(pk=job.pk).update(status=JS.RUNNING, started_at=now(), heartbeat_at=now())
    _live_lock(job.pk, hold=True)
    try:
        result = body()
    except Exception as exc:  # noqa: BLE001 - recorded on the job
        log.exception("job %s failed", job.pk)
        job_fail(job_id=job.pk, error=_error_text(exc), now=now())
        return None
    finally:
        _live_lock(job.pk, hold=False)
    Job.objects.filter(pk=job.pk, status=JS.RUNNING).update(status=JS.COMPLETED, finished_at=now(),
                                                              heartbeat_at=now())
    return result


def jobs_sweep(*, now: dt.datetime, stall_seconds: int | None = None, max_attempts: int | None = None) -> dict:
    """Send again every chunk of an open job that made no progress for ``stall_seconds`` (pending and never taken,
    or running on a worker that died), up to ``max_attempts`` attempts; fail the job naming the chunk past that.

    Returns counts ``{"resent": n, "failed_jobs": m}``. Idempotent and safe to run from several beats.
    """
    stall = dt.timedelta(seconds=stall_seconds if stall_seconds is not None else settings.CPM_JOB_STALL_SECONDS)
    limit = max_attempts if max_attempts is not None else settings.CPM_JOB_MAX_ATTEMPTS
    resent = 0
    failed_jobs: set[int] = set()
    with transaction.atomic():
        # A chunk locked by a live transaction (its worker is running it) is not stalled: skip it.
        stalled = list(JobChunk.objects.select_for_update(skip_locked=True, of=("self",))
                       .filter(status__in=[CS.PENDING, CS.RUNNING], updated_at__lt=now - stall,
                               job__status__in=[JS.PENDING, JS.RUNNING])
                       .order_by("job_id", "index"))
        for chunk in stalled:
            if chunk.job_id in failed_jobs:
                continue
            if chunk.attempts >= limit:
                job_fail(job_id=chunk.job_id, error=(
                    f"Chunk {chunk.index} made no progress after {chunk.attempts} attempts "
                    f"(last started {_shown(chunk.updated_at)}); the worker running it stopped."),
                    now=now)
                JobChunk.objects.filter(pk=chunk.pk).update(status=CS.FAILED, updated_at=now,
                                                            last_error="no progress: worker lost")
                failed_jobs.add(chunk.job_id)
                continue
            # Back to pending with a fresh clock (a conditional update: two sweepers never send it twice).
            if JobChunk.objects.filter(pk=chunk.pk, status=chunk.status, updated_at=chunk.updated_at).update(
                    status=CS.PENDING, updated_at=now):
                transaction.on_commit(lambda c=chunk: _send(c))
                resent += 1
        # A single-step job (no chunks: a meter-data load) whose worker died never reports back: one transaction,
        # so nothing of it was written; fail it in words (its owner makes its record retryable, ``job_failed``).
        # One whose worker's session still holds its liveness lock is alive, however long it takes: left alone.
        quiet = list(Job.objects.select_for_update(skip_locked=True)
                     .filter(status=JS.RUNNING, chunks_total=0, heartbeat_at__lt=now - stall))
        alive = _live_jobs([job.pk for job in quiet])
        for job in quiet:
            if job.pk in alive:
                continue
            job_fail(job_id=job.pk, error=(
                f"No progress since {_shown(job.heartbeat_at)}: the worker running this job stopped; "
                "nothing of it was written. Retry it."), now=now)
            failed_jobs.add(job.pk)
    return {"resent": resent, "failed_jobs": len(failed_jobs)}


def _shown(instant: dt.datetime) -> str:
    """An instant in a job's error as its reader reads it: jobs belong to no program, so ``CPM_DISPLAY_TIME_ZONE``
    ("2026-07-01 05:00:00 PDT")."""
    return format_local(instant, getattr(settings, "CPM_DISPLAY_TIME_ZONE", "UTC"), seconds=True)


def jobs_open(*, subject: models.Model) -> models.QuerySet[Job]:
    """The subject's jobs still pending or running."""
    return Job.objects.filter(subject_type=subject._meta.label_lower, subject_id=str(subject.pk),
                              status__in=[JS.PENDING, JS.RUNNING])


def job_latest(*, subject_type: str, subject_id: int | str, kind: str) -> Job | None:
    """The latest job of ``kind`` on a subject (``app_label.model`` and its pk), or None: what a page shows of the
    subject's last run (its status, progress and error)."""
    return (Job.objects.filter(subject_type=subject_type, subject_id=str(subject_id), kind=kind)
            .order_by("-created_at", "-id").first())


__all__ = ["JobFailed", "JobHandle", "chunk_run", "job_chunk_results", "job_create", "job_enqueue", "job_fail",
           "job_failed", "job_is_completed", "job_latest", "job_run", "job_set_result", "jobs_open", "jobs_sweep"]
