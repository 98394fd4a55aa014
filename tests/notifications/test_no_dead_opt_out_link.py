"""A message sent after the program's opt-out cut-off carried the one-click link anyway: a reminder an hour before
the start of a program whose opt-outs close two hours before read "Opt out of this event with one click (until Wed
Jul 15, 2026 1:00 PM PDT)" at 2:00 PM, and the link was refused when used. Past the cut-off the message now has no
link and says opt-outs are closed."""

import datetime as dt

import pytest
from django.core import mail

from cpm.notifications import services
from cpm.notifications.channels import LocmemSmsBackend
from cpm.notifications.choices import ContactChoice, MessageKind
from cpm.notifications.models import Message
from cpm.notifications.tasks import send_due
from tests.actors import TEST_ACTOR
from tests.factories.settlement import run_on_commit

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOTIFY = dt.datetime(2026, 7, 15, 19, 0, tzinfo=UTC)  # 12:00 PDT; the event runs 15:00-18:00 PDT
REMINDER = dt.datetime(2026, 7, 15, 21, 0, tzinfo=UTC)  # 14:00 PDT, an hour before the start


def tick(now):
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)


def test_a_reminder_past_the_cut_off_has_no_link(program):
    program.participation_rules.update(opt_out_cutoff_minutes=120)  # opt-outs close at 13:00 PDT
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com", phone="+15035550101")
    services.contact_preference_set(customer=ana.enrollment.account.customer, channel=ContactChoice.BOTH,
                                    now=NOTIFY, actor=TEST_ACTOR)
    reserved_event(program, [ana], notify_before=dt.timedelta(hours=3))
    tick(NOTIFY)
    [notice] = [m for m in mail.outbox if m.subject.startswith("Cool Rewards: energy event")]
    assert ("Opt out of this event with one click (until Wed Jul 15, 2026 1:00 PM PDT):\n"
            "https://cpm.example/notices/opt-out/") in notice.body
    tick(REMINDER)
    [reminder] = [m for m in mail.outbox if m.subject.startswith("Reminder")]
    assert reminder.body == (
        "Hello Ana Lopez,\n\nA reminder: the Cool Rewards event runs Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT.\n\n"
        "Opt-outs for this event closed at Wed Jul 15, 2026 1:00 PM PDT.\n\n-- Cool Rewards")
    sms = LocmemSmsBackend.outbox[-1]
    assert sms.body == "Reminder: Cool Rewards event Wed Jul 15, 2026 3:00 PM to 6:00 PM PDT."
    assert "/notices/opt-out/" not in Message.objects.get(kind=MessageKind.REMINDER, channel="email").body
