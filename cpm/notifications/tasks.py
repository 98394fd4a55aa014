"""Celery tasks of customer notifications: thin adapters over ``services``, idempotent, keyword-only.

``notifications.tick`` (beat, every minute) plans what became due and sends the due messages as a job
(``cpm.base.jobs``) of chunks of ``CPM_NOTIFY_CHUNK_SIZE`` message ids, one ``notifications.send_chunk`` task each,
taken by any worker; a chunk runs once to completion (``chunk_run``), and a chunk whose worker died is sent again by
the job sweeper: its transaction never committed, so its messages are still QUEUED and are handed to the channel
again under the same idempotency keys.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db import transaction

from cpm.base import jobs
from cpm.base.capabilities import system_actor
from cpm.models import Job

from . import services

TICK_ACTOR = system_actor("notifications.tick")
JOB_KIND = "notifications"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def send_due(*, now: dt.datetime, chunk_size: int | None = None) -> jobs.JobHandle | None:
    """Split the due QUEUED messages into job chunks (``notifications.send_chunk``) and enqueue them; None when
    nothing is due, or while the previous sending job is still open (one sending job at a time: a tick slower than
    a minute does not queue a second job over the same messages). Chunks send as of ``now`` (messages due later
    wait for a later tick)."""
    if Job.objects.filter(kind=JOB_KIND, status__in=[Job.Status.PENDING, Job.Status.RUNNING]).exists():
        return None  # the previous tick's job is still sending (its stalled chunks are the sweeper's)
    # Messages a stopped sender left SENDING (in doubt) are handed again once the stall time has passed.
    recover_before = now - dt.timedelta(seconds=settings.CPM_JOB_STALL_SECONDS)
    ids = services.messages_due(now=now, recover_before=recover_before)
    if not ids:
        return None
    size = chunk_size or settings.CPM_NOTIFY_CHUNK_SIZE
    stamp = now.isoformat()
    with transaction.atomic():
        job = jobs.job_create(kind=JOB_KIND, subject=None, now=now, actor=TICK_ACTOR, chunks=[
            ("notifications.send_chunk", {"first_id": ids[i], "last_id": ids[min(i + size, len(ids)) - 1],
                                          "now": stamp, "recover_before": recover_before.isoformat()})
            for i in range(0, len(ids), size)])
        jobs.job_enqueue(job)
    return jobs.JobHandle(job.pk)


@shared_task(name="notifications.tick")
def tick() -> dict[str, int]:
    """Every minute: plan due messages, then send the due ones in chunks."""
    now = _now()
    counts = services.notifications_tick(now=now, actor=TICK_ACTOR)
    send_due(now=now)
    return counts


@shared_task(name="notifications.send_chunk", acks_late=True, reject_on_worker_lost=True)
def send_chunk(*, first_id: int, last_id: int, now: str, recover_before: str | None = None,
               job_chunk_id: int | None = None) -> dict | None:
    """Send the due QUEUED messages with ids in ``[first_id, last_id]`` as of ``now`` (ISO), and the in-doubt
    SENDING ones claimed before ``recover_before``; run to completion once. The body commits batch by batch
    (``services.messages_send``: at most one batch in doubt if the worker dies), so it runs outside the chunk's
    transaction (``transactional=False``); a second delivery of the chunk finds the messages claimed or sent."""
    at = dt.datetime.fromisoformat(now)
    before = dt.datetime.fromisoformat(recover_before) if recover_before else None

    def body() -> dict[str, int]:
        return services.messages_send(first_id=first_id, last_id=last_id, now=at, recover_before=before)

    return jobs.chunk_run(chunk_id=job_chunk_id, now=_now, body=body, transactional=False)
