"""A VEN reports USAGE in watt-hours without saying so (the units default to KWH, as the event's report descriptor
asks): 750 Wh in an hour read as 750 kWh, beyond the plausible 200 kWh of a residential hour. The meter data load
dropped the reading as a row error the VEN never sees, behind a 201 with nothing stored. The report is now a 400
naming the payload, the value and the limit, and nothing is stored; the same value in WH is stored."""

import pytest

from .conftest import tomorrow_la
from .test_api import _dispatched_event

pytestmark = pytest.mark.django_db(transaction=True)


def _body(world, event, value, units=None) -> dict:
    body = {"programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
            "resources": [{"resourceName": "agg-a-t0", "intervals": [
                {"id": 0, "intervalPeriod": {"start": tomorrow_la(15).isoformat(), "duration": "PT1H"},
                 "payloads": [{"type": "OPERATING_STATE", "values": ["RUNNING_CURTAILED"]},
                              {"type": "USAGE", "values": [value]}]}]}]}
    if units:
        body["payloadDescriptors"] = [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE",
                                       "units": units}]
    return body


def test_implausible_usage_is_a_400_naming_the_payload_and_nothing_is_stored(world):
    from cpm.openadr3.models import Report
    from events.models import Participation
    from settlement.meterdata.models import IntervalDay, MeterDataLoad

    world.register_vens()
    event = _dispatched_event(world)
    response = world.http("POST", "/reports", world.token("agg-a"), json=_body(world, event, 750))
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert detail.startswith("resources[0].intervals[0].payloads[1].values: "), detail
    assert "750 kWh" in detail and "200 kWh" in detail and "WH" in detail, detail
    assert (Report.objects.count(), MeterDataLoad.objects.count(), IntervalDay.objects.count()) == (0, 0, 0)
    assert Participation.objects.get(event=event, device__aggregator_device_id="agg-a-t0").status == "dispatched"


def test_the_same_value_in_watt_hours_is_stored(world):
    from settlement.meterdata.models import IntervalDay, MeterDataLoad

    world.register_vens()
    event = _dispatched_event(world)
    response = world.http("POST", "/reports", world.token("agg-a"), json=_body(world, event, 750, units="WH"))
    assert response.status_code == 201, response.text
    assert MeterDataLoad.objects.get().status == "completed"
    assert IntervalDay.objects.filter(device=world.devices["agg-a"][0], is_current=True).count() == 1
