"""The e-mail's Message-ID is derived from the message's key: a message handed twice (its sender killed before the
outcome was recorded, then handed again after the stall time) carries the same Message-ID both times."""

import pytest
from django.core import mail

from cpm.notifications import channels

pytestmark = pytest.mark.django_db


def test_the_e_mail_message_id_is_the_same_each_time_a_message_is_handed(settings):
    settings.CPM_NOTIFY_MESSAGE_ID_DOMAIN = "cpm.utility.example"
    item = channels.Outgoing("event_notice:e7.w1784152800-1784163600:c12:email", "email", "ana@example.com",
                             "Cool Rewards: energy event", "Hello")
    first, second = channels.send_emails([item]), channels.send_emails([item])
    expected = "<event_notice.e7.w1784152800-1784163600.c12.email@cpm.utility.example>"
    assert [r.provider_id for r in first + second] == [expected, expected]
    assert [m.extra_headers["Message-ID"] for m in mail.outbox] == [expected, expected]
