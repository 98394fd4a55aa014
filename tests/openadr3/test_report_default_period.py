"""A VEN reports USAGE the compact OpenADR 3 way: one ``intervalPeriod`` for the report (or for the resource) giving
the first start and the interval length, then intervals without periods of their own, each following the one before
(interval i at start + i x duration). Every interval was read at the default period's start, so four quarter-hours
were four readings of 15:00 (duplicates: the load 'completed_with_errors', no telemetry stored) while the VEN got a
201. They are now 15:00, 15:15, 15:30 and 15:45."""

import datetime as dt

import pytest

from .conftest import tomorrow_la
from .test_api import _dispatched_event

pytestmark = pytest.mark.django_db(transaction=True)


def _readings(device) -> dict[dt.datetime, float]:
    from settlement.meterdata.intervals import decode
    from settlement.meterdata.models import IntervalDay

    out = {}
    for row in IntervalDay.objects.filter(device=device, is_current=True, channel="delivered"):
        values = decode(row.values)
        step = 1440 // len(values)
        day = dt.datetime(row.day.year, row.day.month, row.day.day, tzinfo=dt.UTC)
        out.update({day + dt.timedelta(minutes=i * step): round(float(v), 4) for i, v in enumerate(values) if v == v})
    return out


@pytest.mark.parametrize("where", ["report", "resource"])
def test_intervals_without_periods_follow_the_default_period_one_after_another(world, where):
    from cpm.openadr3.models import Report

    world.register_vens()
    event = _dispatched_event(world)
    period = {"start": tomorrow_la(15).isoformat(), "duration": "PT15M"}
    resource = {"resourceName": "agg-a-t0", "intervals": [
        {"id": i, "payloads": [{"type": "USAGE", "values": [v]}]} for i, v in enumerate([0.1, 0.2, 0.3, 0.4])]}
    body = {"programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
            "resources": [resource]}
    (body if where == "report" else resource)["intervalPeriod"] = period
    response = world.http("POST", "/reports", world.token("agg-a"), json=body)
    assert response.status_code == 201, response.text
    results = Report.objects.get().results
    assert results["errors"] == []
    assert results["meter_data_load"]["status"] == "completed", results
    start = tomorrow_la(15).astimezone(dt.UTC)
    assert _readings(world.devices["agg-a"][0]) == {start + dt.timedelta(minutes=15 * i): v
                                                     for i, v in enumerate([0.1, 0.2, 0.3, 0.4])}


def test_an_interval_with_its_own_start_restarts_the_sequence(world):
    world.register_vens()
    event = _dispatched_event(world)
    intervals = [{"id": 0, "payloads": [{"type": "USAGE", "values": [0.1]}]},
                 {"id": 1, "intervalPeriod": {"start": tomorrow_la(16).isoformat()},
                  "payloads": [{"type": "USAGE", "values": [0.2]}]},
                 {"id": 2, "payloads": [{"type": "USAGE", "values": [0.3]}]}]
    body = {"programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
            "intervalPeriod": {"start": tomorrow_la(15).isoformat(), "duration": "PT15M"},
            "resources": [{"resourceName": "agg-a-t0", "intervals": intervals}]}
    response = world.http("POST", "/reports", world.token("agg-a"), json=body)
    assert response.status_code == 201, response.text
    start = tomorrow_la(15).astimezone(dt.UTC)
    assert _readings(world.devices["agg-a"][0]) == {start: 0.1, start + dt.timedelta(hours=1): 0.2,
                                                     start + dt.timedelta(minutes=75): 0.3}
