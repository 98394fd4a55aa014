"""Factories for settlement tests: events and participations with explicit statuses (built directly, without the
events services), interval data rows, price sets and a ready after-event program.

Defaults: a COMPLETED weekday event on Wednesday 2026-07-15, 16:00-19:00 America/Los_Angeles (23:00Z-02:00Z).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
import numpy as np

from events.choices import EventStatus, ParticipationStatus
from programs.models import IntervalPrice, IntervalPriceSet
from settlement.choices import Channel
from settlement.meterdata import intervals
from settlement.models import IntervalDay

from . import events as events_factories

EVENT_START = dt.datetime(2026, 7, 15, 23, 0, tzinfo=dt.UTC)  # 16:00 PDT
EVENT_END = dt.datetime(2026, 7, 16, 2, 0, tzinfo=dt.UTC)  # 19:00 PDT
RECEIVED_AT = dt.datetime(2026, 7, 17, 8, 0, tzinfo=dt.UTC)


class EventFactory(events_factories.EventFactory):
    """The events app's factory with settlement defaults: a COMPLETED event 16:00-19:00 PDT."""

    start = EVENT_START
    end = EVENT_END
    status = EventStatus.COMPLETED


class ParticipationFactory(events_factories.ParticipationFactory):
    """Pass ``subscription`` (e.g. from ``tests.factories.enrollments.active_participant``) and ``event``."""

    event = factory.SubFactory(EventFactory)
    status = ParticipationStatus.PARTICIPATED


def write_hourly(*, service_point, first: dt.date, last: dt.date, kwh: float = 2.0, overrides=None, device=None,
                 channel: str = Channel.DELIVERED, missing_days=()) -> int:
    """Hourly IntervalDay rows for UTC days ``first..last`` at ``kwh`` per hour; ``overrides`` maps a UTC hour start
    to kWh (NaN = missing). Returns the number of rows written."""
    overrides = overrides or {}
    rows = []
    day = first
    while day <= last:
        if day not in missing_days:
            values = np.full(24, kwh)
            for instant, value in overrides.items():
                if instant.date() == day:
                    values[instant.hour] = value
            rows.append(IntervalDay(service_point=service_point, device=device, channel=channel, day=day,
                                    interval_minutes=60, values=intervals.encode(values), received_at=RECEIVED_AT))
        day += dt.timedelta(days=1)
    IntervalDay.objects.bulk_create(rows)
    return len(rows)


def write_intervals(*, service_point, first: dt.date, last: dt.date, interval_minutes: int, kwh: float,
                    overrides=None, device=None, channel: str = Channel.DELIVERED) -> int:
    """IntervalDay rows of ``interval_minutes`` (5, 15, 30, 60) for UTC days ``first..last`` at ``kwh`` per interval;
    ``overrides`` maps a UTC interval start to its kWh. Returns the number of rows written."""
    overrides = overrides or {}
    per_day = 1440 // interval_minutes
    rows = []
    day = first
    while day <= last:
        values = np.full(per_day, kwh)
        for instant, value in overrides.items():
            if instant.date() == day:
                values[(instant.hour * 60 + instant.minute) // interval_minutes] = value
        rows.append(IntervalDay(service_point=service_point, device=device, channel=channel, day=day,
                                interval_minutes=interval_minutes, values=intervals.encode(values),
                                received_at=RECEIVED_AT))
        day += dt.timedelta(days=1)
    IntervalDay.objects.bulk_create(rows)
    return len(rows)


def event_hours(start: dt.datetime = EVENT_START, hours: int = 3) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=h) for h in range(hours)]


def price_set(*, program, prices: dict[dt.datetime, str], name: str = "Day-ahead") -> IntervalPriceSet:
    ps = IntervalPriceSet.objects.create(program=program, name=name, interval_minutes=60)
    IntervalPrice.objects.bulk_create([IntervalPrice(price_set=ps, interval_start=k, price_per_kwh=Decimal(v))
                                       for k, v in prices.items()])
    return ps


def run_on_commit():
    """Context manager running ``transaction.on_commit`` callbacks (enqueued Celery groups) at its exit, inside a
    test transaction."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


class EventSettlementFactory(factory.django.DjangoModelFactory):
    """An event settlement row for a participation (without measuring): pass ``participation``."""

    class Meta:
        model = "settlement.EventSettlement"

    participation = factory.SubFactory(ParticipationFactory)
    event = factory.LazyAttribute(lambda o: o.participation.event)
    program = factory.LazyAttribute(lambda o: o.participation.event.program)
    enrollment = factory.LazyAttribute(lambda o: o.participation.enrollment)
    account = factory.LazyAttribute(lambda o: o.participation.enrollment.account)
    service_point = factory.LazyAttribute(lambda o: o.participation.service_point)
    device = factory.LazyAttribute(lambda o: o.participation.device)
    event_day = factory.LazyAttribute(lambda o: o.participation.event.start.astimezone(
        __import__("zoneinfo").ZoneInfo(o.participation.event.program.time_zone)).date())
    status = "calculated"
    method = "caiso-10-in-10"
    created_at = RECEIVED_AT
    updated_at = RECEIVED_AT
