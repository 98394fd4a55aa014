"""The distributed reservation (job chunks; the last one counts and marks the event reserved) through a REAL worker
(Redis broker and result backend, solo pool, in a thread) gives the same ledger and participations as the
single-process run.

Skipped without CELERY_BROKER_URL; run it with e.g.
CELERY_BROKER_URL=redis://127.0.0.1:6379/9 DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_evpolish
"""

import datetime as dt
from decimal import Decimal

import pytest

from events import services
from events.choices import EventStatus
from events.choices import ReservationDecision as D
from events.models import Event, Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, UnavailabilityFactory, la
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory

from .helpers import past_event

NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


def _state(event):
    ledger = sorted(Reservation.objects.filter(event=event).values_list(
        "subscription_id", "decision", "detail", "capacity_kw", "decided_at"))
    parts = sorted(Participation.objects.filter(event=event).values_list("subscription_id", "status", "start", "end"))
    return ledger, parts


def _reset(event):
    Reservation.objects.filter(event=event).delete()
    Participation.objects.filter(event=event).delete()
    Event.objects.filter(pk=event.pk).update(reserved_at=None)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_worker_chord_reservation_equals_single_process():
    from celery.contrib.testing.worker import start_worker

    from cpm.celery import app
    from events.tasks import reserve_event_distributed

    assert not app.conf.task_always_eager
    program = ProgramFactory(code="worker-ac")
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program, max_events_per_season=2)
    subs = [active_participant(program=program, device_kwargs={"last_seen_at": NOW,
                                                               "capacity_kw": Decimal(n % 4 + 1)})
            for n in range(11)]
    past_event(program, la(2026, 6, 10, 15), subs=subs[:4])
    past_event(program, la(2026, 6, 20, 15), subs=subs[:2])  # subs 0-1: season limit reached
    UnavailabilityFactory(enrollment=subs[5].enrollment)
    offline = subs[6].device
    offline.last_seen_at = NOW - dt.timedelta(days=3)
    offline.save()
    event = EventFactory(program=program, status=EventStatus.SCHEDULED, target_kw=Decimal("8"))

    single_counts = services.event_reserve(event=event, now=NOW, actor=TEST_ACTOR)
    single = _state(event)
    # Never called this season first, larger capacity first: 4 + 3 + 2 kW reach the 8 kW target.
    assert single_counts == {D.RESERVED: 3, D.TARGET_MET: 4, D.SEASON_LIMIT: 2, D.UNAVAILABLE: 1, D.OFFLINE: 1}
    assert {sid for sid, decision, *_ in single[0] if decision == D.RESERVED} == {subs[7].pk, subs[10].pk,
                                                                                  subs[9].pk}
    _reset(event)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
        result = reserve_event_distributed(event_id=event.pk, chunk_size=3, now=NOW)
        counts = result.get(timeout=60)
    assert counts == single_counts
    assert _state(event) == single
    event.refresh_from_db()
    assert event.reserved_at == NOW
