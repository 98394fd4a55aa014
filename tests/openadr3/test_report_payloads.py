"""What a VEN reports in the spec's own vocabulary: the OpenADR 3 ``OPERATING_STATE`` enumerations (CTA-2045 states:
curtailed, opted out, error, normal) become participation outcomes, not per-resource "unknown" errors."""

from __future__ import annotations

import pytest

from .conftest import real_now, tomorrow_la

pytestmark = pytest.mark.django_db(transaction=True)


def _dispatched(world):
    from events import services as event_services
    from tests.actors import TEST_ACTOR

    event = world.scheduled_event()
    return event_services.event_dispatch(event=event, now=real_now(), actor=TEST_ACTOR)


def _state_report(world, event, states: dict[str, str], *, code="agg-a", start=None):
    start = start or tomorrow_la(15)
    return world.http("POST", "/reports", world.token(code), json={
        "programID": str(world.program.pk), "eventID": str(event.pk), "clientName": f"ven-{code}",
        "resources": [{"resourceName": name, "intervals": [{
            "id": 0, "intervalPeriod": {"start": start.isoformat(), "duration": "PT1H"},
            "payloads": [{"type": "OPERATING_STATE", "values": [state]}]}]} for name, state in states.items()]})


def test_the_specs_operating_states_become_participation_outcomes(world):
    from cpm.openadr3.models import Report
    from events.models import OptOut, Participation

    world.register_vens()
    event = _dispatched(world)
    response = _state_report(world, event, {"agg-a-t0": "RUNNING_CURTAILED", "agg-a-t1": "SGD_ERROR_CONDITION"})
    assert response.status_code == 201, response.text
    response = _state_report(world, event, {"agg-b-t0": "IDLE_OPTED_OUT", "agg-b-t1": "RUNNING_NORMAL"},
                             code="agg-b", start=tomorrow_la(16))
    assert response.status_code == 201, response.text
    statuses = dict(Participation.objects.filter(event=event).values_list("device__aggregator_device_id", "status"))
    assert statuses == {"agg-a-t0": "participated", "agg-a-t1": "failed", "agg-b-t0": "opted_out",
                        "agg-b-t1": "non_responsive"}
    assert OptOut.objects.get(participation__event=event).at == tomorrow_la(16)
    assert [r.results["errors"] for r in Report.objects.order_by("pk")] == [[], []]
    assert Report.objects.order_by("pk").first().results["outcomes"] == {"agg-a-t0": "recorded",
                                                                         "agg-a-t1": "recorded"}


@pytest.mark.parametrize("state,status", [("IDLE_CURTAILED", "participated"), ("RUNNING_HEIGHTENED", "participated"),
                                          ("IDLE_HEIGHTENED", "participated"), ("RUNNING_OPTED_OUT", "opted_out"),
                                          ("ERROR", "failed"), ("NORMAL", "non_responsive"),
                                          ("IDLE_NORMAL", "non_responsive")])
def test_each_operating_state_of_the_spec_has_its_outcome(state, status):
    from cpm.openadr3 import documents as docs

    assert docs.OUTCOME_VALUES[state] == status


# ------------------------------------------------------------------------------------------------ USAGE
def _usage_report(world, event, intervals, *, units=None):
    body = {"programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
            "resources": [{"resourceName": "agg-a-t0", "intervals": intervals}]}
    if units is not None:
        body["payloadDescriptors"] = [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE",
                                       "readingType": "DIRECT_READ", "units": units}]
    return world.http("POST", "/reports", world.token("agg-a"), json=body)


def _usage(start, value, duration="PT1H"):
    return {"id": 0, "intervalPeriod": {"start": start.isoformat(), "duration": duration},
            "payloads": [{"type": "USAGE", "values": [value]}]}


def test_usage_is_read_in_the_units_of_the_reports_payload_descriptor(world):
    """The report's payloadDescriptors give USAGE its units (3.0.1 reportPayloadDescriptor.units): 750 WH is
    0.75 kWh, 0.002 MWH 2 kWh; without units (or KWH) the value is kWh, as the event's reportDescriptor asks."""
    import datetime as dt

    from settlement.meterdata.intervals import decode
    from settlement.meterdata.models import IntervalDay

    world.register_vens()
    event = _dispatched(world)
    start = tomorrow_la(15)
    slot = start.astimezone(dt.UTC)
    device = world.devices["agg-a"][0]
    assert _usage_report(world, event, [_usage(start, 750)], units="WH").status_code == 201
    row = IntervalDay.objects.get(device=device, is_current=True)
    assert decode(row.values)[slot.hour] == pytest.approx(0.75)
    assert _usage_report(world, event, [_usage(start, 0.002)], units="MWH").status_code == 201
    row = IntervalDay.objects.get(device=device, is_current=True)
    assert (row.version, decode(row.values)[slot.hour]) == (2, pytest.approx(2.0))


