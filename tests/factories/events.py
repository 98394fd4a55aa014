"""Factories for the events app. ``EventFactory`` builds a DRAFT 2026-07-15 15:00-18:00 America/Los_Angeles
(22:00-01:00 UTC) event notified at 13:00 local."""

import datetime as dt

import factory

from events.choices import EventCategory, EventDirection, EventStatus
from events.models import Event, Participation, Unavailability

from .programs import ProgramFactory


def la(year, month, day, hour=0, minute=0):
    """An aware America/Los_Angeles wall-clock instant (tests read in local time)."""
    from zoneinfo import ZoneInfo

    return dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("America/Los_Angeles"))


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    program = factory.SubFactory(ProgramFactory)
    name = factory.Sequence(lambda n: f"Event {n}")
    category = EventCategory.ECONOMIC
    direction = EventDirection.REDUCE
    start = factory.LazyFunction(lambda: la(2026, 7, 15, 15))
    end = factory.LazyAttribute(lambda o: o.start + dt.timedelta(hours=3))
    notification_at = factory.LazyAttribute(lambda o: o.start - dt.timedelta(hours=2))
    status = EventStatus.DRAFT


class ParticipationFactory(factory.django.DjangoModelFactory):
    """A participation copying its event window (pass ``event`` and ``subscription``)."""

    class Meta:
        model = Participation

    subscription = None
    enrollment = factory.LazyAttribute(lambda o: o.subscription.enrollment)
    device = factory.LazyAttribute(lambda o: o.subscription.device)
    service_point = factory.LazyAttribute(lambda o: o.subscription.enrollment.service_point)
    start = factory.LazyAttribute(lambda o: o.event.start)
    end = factory.LazyAttribute(lambda o: o.event.end)


class UnavailabilityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Unavailability

    start = factory.LazyFunction(lambda: la(2026, 7, 15, 0))
    end = factory.LazyFunction(lambda: la(2026, 7, 16, 0))
    reason = "Out of town"
