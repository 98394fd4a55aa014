"""Malformed event bodies from business logic (POST and PUT /events, 3.0.1 and 3.1): an ``intervalPeriod`` that is not
an object, a SIMPLE level that is a list, a kW written 1_5: a 400 problem naming the field, never a 500, and no event
is created."""

import pytest

from events.models import Event

from .conftest import tomorrow_la


def _bodies(program_id: str) -> list[tuple[str, dict, str]]:
    start = tomorrow_la(15).isoformat()
    good_period = {"start": start, "duration": "PT2H"}
    return [
        ("event intervalPeriod not an object", {"programID": program_id, "intervalPeriod": "soon",
                                                "intervals": [{"id": 0, "payloads": []}]}, "intervalPeriod"),
        ("interval intervalPeriod not an object", {"programID": program_id, "intervalPeriod": good_period,
                                                   "intervals": [{"id": 0, "intervalPeriod": [1],
                                                                  "payloads": []}]}, "intervals[0].intervalPeriod"),
        ("SIMPLE level a list", {"programID": program_id, "intervalPeriod": good_period, "intervals": [
            {"id": 0, "payloads": [{"type": "SIMPLE", "values": [[1]]}]}]}, "intervals[0].payloads[0].values"),
        # Python's Decimal read "1_5" as 15 kW (digit grouping)
        ("kW target with a digit separator", {"programID": program_id, "intervalPeriod": good_period, "intervals": [
            {"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": ["1_5"]}]}]},
         "intervals[0].payloads[0].values"),
    ]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("base", ["", "/3.1"])
def test_malformed_event_bodies_are_400_and_create_nothing(world, index, base):
    world.register_vens()
    label, body, field = _bodies(str(world.program.pk))[index]
    if base:
        body = {**body, "programID": str(world.program.pk)}
    response = world.http("POST", f"{base}/events", world.token("bl"), json=body)
    assert response.status_code == 400, (label, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert field in response.json()["detail"], (label, response.json())
    assert Event.objects.count() == 0
    event = world.scheduled_event()
    response = world.http("PUT", f"{base}/events/{event.pk}", world.token("bl"), json=body)
    assert response.status_code == 400, (label, "PUT", response.status_code, response.text[:300])


def test_a_31_subscription_with_an_operation_that_is_not_text_is_a_400(world):
    from cpm.openadr3.models import Subscription

    response = world.http("POST", "/3.1/subscriptions", world.token("bl"), json={
        "clientName": "bl", "objectOperations": [{"objects": ["EVENT"], "operations": [["POST"]],
                                                  "callbackUrl": "http://127.0.0.1:9/hook"}]})
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "objectOperations[0].operations" in response.json()["detail"]
    assert Subscription.objects.count() == 0
