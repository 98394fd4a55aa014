"""A kW-drop file with a time at the edge of the calendar (issue 15: a parser never raises on bad content). An
``ActualStartTime`` of ``9999-12-31T23:00:00-05:00`` (year 10000 in UTC) or ``0001-01-01T00:00:00+05:00`` raised
``OverflowError`` out of the parser: the whole load failed ("OverflowError: date value out of range (at
kwdrop.py:179)"), its good records with it. Such a time is now the record's error naming the column, as any time
outside ``CPM_METER_YEARS``."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase

from settlement.meterdata.loaders import meter_data_load_submit
from tests.actors import TEST_ACTOR

pytestmark = pytest.mark.django_db
HEAD = "EventId,ProgramId,SPId,ActualStartTime,ActualEndTime,IntervalSize(Seconds),MaxKwDrop,KwDrop1\n"


@pytest.mark.parametrize("start", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00",
                                   "1066-10-14T09:00:00+00:00"])
def test_a_time_beyond_the_years_is_the_records_error(settings, tmp_path, start):
    settings.MEDIA_ROOT = tmp_path
    text = f"{HEAD}1,P,SP,{start},2026-07-15T16:00:00-07:00,900,,1\n"
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="kw_drop", content=text.encode(),
                                      now=dt.datetime(2026, 12, 7, tzinfo=dt.UTC), actor=TEST_ACTOR)
    load.refresh_from_db()
    assert load.status == "completed_with_errors"
    assert {(e["row"], e["field"]): e["message"] for e in load.errors}[(2, "ActualStartTime")] == (
        f"{start} is outside the years 1900-2100")
