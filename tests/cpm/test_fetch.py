"""``cpm.base.fetch.fetch_rows``: the rows of a values_list queryset in one driver call, the same values as
``list(queryset)`` (decimals, aware datetimes, dates, texts, annotations, NULLs), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Count

from cpm.base.fetch import fetch_rows
from devices.models import Device
from enrollments.models import ProgramSubscription
from tests.factories.devices import DeviceFactory
from tests.factories.enrollments import ProgramSubscriptionFactory

pytestmark = pytest.mark.django_db


def test_fetch_rows_gives_the_values_list_rows():
    DeviceFactory(capacity_kw=Decimal("2.250"), last_seen_at=dt.datetime(2026, 7, 1, 12, 5, tzinfo=dt.UTC))
    DeviceFactory(capacity_kw=Decimal("0.500"), last_seen_at=None, status="inactive")
    qs = Device.objects.order_by("pk").values_list("pk", "status", "capacity_kw", "last_seen_at", "serial_number")
    rows = fetch_rows(qs)
    assert rows == list(qs)
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("active", Decimal("2.250"), dt.datetime(2026, 7, 1, 12, 5, tzinfo=dt.UTC)),
        ("inactive", Decimal("0.500"), None)]
    assert type(rows[0][2]) is Decimal  # SQLite stores it as a number: Django's converter applies


def test_fetch_rows_of_dates_and_an_aggregate():
    a = ProgramSubscriptionFactory(start_date=dt.date(2026, 6, 1), end_date=dt.date(2026, 9, 30))
    ProgramSubscriptionFactory(enrollment=a.enrollment, start_date=dt.date(2026, 7, 1), end_date=None)
    qs = (ProgramSubscription.objects.values("enrollment_id").annotate(n=Count("pk")).order_by()
          .values_list("enrollment_id", "n"))
    assert fetch_rows(qs) == list(qs) == [(a.enrollment_id, 2)]
    dates = ProgramSubscription.objects.order_by("pk").values_list("start_date", "end_date")
    assert fetch_rows(dates) == [(dt.date(2026, 6, 1), dt.date(2026, 9, 30)), (dt.date(2026, 7, 1), None)]


def test_fetch_rows_of_an_empty_id_list_runs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert fetch_rows(Device.objects.filter(pk__in=[]).values_list("pk", "status")) == []


def test_fetch_rows_refuses_flat_and_named_rows():
    with pytest.raises(TypeError, match="values_list"):
        fetch_rows(Device.objects.values_list("pk", flat=True))
    with pytest.raises(TypeError, match="values_list"):
        fetch_rows(Device.objects.values_list("pk", named=True))
