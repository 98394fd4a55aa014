"""Celery tasks of the events app: load by id, call one service, idempotent, keyword-only arguments.

Each task acts as a named system actor (``cpm.base.capabilities.system_actor``), shown in the audit trail:
``events.tick`` for the tick, ``celery:events.reserve`` for reservations (the single-transaction one and the
distributed one: its central plan and its chord callback; the chunk tasks write no audit entry and take no actor),
``celery:events.deliver_dispatch_message`` for webhook deliveries."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings

from cpm.base.capabilities import system_actor

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


@shared_task(name="events.reserve")
def reserve_event(*, event_id: int, now: str | None = None) -> dict[str, int]:
    """Reserve devices for a scheduled event (re-runnable). Large programs are written chunk by chunk
    (``CPM_CHUNK_SIZE``); for a Celery group over chunks use ``reserve_event_distributed``. ``now``: the instant
    the decisions are made as of (ISO 8601; the event's scheduling, passed by ``event_schedule``), else the
    clock."""
    event = Event.objects.filter(pk=event_id, status="scheduled").first()
    if event is None:
        return {}
    return services.event_reserve(event=event, now=dt.datetime.fromisoformat(now) if now else _now(),
                                  actor=RESERVE_ACTOR)


@shared_task(name="events.reserve_chunk")
def reserve_chunk(*, event_id: int, first_id: int | None, end_id: int | None, chosen_ids: list[int] | None,
                  now: str) -> dict[str, int]:
    """One chunk of a distributed reservation: subscription ids ``first_id <= id < end_id`` (see
    ``services.reserve_chunk``)."""
    return services.reserve_chunk(event_id=event_id, first_id=first_id, end_id=end_id, chosen_ids=chosen_ids,
                                  now=dt.datetime.fromisoformat(now))


@shared_task(name="events.reserve_finish")
def reserve_finish(results: list[dict[str, int]] | None = None, *, event_id: int, now: str) -> dict[str, int]:
    """Chord callback: sum the chunk counts and mark the event reserved."""
    return services.event_reservation_finish(event_id=event_id, counts=list(results or []),
                                             now=dt.datetime.fromisoformat(now), actor=RESERVE_ACTOR)


def reserve_event_distributed(*, event_id: int, chunk_size: int | None = None, now: dt.datetime | None = None):
    """Split a reservation over workers: plan centrally (target kW order, ex-candidates released), then a chord of
    chunk tasks whose callback sums the counts. Returns the chord's ``AsyncResult`` (counts by decision).
    ``now`` (aware UTC) defaults to the clock; every chunk decides as of that same instant. Runs as the reservation
    task's system actor (``RESERVE_ACTOR``): it is the Celery side of ``event.reserve``, started by operators' code
    (the benchmark), never by a request."""
    from celery import chord

    now = now or _now()
    event = Event.objects.select_related("program").get(pk=event_id)
    chunks = services.event_reservation_start(event=event, now=now, chunk_size=chunk_size or settings.CPM_CHUNK_SIZE,
                                            actor=RESERVE_ACTOR)
    stamp = now.isoformat()
    if not chunks:  # no candidate: nothing to split, the callback alone marks the event reserved
        return reserve_finish.apply_async(args=([],), kwargs={"event_id": event_id, "now": stamp})
    return chord(reserve_chunk.s(event_id=event_id, first_id=c.first_id, end_id=c.end_id, chosen_ids=c.chosen_ids,
                                 now=stamp) for c in chunks)(reserve_finish.s(event_id=event_id, now=stamp))


@shared_task(name="events.deliver_dispatch_message", bind=True, max_retries=services.MAX_DELIVERY_ATTEMPTS)
def deliver_dispatch_message(self, *, message_id: int) -> str:
    """POST a dispatch message to the aggregator's webhook; retried with backoff until delivered or FAILED."""
    message = DispatchMessage.objects.filter(pk=message_id).first()
    if message is None:
        return "missing"
    if not services.dispatch_message_deliver(message=message, now=_now(), actor=DELIVER_ACTOR):
        raise self.retry(countdown=min(30 * 2 ** self.request.retries, 900))
    return DispatchMessage.objects.get(pk=message_id).delivery_status
