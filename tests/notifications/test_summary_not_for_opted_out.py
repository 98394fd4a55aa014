"""The post-event summary thanks a customer "for taking part" with the kWh avoided and the credit. A customer who
opted out of the event (settled at $0, ``opted_out``) was sent it too: "Thank you for taking part ... Energy
avoided: 0 kWh, Your credit: $0.00" for an event they declined. Only the settlements of participations that took
part are summarised now."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail

from cpm.notifications import services
from cpm.notifications.choices import MessageKind
from cpm.notifications.models import Message
from cpm.notifications.tasks import send_due
from events.choices import ParticipationStatus
from settlement.choices import EventSettlementStatus
from tests.actors import TEST_ACTOR
from tests.factories.settlement import EventSettlementFactory, run_on_commit

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def settle(event, sub, status, *, opted_out, kwh, amount, at):
    p = event.participations.get(subscription=sub)
    type(p).objects.filter(pk=p.pk).update(status=status)
    EventSettlementFactory(participation=p, event=event, program=event.program, enrollment=p.enrollment,
                           account=p.enrollment.account, service_point=p.service_point,
                           status=EventSettlementStatus.APPROVED, opted_out=opted_out, kwh_avoided=kwh,
                           amount=amount, posted_amount=amount, approved_at=at)


def test_no_summary_to_a_customer_who_opted_out_of_the_event(program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    ben = participant(program, first="Ben", last="Okafor", email="ben@example.com")
    event = reserved_event(program, [ana, ben])
    approved = dt.datetime(2026, 7, 17, 18, tzinfo=UTC)
    settle(event, ana, ParticipationStatus.OPTED_OUT, opted_out=True, kwh=Decimal("0"), amount=Decimal("0.00"),
           at=approved)
    settle(event, ben, ParticipationStatus.PARTICIPATED, opted_out=False, kwh=Decimal("3.0000"),
           amount=Decimal("3.75"), at=approved)
    now = approved + dt.timedelta(minutes=1)
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)
    assert list(Message.objects.filter(kind=MessageKind.EVENT_SUMMARY).values_list(
        "customer__first_name", "status")) == [("Ben", "sent")]
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["ben@example.com"], "Your results: Cool Rewards event Wed Jul 15")]
    assert "Energy avoided: 3.00 kWh\nYour credit: $3.75" in mail.outbox[0].body
