"""A CSV of local times (a load's ``tz``) with an interval start at the edge of the calendar (issue 15: a parser never
raises on bad content). ``9999-12-31T23:00`` in America/Los_Angeles is in year 10000 in UTC and
``0001-01-01T00:00`` in Asia/Tokyo before year 1: converting them raised ``OverflowError`` out of the parser, failing
the whole load ("date value out of range") and every good row with it. They are now the row's error, the years
message any other out-of-range start gets, and the rest of the file loads."""

from __future__ import annotations

import datetime as dt

import pytest

from settlement.meterdata.csvreadings import parse_csv
from settlement.meterdata.loaders import meter_csv_load
from settlement.models import IntervalDay
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory

HEAD = "service_point_id,channel,interval_start,interval_minutes,kwh\n"


@pytest.mark.parametrize("tz, edge", [("America/Los_Angeles", "9999-12-31T23:00"),
                                      ("Asia/Tokyo", "0001-01-01T00:00")])
def test_the_parser_reports_a_start_beyond_the_calendar_as_its_row(tz, edge):
    parsed = parse_csv(f"{HEAD}SP-1,delivered,2026-07-01T10:00,60,1.5\nSP-1,delivered,{edge},60,2\n", tz=tz)
    assert [(e["row"], e["field"], e["message"]) for e in parsed.errors] == [
        (3, "interval_start", f"{edge} is outside the years 1900-2100")]
    assert list(parsed.rows) == [2] and list(parsed.kwh) == [1.5]


@pytest.mark.django_db
def test_the_load_keeps_its_good_rows(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    ServicePointFactory(service_point_id="SP-1")
    text = f"{HEAD}SP-1,delivered,2026-07-01T10:00,60,1.5\nSP-1,delivered,9999-12-31T23:00,60,2\n"
    load = meter_csv_load(content=text.encode(), now=dt.datetime(2026, 12, 7, tzinfo=dt.UTC), file_name="r.csv",
                          tz="America/Los_Angeles", actor=TEST_ACTOR)
    assert (load.status, load.summary) == ("completed_with_errors", "1 new, 0 unchanged, 0 corrected, 1 rejected")
    assert [(e["row"], e["field"]) for e in load.errors] == [(3, "interval_start")]
    assert IntervalDay.objects.count() == 1
