"""Celery tasks of the events app: load by id, call one service, idempotent, keyword-only arguments.

Each task acts as a named system actor (``cpm.base.capabilities.system_actor``), shown in the audit trail:
``events.tick`` for the tick, ``celery:events.reserve`` for reservations (the single-transaction one and the
distributed one: its central plan and the finish run by its last chunk; the chunk tasks write no audit entry and
take no actor),
``celery:events.deliver_dispatch_message`` for webhook deliveries."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db import transaction

from cpm.base import jobs
from cpm.base.capabilities import system_actor
from cpm.models import JobChunk

from . import services
from .models import DispatchMessage, Event

TICK_ACTOR = system_actor("events.tick")
RESERVE_ACTOR = system_actor("celery:events.reserve")
DELIVER_ACTOR = system_actor("celery:events.deliver_dispatch_message")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@shared_task(name="events.tick")
def tick() -> dict[str, int]:
    """Every minute (beat, UTC): move due events through their statuses and hand completed ones to settlement."""
    return services.events_tick(now=_now(), actor=TICK_ACTOR)


JOB_KIND = "reservation"


@shared_task(name="events.reserve")
def reserve_event(*, event_id: int, now: str | None = None, requested_by: int | None = None) -> dict[str, int]:
    """Reserve devices for a scheduled event (re-runnable) as a job (``cpm.base.jobs``): the single-transaction
    reservation (written span by span of ``CPM_CHUNK_SIZE``), recorded with its counts, or FAILED with the error in
    words (nothing of a failed run is written: one transaction; a dead worker's job is failed by the sweeper and the
    reservation can simply run again). For chunks on several workers use ``reserve_event_distributed``. ``now``:
    the instant the decisions are made as of (ISO 8601; the event's scheduling, passed by ``event_schedule``), else
    the clock. ``requested_by``: the id of the user who asked for the run (the API's ``reserve`` action): the
    service runs as that user (checked again, named in the audit trail), not as the task's system actor."""
    # With its program: the job names the event in the program's zone (``Event.__str__``).
    event = Event.objects.select_related("program").filter(pk=event_id, status="scheduled").first()
    if event is None:
        return {}
    at = dt.datetime.fromisoformat(now) if now else _now()
    actor = RESERVE_ACTOR
    if requested_by is not None:
        from django.contrib.auth import get_user_model

        actor = get_user_model().objects.filter(pk=requested_by, is_active=True).first()
        if actor is None:  # the user who asked is gone or disabled since: nothing runs in their name
            return {}
    job = jobs.job_create(kind=JOB_KIND, subject=event, chunks=[], now=_now(), actor=actor)

    def body() -> dict[str, int]:
        counts = services.event_reserve(event=event, now=at, actor=actor)
        jobs.job_set_result(job.pk, counts)
        return counts

    return jobs.job_run(job=job, now=_now, body=body) or {}


@shared_task(name="events.reserve_chunk", acks_late=True, reject_on_worker_lost=True)
def reserve_chunk(*, event_id: int, first_id: int | None, end_id: int | None, chosen_ids: list[int] | None,
                  now: str, job_chunk_id: int | None = None) -> dict[str, int] | None:
    """One chunk of a distributed reservation: subscription ids ``first_id <= id < end_id`` (see
    ``services.reserve_chunk``), run once to completion as a job chunk; the chunk that completes the job sums the
    chunks' counts and marks the event reserved (``event_reservation_finish``) in the same transaction."""
    at = dt.datetime.fromisoformat(now)

    def body() -> dict[str, int]:
        return services.reserve_chunk(event_id=event_id, first_id=first_id, end_id=end_id, chosen_ids=chosen_ids,
                                      now=at)

    def finish_if_last(_counts) -> None:
        job_id = JobChunk.objects.filter(pk=job_chunk_id).values_list("job_id", flat=True).first()
        if job_id is not None and jobs.job_is_completed(job_id):
            total = services.event_reservation_finish(event_id=event_id, counts=jobs.job_chunk_results(job_id),
                                                      now=at, actor=RESERVE_ACTOR)
            jobs.job_set_result(job_id, total)

    return jobs.chunk_run(chunk_id=job_chunk_id, now=_now, body=body,
                          on_done=finish_if_last if job_chunk_id is not None else None)


def reserve_event_distributed(*, event_id: int, chunk_size: int | None = None, now: dt.datetime | None = None
                              ) -> jobs.JobHandle:
    """Split a reservation over workers: plan centrally (target kW order, ex-candidates released), then one job
    chunk per span (``events.reserve_chunk``) that any worker takes; the chunk that completes the job marks the event
    reserved. A chunk whose worker dies is sent again by the job sweeper (chunks are idempotent). Returns a
    ``JobHandle``: ``.get(timeout)`` waits and returns the counts by decision. ``now`` (aware UTC) defaults to the
    clock; every chunk decides as of that same instant. Runs as the reservation task's system actor
    (``RESERVE_ACTOR``): it is the Celery side of ``event.reserve``, started by operators' code (the benchmark),
    never by a request."""
    now = now or _now()
    event = Event.objects.select_related("program").get(pk=event_id)
    chunks = services.event_reservation_start(event=event, now=now, chunk_size=chunk_size or settings.CPM_CHUNK_SIZE,
                                            actor=RESERVE_ACTOR)
    stamp = now.isoformat()
    with transaction.atomic():
        job = jobs.job_create(kind=JOB_KIND, subject=event, now=now, actor=RESERVE_ACTOR, chunks=[
            ("events.reserve_chunk", {"event_id": event_id, "first_id": c.first_id, "end_id": c.end_id,
                                      "chosen_ids": c.chosen_ids, "now": stamp}) for c in chunks])
        if not chunks:  # no candidate: nothing to split; the event is reserved with no decision
            jobs.job_set_result(job.pk, services.event_reservation_finish(event_id=event_id, counts=[], now=now,
                                                                          actor=RESERVE_ACTOR))
        else:
            jobs.job_enqueue(job)
    return jobs.JobHandle(job.pk)


@shared_task(name="events.deliver_dispatch_message", bind=True, max_retries=services.MAX_DELIVERY_ATTEMPTS)
def deliver_dispatch_message(self, *, message_id: int) -> str:
    """POST a dispatch message to the aggregator's webhook; retried with backoff until delivered or FAILED."""
    message = DispatchMessage.objects.filter(pk=message_id).first()
    if message is None:
        return "missing"
    if not services.dispatch_message_deliver(message=message, now=_now(), actor=DELIVER_ACTOR):
        raise self.retry(countdown=min(30 * 2 ** self.request.retries, 900))
    return DispatchMessage.objects.get(pk=message_id).delivery_status
