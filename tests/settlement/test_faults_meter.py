"""Meter data bad input found by QA (issue 15): a value of a bulk reading or a CSV field holding a line break or a
quote stays that row's value, so errors name the right row and a reading never lands on another service point."""

from __future__ import annotations

import pytest
from django.test import TestCase

from settlement.meterdata import intervals
from settlement.meterdata.loaders import meter_csv_load
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SECURE_SSL_REDIRECT = False


def _stored() -> dict[str, list]:
    out = {}
    for day in IntervalDay.objects.filter(is_current=True).select_related("service_point"):
        values = intervals.decode(day.values)
        out[day.service_point.service_point_id] = [(h, float(v)) for h, v in enumerate(values) if v == v]
    return out


def test_bulk_values_with_line_breaks_and_quotes_stay_in_their_row(admin_api):
    """Reading 2 names the service point '"SP-2"' (quotes included): it is unknown, not SP-2. Readings 1 and 3 hold a
    line break in a value: each is one row with its own error; reading 4 is row 4."""
    ServicePointFactory(service_point_id="SP-1")
    ServicePointFactory(service_point_id="SP-2")
    readings = [
        {"service_point_id": "SP-1", "interval_start": "2026-05-14T00:00:00Z\n2026-05-14T05:00:00Z", "kwh": 1.0},
        {"service_point_id": '"SP-2"', "interval_start": "2026-05-14T01:00:00Z", "kwh": 2.0},
        {"service_point_id": "SP-1", "interval_start": "2026-05-14T02:00:00Z", "kwh": 3.0, "device": "a\u2028b"},
        {"service_point_id": "SP-1", "interval_start": "2026-05-14T03:00:00Z", "kwh": 4.0},
    ]
    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = admin_api.post("/api/v1/meter-data-loads/bulk/", {"readings": readings}, format="json")
    assert resp.status_code == 202, resp.content
    load = MeterDataLoad.objects.get(pk=resp.json()["id"])
    assert load.summary == "1 new, 0 unchanged, 0 corrected, 3 rejected"
    assert [(e["row"], e["field"]) for e in load.errors] == [(1, "interval_start"), (2, "service_point_id"),
                                                              (3, "device")]
    assert load.errors[1]["message"] == "unknown service point '\"SP-2\"'"
    assert _stored() == {"SP-1": [(3, 4.0)]}


def test_csv_line_numbers_survive_a_unicode_line_separator_in_a_field(now):
    """Only CR and LF end a CSV line: a form feed or U+2028 inside a field (a file that also has quotes, so the
    general parser reads it) neither splits the row nor shifts the line numbers of the rows after it."""
    ServicePointFactory(service_point_id="SP-1")
    text = ("service_point_id,interval_start,kwh,device\n"
            '"SP-1",2026-05-14T00:00Z,1,\n'           # line 2: quoted, good
            "SP-1,2026-05-14T01:00Z,2,x\u2028y\n"      # line 3: unknown device 'x\u2028y'
            "SP-1,2026-05-14T02:00Z,abc,\n"            # line 4: not a number
            "SP-1,2026-05-14T03:00Z,4,\x0c\n")         # line 5: good (a form feed is blank space)
    load = meter_csv_load(content=text.encode(), now=now, file_name="r.csv", actor=TEST_ACTOR)
    assert [(e["row"], e["field"]) for e in load.errors] == [(3, "device"), (4, "kwh")]
    assert load.summary == "2 new, 0 unchanged, 0 corrected, 2 rejected"
    assert _stored() == {"SP-1": [(0, 1.0), (3, 4.0)]}
