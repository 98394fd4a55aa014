"""Factories for interval data: a meter data load record and a stored UTC day of readings."""

import datetime as dt

import factory
import numpy as np

from settlement.meterdata import intervals
from settlement.models import IntervalDay, MeterDataLoad
from tests.factories.devices import ServicePointFactory


class MeterDataLoadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MeterDataLoad

    source = MeterDataLoad.Source.CSV
    file_name = "readings.csv"
    created_at = dt.datetime(2026, 5, 15, 16, 0, tzinfo=dt.UTC)


class IntervalDayFactory(factory.django.DjangoModelFactory):
    """A UTC day of hourly readings at 1 kWh per hour unless ``values`` is given."""

    class Meta:
        model = IntervalDay

    service_point = factory.SubFactory(ServicePointFactory)
    day = dt.date(2026, 5, 14)
    interval_minutes = 60
    values = factory.LazyAttribute(lambda o: intervals.encode(np.ones(1440 // o.interval_minutes)))
    received_at = dt.datetime(2026, 5, 15, 6, 0, tzinfo=dt.UTC)
