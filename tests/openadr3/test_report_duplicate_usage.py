"""A VEN sends two USAGE values for one resource and interval (the same interval twice, or the resource listed
twice): the meter data load dropped both as conflicting duplicates, a row error the VEN never sees, behind a 201.
It is now a 400 naming the second interval and the first, and nothing is stored."""

import pytest

from .conftest import tomorrow_la
from .test_api import _dispatched_event

pytestmark = pytest.mark.django_db(transaction=True)


def _resource(values: list[float]) -> dict:
    return {"resourceName": "agg-a-t0", "intervals": [
        {"id": i, "intervalPeriod": {"start": tomorrow_la(15).isoformat(), "duration": "PT1H"},
         "payloads": [{"type": "USAGE", "values": [v]}]} for i, v in enumerate(values)]}


@pytest.mark.parametrize("shape", ["one resource", "resource twice"])
def test_two_usage_values_for_one_interval_are_a_400(world, shape):
    from cpm.openadr3.models import Report
    from settlement.meterdata.models import IntervalDay, MeterDataLoad

    world.register_vens()
    event = _dispatched_event(world)
    resources = [_resource([0.5, 0.7])] if shape == "one resource" else [_resource([0.5]), _resource([0.7])]
    body = {"programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
            "resources": resources}
    response = world.http("POST", "/reports", world.token("agg-a"), json=body)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    second = "resources[0].intervals[1]" if shape == "one resource" else "resources[1].intervals[0]"
    assert detail.startswith(f"{second}.intervalPeriod.start: "), detail
    assert "resources[0].intervals[0]" in detail and "agg-a-t0" in detail, detail
    assert (Report.objects.count(), MeterDataLoad.objects.count(), IntervalDay.objects.count()) == (0, 0, 0)
