"""A Green Button file every reading of which is refused (issue 15: each error names its reading and field). Such a
load failed with "no interval readings found", the readings' own errors (a zero or negative duration, a start off the
grid, a value beyond any number) dropped: the operator was told the file had no readings, not what was wrong with
them. It now completes with errors, like a CSV whose every row is refused: 0 new, N rejected, each reading named."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase

from settlement.meterdata.loaders import meter_data_load_submit
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.badfiles.meter_corpus import _feed
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db
T0 = int(dt.datetime(2026, 5, 14, tzinfo=dt.UTC).timestamp())


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _load(readings, now) -> MeterDataLoad:
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="green_button", content=_feed(readings).encode(), now=now,
                                      service_point_id="SP-1", actor=TEST_ACTOR)
    load.refresh_from_db()
    return load


def test_a_file_of_only_refused_readings_names_each_one(now):
    ServicePointFactory(service_point_id="SP-1")
    readings = [(str(T0), "0", "500"), ("-1", "3600", "500"), (str(T0 + 3600), "3600", "1e400")]
    for _ in range(2):  # a re-run says the same and changes nothing
        load = _load(readings, now)
        assert (load.status, load.summary) == ("completed_with_errors", "0 new, 0 unchanged, 0 corrected, 3 rejected")
        assert [(e["row"], e["field"], e["message"]) for e in load.errors] == [
            (1, "timePeriod", f"interval of 0 s at {T0} is not on a 5/15/30/60-minute grid (IntervalReading 1, in "
                              "IntervalBlock 1)"),
            (2, "timePeriod", "interval of 3600 s at -1 is not on a 5/15/30/60-minute grid (IntervalReading 2, in "
                              "IntervalBlock 1)"),
            (3, "value", "1e400 Wh x 10^0 is not a finite number (IntervalReading 3, in IntervalBlock 1)")]
        assert not IntervalDay.objects.exists()


def test_a_file_without_readings_still_fails_as_such(now):
    ServicePointFactory(service_point_id="SP-1")
    load = _load([], now)
    assert load.status == "failed"
    assert [e["message"] for e in load.errors] == ["no interval readings found"]
