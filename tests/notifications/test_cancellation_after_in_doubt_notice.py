"""An event cancelled while a batch of its notices is being handed to the channel (claimed SENDING on a sender,
or in doubt after a killed one): those customers' notices are recorded SENT after the cancellation was planned.
Before, the cancellation step marked the event done at its first run, so they were told of the event and never of
its cancellation. Now the customers told so far are told at once, and the step runs again while a notice is in
hand or more notices have been sent since."""

import datetime as dt

import pytest
from django.core import mail

from cpm.notifications import services
from cpm.notifications.choices import MessageKind, MessageStatus
from cpm.notifications.models import Message
from events import services as event_services
from tests.actors import TEST_ACTOR

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 7, 15, 20, 0, tzinfo=UTC)  # 13:00 PDT; the event runs 15:00-18:00 PDT


def send_all(now):
    return services.messages_send(ids=services.messages_due(now=now), now=now)


def test_a_customer_whose_notice_was_in_hand_at_the_cancellation_is_told_of_it(program, monkeypatch, settings):
    from cpm.notifications import channels

    settings.CPM_NOTIFY_SEND_BATCH = 1
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    ben = participant(program, first="Ben", last="Okafor", email="ben@example.com")
    event = reserved_event(program, [ana, ben])
    services.notifications_tick(now=NOW, actor=TEST_ACTOR)
    real_send = channels.send
    during = {}

    def cancel_while_bens_notice_is_handed(items):
        if items[0].recipient == "ben@example.com":
            # Ana's notice is SENT, Ben's SENDING: the event is cancelled and the minute's tick runs.
            event_services.event_cancel(event=event, reason="cooler than forecast", now=NOW, actor=TEST_ACTOR)
            services.notifications_tick(now=NOW, actor=TEST_ACTOR)
            during["cancellations"] = sorted(Message.objects.filter(kind=MessageKind.CANCELLATION)
                                             .values_list("customer__first_name", flat=True))
        return real_send(items)

    monkeypatch.setattr(channels, "send", cancel_while_bens_notice_is_handed)
    assert send_all(NOW) == {"sent": 2, "failed": 0, "suppressed": 0}
    monkeypatch.setattr(channels, "send", real_send)
    assert during == {"cancellations": ["Ana"]}  # Ana, told, is told at once; Ben's notice is still in hand
    later = NOW + dt.timedelta(minutes=1)
    services.notifications_tick(now=later, actor=TEST_ACTOR)
    assert send_all(later)["sent"] == 2
    assert sorted((m.to[0], m.subject) for m in mail.outbox if m.subject.startswith("Cancelled")) == [
        ("ana@example.com", "Cancelled: Cool Rewards event Wed Jul 15"),
        ("ben@example.com", "Cancelled: Cool Rewards event Wed Jul 15")]
    # Replayed: nothing more.
    services.notifications_tick(now=later + dt.timedelta(minutes=1), actor=TEST_ACTOR)
    assert Message.objects.filter(kind=MessageKind.CANCELLATION).count() == 2
    assert set(Message.objects.filter(kind=MessageKind.CANCELLATION).values_list("status", flat=True)) == {
        MessageStatus.SENT}