def test_usage_in_units_that_are_not_energy_is_a_400_and_stores_nothing(world):
    from cpm.openadr3.models import Report
    from settlement.meterdata.models import IntervalDay

    world.register_vens()
    event = _dispatched(world)
    response = _usage_report(world, event, [_usage(tomorrow_la(15), 3.0)], units="KW")
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert "payloadDescriptors[0].units" in detail and "KW" in detail
    assert Report.objects.count() == 0 and IntervalDay.objects.count() == 0
    response = world.http("POST", "/reports", world.token("agg-a"), json={
        "programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
        "payloadDescriptors": 5,
        "resources": [{"resourceName": "agg-a-t0", "intervals": [_usage(tomorrow_la(15), 1)]}]})
    assert response.status_code == 400 and "payloadDescriptors" in response.json()["detail"]


@pytest.mark.parametrize("label,duration,minute", [("two hours", "PT2H", 0), ("seven minutes", "PT7M", 0),
                                                   ("misaligned start", "PT15M", 7)])
def test_usage_cpm_cannot_store_is_a_400_naming_the_interval_not_a_silent_201(world, label, duration, minute):
    """A USAGE interval cpm's meter data cannot hold (5, 15, 30 or 60 minutes, starting on a multiple of its
    length) was stored as a report with a 201 while its readings were dropped as load row errors the VEN never
    sees: it is a 400 naming the interval, and nothing is stored."""
    from cpm.openadr3.models import Report
    from settlement.meterdata.models import IntervalDay

    world.register_vens()
    event = _dispatched(world)
    start = tomorrow_la(15).replace(minute=minute)
    response = _usage_report(world, event, [_usage(tomorrow_la(15), 0.5, "PT15M"), _usage(start, 1.0, duration)])
    assert response.status_code == 400, (label, response.text)
    detail = response.json()["detail"]
    assert "resources[0].intervals[1]" in detail and "5, 15, 30 or 60 minutes" in detail, detail
    assert Report.objects.count() == 0 and IntervalDay.objects.count() == 0


# ------------------------------------------------------------------------------------------------ subscriptions
def test_a_301_subscription_takes_the_specs_operation_names_and_is_notified(world, receiver):
    """The 3.0.1 definition's subscription operations are READ, CREATE, UPDATE, DELETE (the notification's operation
    is GET, POST, PUT, DELETE): a VEN subscribing with CREATE and UPDATE is accepted (kept under the notification's
    names, as the 3.1 API keeps them) and told of an event created for it."""
    world.register_vens()
    response = world.http("POST", "/subscriptions", world.token("agg-a"), json={
        "clientName": "ven-agg-a", "programID": str(world.program.pk),
        "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE", "UPDATE", "DELETE"],
                              "callbackUrl": f"{receiver.url}/a", "bearerToken": "tok-a"}]})
    assert response.status_code == 201, response.text
    assert response.json()["objectOperations"][0]["operations"] == ["POST", "PUT", "DELETE"]
    event = world.scheduled_event()
    call = receiver.wait_for(lambda c: c["path"] == "/a")[0]
    assert (call["json"]["operation"], call["json"]["object"]["id"]) == ("POST", str(event.pk))
    assert call["headers"]["Authorization"] == "Bearer tok-a"
    bad = world.http("POST", "/subscriptions", world.token("agg-a"), json={
        "clientName": "ven-agg-a", "programID": str(world.program.pk),
        "objectOperations": [{"objects": ["EVENT"], "operations": ["MODIFY"], "callbackUrl": f"{receiver.url}/a"}]})
    assert bad.status_code == 400 and "objectOperations[0].operations" in bad.json()["detail"]


