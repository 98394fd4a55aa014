"""A report whose intervals are malformed (an interval that is not an object, a bad start or duration, payload values
that are not a list) is a 400 problem naming the place, never a 500, and no report is stored (nothing half-written)."""

import pytest

from cpm.openadr3.models import Report
from settlement.models import IntervalDay

from .conftest import tomorrow_la

BAD_INTERVALS = [
    ("interval not an object", [5]),
    ("intervalPeriod not an object", [{"intervalPeriod": "soon", "payloads": []}]),
    ("bad start", [{"intervalPeriod": {"start": "tomorrow 3pm", "duration": "PT1H"},
                    "payloads": [{"type": "USAGE", "values": [1.0]}]}]),
    ("bad duration", [{"intervalPeriod": {"start": "2030-07-01T15:00:00-07:00", "duration": "an hour"},
                       "payloads": [{"type": "USAGE", "values": [1.0]}]}]),
    ("payload not an object", [{"payloads": ["USAGE"]}]),
    ("values not a list", [{"payloads": [{"type": "USAGE", "values": 1.0}]}]),
    ("payloads not a list", [{"payloads": {"type": "USAGE", "values": [1.0]}}]),
    ("zero duration", [{"intervalPeriod": {"start": "2030-07-01T15:00:00-07:00", "duration": "PT0S"},
                        "payloads": [{"type": "USAGE", "values": [1.0]}]}]),
]


def test_an_operating_state_that_is_not_text_is_a_per_resource_error_not_a_500(world):
    """``OPERATING_STATE`` values ``[["OPTED_OUT"]]``: the report is stored with the resource's error in its
    results (as for an unknown state), no outcome recorded, never a 500."""
    world.register_vens()
    event = world.scheduled_event()
    response = world.http("POST", "/reports", world.token("agg-a"), json={
        "programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
        "resources": [{"resourceName": "agg-a-t0", "intervals": [
            {"id": 0, "payloads": [{"type": "OPERATING_STATE", "values": [["OPTED_OUT"]]}]}]}]})
    assert response.status_code == 201, response.text[:300]
    report = Report.objects.get()
    assert "Unknown OPERATING_STATE" in report.results["errors"][0]["detail"]


@pytest.mark.parametrize("label,intervals", BAD_INTERVALS, ids=[b[0] for b in BAD_INTERVALS])
def test_malformed_report_intervals_are_400_and_store_nothing(world, label, intervals):
    world.register_vens()
    event = world.scheduled_event()
    if label in ("bad duration", "zero duration"):
        intervals[0]["intervalPeriod"]["start"] = tomorrow_la(15).isoformat()
    response = world.http("POST", "/reports", world.token("agg-a"), json={
        "programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
        "resources": [{"resourceName": "agg-a-t0", "intervals": intervals}]})
    assert response.status_code == 400, (label, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "resources[0].intervals[0]" in response.json()["detail"], response.json()
    assert Report.objects.count() == 0
    assert IntervalDay.objects.count() == 0
