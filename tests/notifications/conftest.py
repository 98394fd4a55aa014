import datetime as dt

import pytest
from django.utils import timezone

from cpm.notifications import services
from cpm.notifications.channels import LocmemSmsBackend
from cpm.notifications.choices import ContactChoice
from cpm.notifications.models import Message
from events.choices import EventStatus, ParticipationStatus
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import AccountFactory, CustomerFactory, active_participant
from tests.factories.events import EventFactory, ParticipationFactory, la
from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory


@pytest.fixture(autouse=True)
def _channels(settings, tmp_path):
    settings.CPM_SMS_BACKEND = "cpm.notifications.channels.LocmemSmsBackend"
    settings.CPM_NOTIFY_OUTBOX_DIR = str(tmp_path / "outbox")
    settings.CPM_PUBLIC_BASE_URL = "https://cpm.example"
    settings.SECURE_SSL_REDIRECT = False
    LocmemSmsBackend.outbox.clear()
    yield
    LocmemSmsBackend.outbox.clear()


@pytest.fixture
def program(db):
    """An active LA thermostat program (summer season, weekdays 14:00-21:00) paying $1.25 per kWh avoided."""
    program = ProgramFactory(code="cool-rewards", name="Cool Rewards")
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    IncentiveRuleFactory(program=program)
    return program


def participant(program, *, first="Ana", last="Lopez", email="ana@example.com", phone="555-0101"):
    customer = CustomerFactory(first_name=first, last_name=last, email=email, phone=phone)
    return active_participant(program=program, account=AccountFactory(customer=customer))


def reserved_event(program, subscriptions, *, start=None, hours=3, notify_before=dt.timedelta(hours=2), **kw):
    """A DISPATCHED-ready SCHEDULED event with a RESERVED participation per subscription (reserved_at set)."""
    start = start or la(2026, 7, 15, 15)
    event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=hours),
                         notification_at=start - notify_before, status=EventStatus.SCHEDULED,
                         reserved_at=start - dt.timedelta(days=2), **kw)
    for sub in subscriptions:
        ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.RESERVED)
    return event


__all__ = ["participant", "reserved_event", "timezone"]


def queued_sms_notices(program, count: int, *, now: dt.datetime) -> list[int]:
    """``count`` participants who prefer SMS (no e-mail address), an event reserved for them and the tick at ``now``:
    the ids of their queued event notices, in id order."""
    subs = [participant(program, first=f"C{i}", last=f"Customer{i}", email="", phone=f"+1503555{i:04d}")
            for i in range(count)]
    for sub in subs:
        services.contact_preference_set(customer=sub.enrollment.account.customer, channel=ContactChoice.SMS,
                                        now=now, actor=TEST_ACTOR)
    reserved_event(program, subs)
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    return sorted(Message.objects.filter(kind="event_notice").values_list("pk", flat=True))
