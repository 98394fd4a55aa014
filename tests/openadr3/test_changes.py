"""Changes and deletions through the VTN: VENs, resources, reports and subscriptions (the library's update calls
and plain HTTP), each client only on its own objects."""

from __future__ import annotations

import pytest

from .conftest import tomorrow_la
from .test_api import _problem, _report, _subscription

pytestmark = pytest.mark.django_db(transaction=True)


def test_business_logic_registers_an_aggregators_ven_by_its_code(world):
    token = world.token("bl")
    body = _problem(world.http("POST", "/vens", token, json={"venName": "no-such-aggregator"}), 400)
    assert "aggregator" in body["detail"]
    response = world.http("POST", "/vens", token, json={"venName": "agg-b"})
    assert response.status_code == 201
    from cpm.openadr3.models import Ven

    ven = Ven.objects.get(pk=int(response.json()["id"]))
    assert ven.aggregator.code == "agg-b" and ven.resources.count() == 2
    assert _problem(world.http("POST", "/vens", world.token("agg-b"), json={"venName": "again"}), 409)


def test_a_ven_renames_itself_and_cannot_delete_itself_once_it_reported(world):
    from openadr3_client.oadr301.models.ven.ven import VenUpdate

    vens = world.register_vens()
    client = world.ven("agg-a")
    renamed = client.vens.update_ven_by_id(vens["agg-a"].id, vens["agg-a"].update(VenUpdate(ven_name="ven-a2")))
    assert renamed.ven_name == "ven-a2"
    assert _problem(world.http("PUT", f"/vens/{vens['agg-a'].id}", world.token("agg-a"),
                               json={"venName": "ven-agg-b"}), 409)
    event = world.scheduled_event()
    client.reports.create_report(new_report=_report(str(event.pk), str(world.program.pk),
                                                    {"agg-a-t0": [(tomorrow_la(15), "USAGE", 1.0)]}))
    body = _problem(world.http("DELETE", f"/vens/{vens['agg-a'].id}", world.token("agg-a")), 409)
    assert "reports" in body["detail"]
    deleted = world.ven("agg-b").vens.delete_ven_by_id(vens["agg-b"].id)
    assert deleted.ven_name == "ven-agg-b"
    assert world.bl().vens.get_vens(ven_name=None, target=None, pagination=None)[0].ven_name == "ven-a2"


def test_a_resource_is_renamed_onto_a_device_and_deleted(world):
    vens = world.register_vens()
    token = world.token("agg-a")
    base = f"/vens/{vens['agg-a'].id}/resources"
    created = world.http("POST", base, token, json={"resourceName": "spare"}).json()
    from cpm.openadr3.models import Resource

    world.http("DELETE", f"{base}/{Resource.objects.get(resource_name='agg-a-t1').pk}", token)
    changed = world.http("PUT", f"{base}/{created['id']}", token, json={"resourceName": "agg-a-t1"})
    assert changed.status_code == 200
    assert Resource.objects.get(pk=int(created["id"])).device == world.devices["agg-a"][1]
    _problem(world.http("PUT", f"{base}/{created['id']}", world.token("agg-b"), json={"resourceName": "x"}), 404)
    assert world.http("DELETE", f"{base}/{created['id']}", token).json()["resourceName"] == "agg-a-t1"
    assert not Resource.objects.filter(pk=int(created["id"])).exists()


def test_a_report_is_corrected_with_put(world):
    from events.models import Participation

    world.register_vens()
    event = world.scheduled_event()
    start = tomorrow_la(15)
    ven = world.ven("agg-a")
    report = ven.reports.create_report(new_report=_report(str(event.pk), str(world.program.pk),
                                                         {"agg-a-t0": [(start, "USAGE", 1.0)]}))
    fixed = world.http("PUT", f"/reports/{report.id}", world.token("agg-a"), json={
        "programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a",
        "resources": [{"resourceName": "agg-a-t1", "intervals": [
            {"id": 0, "intervalPeriod": {"start": start.isoformat(), "duration": "PT1H"},
             "payloads": [{"type": "OPERATING_STATE", "values": ["OPTED_OUT"]}]}]}]})
    assert fixed.status_code == 200 and fixed.json()["resources"][0]["resourceName"] == "agg-a-t1"
    assert Participation.objects.get(event=event, device__aggregator_device_id="agg-a-t1").status == "opted_out"
    _problem(world.http("DELETE", f"/reports/{report.id}", world.token("agg-b")), 404)
    assert world.http("DELETE", f"/reports/{report.id}", world.token("agg-a")).status_code == 200


def test_a_subscription_is_changed(world, receiver):
    from openadr3_client.oadr301.models.subscriptions.subscription import SubscriptionUpdate

    world.register_vens()
    client = world.ven("agg-a")
    sub = client.subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/old", client_name="a"))
    moved = client.subscriptions.update_subscription_by_id(sub.id, sub.update(SubscriptionUpdate(
        client_name="a2")))
    assert moved.client_name == "a2"
    response = world.http("PUT", f"/subscriptions/{sub.id}", world.token("agg-a"), json={
        "clientName": "a2", "programID": str(world.program.pk),
        "objectOperations": [{"objects": ["EVENT"], "operations": ["POST"], "callbackUrl": f"{receiver.url}/new"}]})
    assert response.status_code == 200
    event = world.scheduled_event()
    call = receiver.wait_for(lambda c: True)[0]
    assert call["path"] == "/new" and call["json"]["object"]["id"] == str(event.pk)


def test_a_device_released_at_dispatch_leaves_the_ven_s_targets(world, receiver):
    from devices.models import Device
    from events import services as event_services
    from tests.actors import TEST_ACTOR

    from .conftest import real_now

    world.register_vens()
    world.ven("agg-b").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/b", client_name="b"))
    event = world.scheduled_event()
    Device.objects.filter(aggregator__code="agg-b").update(status="inactive")
    Device.objects.filter(aggregator_device_id="agg-a-t1").update(status="inactive")
    event_services.event_dispatch(event=event, now=real_now(), actor=TEST_ACTOR)
    raw = world.http("GET", f"/events/{event.pk}", world.token("agg-a")).json()
    assert raw["targets"][1]["values"] == ["agg-a-t0"]
    assert raw["modificationNumber"] == 0
    _problem(world.http("GET", f"/events/{event.pk}", world.token("agg-b")), 404)
    deletes = receiver.wait_for(lambda c: c["json"]["operation"] == "DELETE")
    assert deletes[0]["json"]["object"]["id"] == str(event.pk)
