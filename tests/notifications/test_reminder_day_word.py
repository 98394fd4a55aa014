"""A reminder says which day the event is on as the customer reads it when it arrives. The default wording said
"event today" always; a reminder of a night event (00:00 PDT - 04:00 PST on the fall-back night, 2026-11-01) is due
an hour before, 23:00 on October 31, inside quiet hours, and goes at 23:30 (the urgent lead): it read "event today
Sun Nov 1" on Saturday evening. It now reads "tomorrow" when it goes the day before, "today" on the day."""

import datetime as dt

import pytest
from django.core import mail

from cpm.notifications import services
from cpm.notifications.choices import MessageKind
from cpm.notifications.models import Message
from cpm.notifications.tasks import send_due
from tests.actors import TEST_ACTOR
from tests.factories.events import la
from tests.factories.settlement import run_on_commit

from .conftest import participant, reserved_event

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def tick(now):
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)


def test_a_night_events_reminder_sent_the_evening_before_says_tomorrow(program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    # ``hours`` is added on the wall clock: 00:00 PDT + 4 = 04:00 PST, five real hours
    reserved_event(program, [ana], start=la(2026, 11, 1, 0), hours=4, notify_before=dt.timedelta(hours=20))
    tick(dt.datetime(2026, 10, 31, 12, tzinfo=UTC))
    reminder = Message.objects.get(kind=MessageKind.REMINDER)
    assert reminder.due_at == dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 23:30 PDT on Saturday, October 31
    mail.outbox.clear()
    tick(reminder.due_at)
    assert [m.subject for m in mail.outbox if m.subject.startswith("Reminder")] == [
        "Reminder: Cool Rewards event tomorrow Sun Nov 1, 2026 12:00 AM PDT to 4:00 AM PST"]


def test_a_reminder_on_the_event_day_still_says_today(program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    reserved_event(program, [ana], start=la(2026, 11, 1, 15), hours=3, notify_before=dt.timedelta(hours=20))
    tick(dt.datetime(2026, 10, 31, 12, tzinfo=UTC))
    reminder = Message.objects.get(kind=MessageKind.REMINDER)
    mail.outbox.clear()
    tick(reminder.due_at)
    assert [m.subject for m in mail.outbox if m.subject.startswith("Reminder")] == [
        "Reminder: Cool Rewards event today Sun Nov 1, 2026 3:00 PM to 6:00 PM PST"]
