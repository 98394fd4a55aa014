"""Two reservations at once never double-book a device nor exceed a limit (PostgreSQL: row locks in id order plus
the set-based no-overlap check on participations, events migration 0011)."""

import datetime as dt
import threading
from collections import Counter

import pytest
from django.db import IntegrityError, connection

from events import services
from events.choices import EventStatus
from events.choices import ReservationDecision as D
from events.models import Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import ProgramSubscriptionFactory, active_participant
from tests.factories.events import EventFactory, la
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


def run_concurrently(events):
    barrier = threading.Barrier(len(events))
    errors = []

    def work(event):
        try:
            barrier.wait()
            services.event_reserve(event=event, now=NOW, actor=TEST_ACTOR)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def make_program(code, **kw):
    program = ProgramFactory(code=code, allows_co_enrollment=True, **kw)
    SeasonFactory(program=program)
    return program, ParticipationRuleFactory(program=program)


def test_overlapping_events_of_two_programs_never_double_book_a_device():
    a, _ = make_program("thermostat-a")
    b, _ = make_program("thermostat-b")
    subs = [active_participant(program=a, device_kwargs={"last_seen_at": NOW}) for _ in range(25)]
    for sub in subs:
        ProgramSubscriptionFactory(enrollment__program=b, enrollment__service_point=sub.enrollment.service_point,
                                   device=sub.device, exclusive=False)
    ev_a = EventFactory(program=a, status=EventStatus.SCHEDULED)
    ev_b = EventFactory(program=b, status=EventStatus.SCHEDULED, start=la(2026, 7, 15, 16), end=la(2026, 7, 15, 17))
    for _ in range(3):
        assert run_concurrently([ev_a, ev_b]) == []
        per_device = Counter(Participation.objects.values_list("device_id", flat=True))
        assert len(per_device) == 25 and set(per_device.values()) == {1}
        decisions = Counter(Reservation.objects.values_list("decision", flat=True))
        assert decisions == {D.RESERVED: 25, D.OVERLAP: 25}


def test_two_events_of_one_program_never_exceed_the_season_limit():
    program, rule = make_program("one-per-season")
    rule.max_events_per_season = 1
    rule.save()
    for _ in range(20):
        active_participant(program=program, device_kwargs={"last_seen_at": NOW})
    first = EventFactory(program=program, status=EventStatus.SCHEDULED)
    second = EventFactory(program=program, status=EventStatus.SCHEDULED, start=la(2026, 7, 16, 15),
                          end=la(2026, 7, 16, 16))
    assert run_concurrently([first, second]) == []
    per_enrollment = Counter(Participation.objects.values_list("enrollment_id", flat=True))
    assert len(per_enrollment) == 20 and set(per_enrollment.values()) == {1}
    assert Counter(Reservation.objects.values_list("decision", flat=True)) == {D.RESERVED: 20, D.SEASON_LIMIT: 20}


def test_exclusion_constraint_refuses_overlapping_participations_in_the_database():
    a, _ = make_program("excl-a")
    b, _ = make_program("excl-b")
    sub = active_participant(program=a, device_kwargs={"last_seen_at": NOW})
    other = ProgramSubscriptionFactory(enrollment__program=b, device=sub.device, exclusive=False)
    ev_a = EventFactory(program=a)
    ev_b = EventFactory(program=b, start=la(2026, 7, 15, 17), end=la(2026, 7, 15, 19))
    Participation.objects.create(event=ev_a, subscription=sub, enrollment=sub.enrollment, device=sub.device,
                                 service_point=sub.enrollment.service_point, start=ev_a.start, end=ev_a.end)
    with pytest.raises(IntegrityError, match="participation_device_no_overlap"):
        Participation.objects.create(event=ev_b, subscription=other, enrollment=other.enrollment,
                                     device=sub.device, service_point=other.enrollment.service_point,
                                     start=ev_b.start, end=ev_b.end)
    # Back-to-back windows ([start, end) half-open) are allowed.
    ev_c = EventFactory(program=b, start=ev_a.end, end=ev_a.end + dt.timedelta(hours=1))
    Participation.objects.create(event=ev_c, subscription=other, enrollment=other.enrollment, device=sub.device,
                                 service_point=other.enrollment.service_point, start=ev_c.start, end=ev_c.end)


def test_composite_key_refuses_a_row_whose_enrollment_is_not_its_subscriptions():
    """Migration 0008: one foreign key (subscription_id, enrollment_id) on the ledger and on participations checks
    that the subscription exists and that the row's enrollment is the subscription's own (deferred: checked when
    each autocommitted INSERT commits)."""
    program, _ = make_program("composite-key")
    sub = active_participant(program=program, device_kwargs={"last_seen_at": NOW})
    stranger = active_participant(program=program, device_kwargs={"last_seen_at": NOW})
    event = EventFactory(program=program)
    with pytest.raises(IntegrityError, match="participation_subscription_enrollment_fk"):
        Participation.objects.create(event=event, subscription=sub, enrollment=stranger.enrollment,
                                     device=sub.device, service_point=sub.enrollment.service_point,
                                     start=event.start, end=event.end)
    with pytest.raises(IntegrityError, match="reservation_subscription_enrollment_fk"):
        Reservation.objects.create(event=event, subscription=sub, enrollment=stranger.enrollment,
                                   device=sub.device, service_point=sub.enrollment.service_point,
                                   decision=D.RESERVED, detail="", decided_at=NOW)
    with pytest.raises(IntegrityError, match="reservation_subscription_enrollment_fk"):
        Reservation.objects.create(event=event, subscription_id=sub.pk + stranger.pk + 1_000_000,
                                   enrollment=sub.enrollment, device=sub.device,
                                   service_point=sub.enrollment.service_point, decision=D.RESERVED,
                                   detail="", decided_at=NOW)
    # The row of the subscription's own enrollment is accepted.
    Reservation.objects.create(event=event, subscription=sub, enrollment=sub.enrollment, device=sub.device,
                               service_point=sub.enrollment.service_point, decision=D.RESERVED, detail="",
                               decided_at=NOW)
    assert Reservation.objects.filter(event=event).count() == 1
