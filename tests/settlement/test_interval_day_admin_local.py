"""An interval day in the admin: stored per UTC day, read by a person in local time. Its values were a bare list
of 24 numbers under "Day: Nov. 1, 2026" (the UTC day: 17:00 PDT on October 31 to 16:00 PST on November 1), so the
two 01:00 hours of the 25-hour fall-back day could not be found, nor any hour told from another. Each value now
stands beside its local interval start in the display zone, with the abbreviation (a line per hour), and the list
says its day is a UTC day."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import numpy as np
import pytest

from settlement.meterdata import intervals
from settlement.meterdata.models import IntervalDay
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    assert response.status_code == 200
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


def test_the_values_of_a_utc_day_read_by_local_hour(admin_client, settings):
    settings.CPM_DISPLAY_TIME_ZONE = "America/Los_Angeles"
    values = np.arange(24, dtype=float) / 10
    values[3] = np.nan
    day = IntervalDay.objects.create(service_point=ServicePointFactory(), channel="delivered",
                                     day=dt.date(2026, 11, 1), interval_minutes=60, values=intervals.encode(values),
                                     received_at=dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    text = _text(admin_client.get(f"/admin/settlement/intervalday/{day.pk}/change/"))
    assert "2026-10-31 17:00 PDT: 0.000" in text  # 00:00 UTC
    assert "2026-10-31 20:00 PDT: (missing)" in text
    assert "2026-11-01 01:00 PDT: 0.800" in text and "2026-11-01 01:00 PST: 0.900" in text
    assert "2026-11-01 15:00 PST: 2.300" in text  # 23:00 UTC, the last hour
    listing = _text(admin_client.get("/admin/settlement/intervalday/"))
    assert "Day (UTC)" in listing


def test_a_finer_day_lists_one_line_per_local_hour(admin_client, settings):
    settings.CPM_DISPLAY_TIME_ZONE = "America/New_York"
    day = IntervalDay.objects.create(service_point=ServicePointFactory(), channel="delivered",
                                     day=dt.date(2026, 7, 15), interval_minutes=15,
                                     values=intervals.encode(np.full(96, 0.25)),
                                     received_at=dt.datetime(2026, 7, 16, tzinfo=dt.UTC))
    text = _text(admin_client.get(f"/admin/settlement/intervalday/{day.pk}/change/"))
    assert "2026-07-14 20:00 EDT: 0.250, 0.250, 0.250, 0.250" in text
    assert text.count(" EDT: ") == 24
