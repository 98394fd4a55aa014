"""QA (rules): a device skipped from a scheduled event because of another event's limits (day, week, season,
hours, rest, consecutive days) or because another event held it at the same time is called when that other event
is cancelled, moved away or no longer calls it: the scheduled events it was skipped from are reserved again, and
their ledger no longer names an event that does not count."""

from decimal import Decimal

import pytest

from events import services
from events.choices import ParticipationStatus
from events.choices import ReservationDecision as D
from events.models import Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.events import la
from tests.factories.programs import ProgramFactory, SeasonFactory

from .test_services import scheduled

pytestmark = pytest.mark.django_db


def participant(program, now, **device):
    return active_participant(program=program, device_kwargs={"last_seen_at": now, **device})


def row(event, sub):
    r = Reservation.objects.get(event=event, subscription=sub)
    return r.decision, r.detail


def status(event, sub):
    return Participation.objects.filter(event=event, subscription=sub).values_list("status", flat=True).first()


def test_cancelling_an_event_gives_its_devices_to_the_event_the_day_limit_skipped_them_from(
        program, rule, july_now, django_capture_on_commit_callbacks):
    """One event a day: the 14:00 event took device a, so the 17:00 event skipped it ('Already 1 event on
    2026-07-15'). The 14:00 event is cancelled: it no longer counts, so the 17:00 event calls a."""
    rule.max_events_per_day = 1
    rule.save()
    a = participant(program, july_now)
    first = scheduled(program, july_now, la(2026, 7, 15, 14), la(2026, 7, 15, 15))
    second = scheduled(program, july_now, la(2026, 7, 15, 17), la(2026, 7, 15, 18))
    assert row(second, a) == (D.DAY_LIMIT, "Already 1 event on 2026-07-15; the program allows 1 per day.")
    assert status(second, a) is None
    with django_capture_on_commit_callbacks(execute=True):
        services.event_cancel(event=first, reason="Forecast dropped", now=july_now, actor=TEST_ACTOR)
    assert row(second, a) == (D.RESERVED, "0 other event(s) so far in Summer 2026.")
    assert status(second, a) == ParticipationStatus.RESERVED


def test_moving_an_event_to_another_week_frees_the_weekly_limit_of_the_event_it_blocked(
        program, rule, july_now, django_capture_on_commit_callbacks):
    """Two events a week: Monday and Tuesday took device a, so Wednesday skipped it. Tuesday's event is moved to
    the next week's Tuesday: Wednesday's week now holds one event of a, so Wednesday calls it."""
    rule.max_events_per_week = 2
    rule.save()
    a = participant(program, july_now)
    scheduled(program, july_now, la(2026, 7, 20, 15), la(2026, 7, 20, 16))
    tuesday = scheduled(program, july_now, la(2026, 7, 21, 15), la(2026, 7, 21, 16))
    wednesday = scheduled(program, july_now, la(2026, 7, 22, 15), la(2026, 7, 22, 16))
    assert row(wednesday, a) == (D.WEEK_LIMIT, "Already 2 events in the week of 2026-07-20; the program allows 2 "
                                               "per week.")
    with django_capture_on_commit_callbacks(execute=True):
        services.event_update(event=tuesday, changes={"start": la(2026, 7, 28, 15), "end": la(2026, 7, 28, 16)},
                              now=july_now, actor=TEST_ACTOR)
    assert row(wednesday, a) == (D.RESERVED, "1 other event(s) so far in Summer 2026, and 1 more scheduled after "
                                             "this one.")  # Monday, then July 28
    assert status(wednesday, a) == ParticipationStatus.RESERVED
    assert status(tuesday, a) == ParticipationStatus.RESERVED


def test_cancelling_an_event_of_another_program_frees_the_device_it_held_at_the_same_time(
        program, july_now, django_capture_on_commit_callbacks):
    """A device in two programs: the other program's event reserved it first for the same hours, so this program's
    event skipped it as an overlap. The other event is cancelled: this event calls the device."""
    other = ProgramFactory(code="ev-charge", allows_co_enrollment=True)
    SeasonFactory(program=other)
    program.allows_co_enrollment = True
    program.save()
    a = participant(program, july_now)
    b = active_participant(program=other, device_kwargs=False)
    b.device = a.device
    b.save()
    held = scheduled(other, july_now, la(2026, 7, 15, 15), la(2026, 7, 15, 17))
    mine = scheduled(program, july_now, la(2026, 7, 15, 16), la(2026, 7, 15, 18))
    assert row(mine, a)[0] == D.OVERLAP
    with django_capture_on_commit_callbacks(execute=True):
        services.event_cancel(event=held, reason="Grid relief not needed", now=july_now, actor=TEST_ACTOR)
    assert row(mine, a) == (D.RESERVED, "0 other event(s) so far in Summer 2026.")
    assert status(mine, a) == ParticipationStatus.RESERVED


def test_lowering_a_target_frees_the_rest_of_the_devices_it_no_longer_calls(
        program, rule, july_now, django_capture_on_commit_callbacks):
    """Two hours of rest: the 14:00-15:00 event called a and b, so the 16:00 event skipped both for rest. Its target
    is lowered to 5 kW: only a (5 kW, larger) stays; b is called at 16:00 again."""
    rule.min_rest_minutes = 120
    rule.save()
    a = participant(program, july_now, capacity_kw=Decimal("5"))
    b = participant(program, july_now, capacity_kw=Decimal("3"))
    first = scheduled(program, july_now, la(2026, 7, 15, 14), la(2026, 7, 15, 15))
    later = scheduled(program, july_now, la(2026, 7, 15, 16), la(2026, 7, 15, 18))
    assert row(later, b)[0] == D.REST
    with django_capture_on_commit_callbacks(execute=True):
        services.event_update(event=first, changes={"target_kw": Decimal("5")}, now=july_now, actor=TEST_ACTOR)
    assert row(first, b)[0] == D.TARGET_MET
    assert row(later, a)[0] == D.REST
    assert row(later, b) == (D.RESERVED, "0 other event(s) so far in Summer 2026.")
