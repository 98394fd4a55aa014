"""The opt-out page promised "We will send you a confirmation" to a customer who had since asked for no messages
(no confirmation is planned for them). It promises one only when one is planned now."""

import datetime as dt
import re

import pytest
from django.core import mail

from cpm.notifications import services, views
from cpm.notifications.choices import ContactChoice, MessageKind
from cpm.notifications.models import Message
from cpm.notifications.tasks import send_due
from tests.actors import TEST_ACTOR
from tests.factories.settlement import run_on_commit

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
SENT_AT = dt.datetime(2026, 7, 15, 20, 0, tzinfo=dt.UTC)


def test_no_confirmation_promised_to_a_customer_who_wants_no_messages(client, monkeypatch, program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    ben = participant(program, first="Ben", last="Okafor", email="ben@example.com")
    reserved_event(program, [ana, ben])
    services.notifications_tick(now=SENT_AT, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=SENT_AT)
    paths = {m.to[0]: re.search(r"https://cpm\.example(/notices/opt-out/\S+/)", m.body).group(1)
             for m in mail.outbox}
    services.contact_preference_set(customer=ana.enrollment.account.customer, channel=ContactChoice.NONE,
                                    now=SENT_AT + dt.timedelta(minutes=1), actor=TEST_ACTOR)
    monkeypatch.setattr(views, "_now", lambda: SENT_AT + dt.timedelta(minutes=5))
    done = client.post(paths["ana@example.com"]).content.decode()
    assert "You are opted out" in done and "We will send you a confirmation" not in done
    assert not Message.objects.filter(kind=MessageKind.OPT_OUT_CONFIRMATION).exists()
    told = client.post(paths["ben@example.com"]).content.decode()
    assert "You are opted out" in told and "We will send you a confirmation." in told
    assert Message.objects.get(kind=MessageKind.OPT_OUT_CONFIRMATION).recipient == "ben@example.com"
