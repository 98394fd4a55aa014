"""A peak-time rebate's customers the notice did not reach are released only once the event's notices were
planned for its reservation as it stands: a tick that ran at notification time while the reservation was still
under way (its task enqueued on commit, 11 s at 100k) released nobody and marked the event done for good, so the
customers without an address were never released and were settled on an event nobody told them of."""

import datetime as dt
from decimal import Decimal

import pytest

from cpm.notifications import services
from cpm.notifications.choices import MessageKind, MessageStatus
from cpm.notifications.models import Message
from events.choices import EventStatus, ParticipationStatus
from events.models import Event, Participation, Reservation
from programs.choices import ProgramType
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import AccountFactory, CustomerFactory, active_participant
from tests.factories.events import EventFactory, ParticipationFactory, la
from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import run_on_commit

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def tick(now):
    from cpm.notifications.tasks import send_due

    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)


def test_a_tick_before_the_reservation_commits_does_not_close_the_release(db):
    ptr = ProgramFactory(code="ptr", name="Peak Time Rebates", program_type=ProgramType.PEAK_TIME_REBATE,
                         requires_device=False, eligible_device_types=[])
    SeasonFactory(program=ptr)
    ParticipationRuleFactory(program=ptr)
    IncentiveRuleFactory(program=ptr, amount=Decimal("1.00"))
    told = active_participant(program=ptr, device_kwargs=False, account=AccountFactory(
        customer=CustomerFactory(first_name="Ana", last_name="Lopez", email="ana@example.com")))
    silent = active_participant(program=ptr, device_kwargs=False, account=AccountFactory(
        customer=CustomerFactory(first_name="Ben", last_name="Okafor", email="", phone="")))
    start = la(2026, 7, 15, 15)
    notify = start - dt.timedelta(hours=23)  # 16:00 PDT the day before
    # Scheduled "notify now": dispatched at notification time, its reservation still running.
    event = EventFactory(program=ptr, start=start, end=start + dt.timedelta(hours=3), notification_at=notify,
                         status=EventStatus.DISPATCHED, reserved_at=None)
    counts = services.notifications_tick(now=notify, actor=TEST_ACTOR)
    assert (counts["notices"], counts["ptr_unnotified_released"]) == (0, 0)

    # The reservation commits a few seconds later: both customers take part.
    for sub in (told, silent):
        p = ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.DISPATCHED)
        Reservation.objects.create(event=event, subscription=sub, enrollment=p.enrollment,
                                   service_point=p.service_point, decision="reserved", decided_at=notify)
    Event.objects.filter(pk=event.pk).update(reserved_at=notify + dt.timedelta(seconds=11))

    tick(notify + dt.timedelta(minutes=1))  # Ana's notice planned and sent
    tick(notify + dt.timedelta(minutes=2))  # every notice handled: Ben, never told, is released
    assert list(Message.objects.filter(kind=MessageKind.EVENT_NOTICE).values_list(
        "customer__first_name", "status")) == [("Ana", MessageStatus.SENT)]
    assert Participation.objects.get(subscription=told).status == ParticipationStatus.DISPATCHED
    assert Participation.objects.get(subscription=silent).status == ParticipationStatus.CANCELLED
    assert Reservation.objects.get(subscription=silent).decision == "released"
