"""Every object a person can open in the admin names itself in words (issue 17: 'Participation object (10)'):
the interval price and interval-day pages were titled 'IntervalPrice object (5)' and 'IntervalDay object (1)'."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import models

from programs.models import IntervalPrice, IntervalPriceSet
from settlement.meterdata.intervals import encode
from settlement.meterdata.models import IntervalDay
from tests.factories.devices import ServicePointFactory
from tests.factories.programs import ProgramFactory

APPS = ("cpm", "programs", "devices", "enrollments", "events", "settlement")


def test_every_model_in_the_admin_has_a_name_of_its_own():
    unnamed = [m._meta.label for m in apps.get_models() if m in admin.site._registry
               and m.__module__.split(".")[0] in APPS and m.__str__ is models.Model.__str__]
    assert unnamed == []


@pytest.mark.django_db
def test_an_interval_price_and_an_interval_day_read_in_words(admin_client):
    program = ProgramFactory(code="sce-tou", time_zone="America/Los_Angeles")
    price_set = IntervalPriceSet.objects.create(program=program, name="Summer 2026", interval_minutes=60)
    price = IntervalPrice.objects.create(price_set=price_set, price_per_kwh=Decimal("0.12500"),
                                         interval_start=dt.datetime(2026, 7, 15, 23, tzinfo=dt.UTC))
    assert str(price) == "sce-tou Summer 2026 from 2026-07-15 16:00 PDT: $0.125 per kWh"
    page = admin_client.get(f"/admin/programs/intervalprice/{price.pk}/change/").content.decode()
    assert "sce-tou Summer 2026 from 2026-07-15 16:00 PDT" in page and "object (" not in page
    day = IntervalDay.objects.create(service_point=ServicePointFactory(service_point_id="SP-7"), channel="delivered",
                                     day=dt.date(2026, 7, 15), interval_minutes=60, values=encode([1.0] * 24),
                                     received_at=dt.datetime(2026, 7, 16, tzinfo=dt.UTC))
    assert str(day) == "SP-7 delivered 2026-07-15 (UTC day), 60-minute intervals, version 1"
