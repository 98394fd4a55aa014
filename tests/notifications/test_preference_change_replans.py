"""A customer who changes how they hear from us after an event's notices were planned (a CSR on the phone: "text
me instead") gets the notice on the new channel. Before, the e-mail notice was suppressed at sending ("contact
preference changed after it was planned") and no SMS was planned (the event's plan was marked done for its
reservation): the customer was never told, and a peak-time rebate released them as not notified."""

import datetime as dt

import pytest
from django.core import mail

from cpm.notifications import services
from cpm.notifications.channels import LocmemSmsBackend
from cpm.notifications.choices import ContactChoice, MessageKind, MessageStatus
from cpm.notifications.models import Message
from cpm.notifications.tasks import send_due
from tests.actors import TEST_ACTOR
from tests.factories.settlement import run_on_commit

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
K, S = MessageKind, MessageStatus
PLANNED = dt.datetime(2026, 7, 14, 16, 0, tzinfo=UTC)  # the day before; notices due Jul 15 13:00 PDT (20:00 UTC)
NOTIFY = dt.datetime(2026, 7, 15, 20, 0, tzinfo=UTC)


def tick(now):
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)


def rows():
    return sorted((m.kind, m.channel, m.status) for m in Message.objects.filter(kind__in=[K.EVENT_NOTICE,
                                                                                          K.REMINDER]))


def test_switching_to_sms_after_the_plan_sends_the_notice_by_sms(program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com", phone="+15035550101")
    reserved_event(program, [ana])
    tick(PLANNED)
    assert rows() == [(K.EVENT_NOTICE, "email", S.QUEUED), (K.REMINDER, "email", S.QUEUED)]
    services.contact_preference_set(customer=ana.enrollment.account.customer, channel=ContactChoice.SMS,
                                    now=PLANNED + dt.timedelta(hours=1), actor=TEST_ACTOR)
    tick(NOTIFY)
    assert [m.body[:60] for m in LocmemSmsBackend.outbox] == [
        "Cool Rewards: event Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT."]
    assert mail.outbox == []
    notice = Message.objects.get(kind=K.EVENT_NOTICE, channel="sms")
    assert (notice.status, notice.recipient, notice.due_at) == (S.SENT, "+15035550101", NOTIFY)
    assert rows() == [(K.EVENT_NOTICE, "email", S.SUPPRESSED), (K.EVENT_NOTICE, "sms", S.SENT),
                      (K.REMINDER, "email", S.QUEUED), (K.REMINDER, "sms", S.QUEUED)]


def test_a_notice_already_sent_is_not_sent_again_on_the_new_channel(program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com", phone="+15035550101")
    reserved_event(program, [ana])
    tick(NOTIFY)  # the notice goes by e-mail
    services.contact_preference_set(customer=ana.enrollment.account.customer, channel=ContactChoice.SMS,
                                    now=NOTIFY + dt.timedelta(minutes=10), actor=TEST_ACTOR)
    tick(NOTIFY + dt.timedelta(minutes=11))
    assert LocmemSmsBackend.outbox == []
    # Its reminder (not sent yet) goes by SMS.
    assert rows() == [(K.EVENT_NOTICE, "email", S.SENT), (K.REMINDER, "email", S.QUEUED),
                      (K.REMINDER, "sms", S.QUEUED)]