# ------------------------------------------------------------------------------------------------ event targets
def _grid_event(world, targets):
    return world.http("POST", "/events", world.token("bl"), json={
        "programID": str(world.program.pk), "eventName": "Feeder relief", "targets": targets,
        "intervalPeriod": {"start": tomorrow_la(15).isoformat(), "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]})


def test_an_event_targeted_at_a_group_reaches_the_vens_and_resources_carrying_it(world):
    """Business logic targeting an event at a GROUP (any type other than VEN_NAME and RESOURCE_NAME) was given every
    enrolled device: both VENs' 4 devices reserved for a group only one of them is in. The VENs' and resources'
    ``targets`` are their target criteria (3.0.1 ven/resource ``targets``): the event reaches the VENs carrying the
    group (all their devices) and the resources carrying it; a group nobody carries is a 400 and makes no event."""
    from events.models import Event, Participation

    vens = world.register_vens()
    response = world.http("PUT", f"/vens/{vens['agg-a'].id}", world.token("bl"), json={
        "venName": "ven-agg-a", "targets": [{"type": "GROUP", "values": ["north-feeder"]}]})
    assert response.status_code == 200, response.text
    nobody = _grid_event(world, [{"type": "GROUP", "values": ["south-feeder"]}])
    assert nobody.status_code == 400 and "targets" in nobody.json()["detail"], nobody.text
    assert Event.objects.count() == 0
    made = _grid_event(world, [{"type": "GROUP", "values": ["north-feeder"]}])
    assert made.status_code == 201, made.text
    reserved = Participation.objects.filter(event_id=int(made.json()["id"]), status="reserved")
    assert sorted(reserved.values_list("device__aggregator_device_id", flat=True)) == ["agg-a-t0", "agg-a-t1"]
    assert [e["id"] for e in world.http("GET", "/events", world.token("agg-b")).json()] == []
    resource = world.http("GET", f"/vens/{vens['agg-b'].id}/resources?resourceName=agg-b-t1",
                          world.token("agg-b")).json()[0]
    assert world.http("PUT", f"/vens/{vens['agg-b'].id}/resources/{resource['id']}", world.token("agg-b"), json={
        "resourceName": "agg-b-t1", "targets": [{"type": "POSTAL_CODE", "values": ["97201"]}]}).status_code == 200
    made = _grid_event(world, [{"type": "POSTAL_CODE", "values": ["97201"]}])
    assert made.status_code == 201, made.text
    reserved = Participation.objects.filter(event_id=int(made.json()["id"]), status="reserved")
    assert list(reserved.values_list("device__aggregator_device_id", flat=True)) == ["agg-b-t1"]


def test_subscription_objects_are_notified_to_those_who_may_read_them(world, receiver):
    """SUBSCRIPTION is one of the objectTypes a subscription may name: business logic is told of a VEN's
    subscription created, changed and deleted; another VEN is told nothing of it (it may not read it)."""
    world.register_vens()
    watch = {"objects": ["SUBSCRIPTION"], "operations": ["POST", "PUT", "DELETE"]}
    assert world.http("POST", "/subscriptions", world.token("bl"), json={
        "clientName": "utility", "objectOperations": [{**watch, "callbackUrl": f"{receiver.url}/bl"}]}
    ).status_code == 201
    assert world.http("POST", "/subscriptions", world.token("agg-b"), json={
        "clientName": "ven-agg-b", "objectOperations": [{**watch, "callbackUrl": f"{receiver.url}/b"}]}
    ).status_code == 201
    body = {"clientName": "ven-agg-a", "programID": str(world.program.pk),
            "objectOperations": [{"objects": ["EVENT"], "operations": ["POST"], "callbackUrl": f"{receiver.url}/a"}]}
    token = world.token("agg-a")
    made = world.http("POST", "/subscriptions", token, json=body)
    assert made.status_code == 201, made.text
    sub_id = made.json()["id"]
    assert world.http("PUT", f"/subscriptions/{sub_id}", token, json={**body, "clientName": "ven-a"}).status_code == 200
    assert world.http("DELETE", f"/subscriptions/{sub_id}", token).status_code == 200
    receiver.wait_for(lambda c: c["path"] == "/bl" and c["json"]["operation"] == "DELETE")
    told = [(c["json"]["objectType"], c["json"]["operation"], c["json"]["object"]["id"],
             c["json"]["object"]["clientName"]) for c in receiver.calls if c["path"] == "/bl"
            and c["json"]["object"]["id"] == sub_id]
    assert told == [("SUBSCRIPTION", "POST", sub_id, "ven-agg-a"), ("SUBSCRIPTION", "PUT", sub_id, "ven-a"),
                    ("SUBSCRIPTION", "DELETE", sub_id, "ven-a")]
    assert [c for c in receiver.calls if c["path"] == "/b" and c["json"]["object"]["id"] == sub_id] == []
