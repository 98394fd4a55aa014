"""The VTN driven over HTTP by the ``openadr3-client`` library (OpenADR 3.0.1) as business logic and as two VENs,
against a live cpm server; plain HTTP (``requests``) where the library cannot express the case (bad tokens,
problems, pagination limits)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from requests import HTTPError

from .conftest import LA, real_now, tomorrow_la

pytestmark = pytest.mark.django_db(transaction=True)


# ------------------------------------------------------------------------------------------------ helpers
def _event_request(program_id: str, *, start: dt.datetime, hours: int = 2, level: int | None = None,
                   kw: float | None = None, targets=None, name="Grid alert"):
    from openadr3_client._models.common.interval import Interval
    from openadr3_client._models.common.interval_period import IntervalPeriod
    from openadr3_client.oadr301.models.event.event import NewEvent
    from openadr3_client.oadr301.models.event.event_payload import EventPayload, EventPayloadType
    from openadr3_client.oadr301.models.target import Target

    payloads = []
    if level is not None:
        payloads.append(EventPayload(type=EventPayloadType.SIMPLE, values=(level,)))
    if kw is not None:
        payloads.append(EventPayload(type=EventPayloadType.DISPATCH_SETPOINT_RELATIVE, values=(kw,)))
    return NewEvent(
        programID=program_id, event_name=name, priority=None,
        targets=tuple(Target(type=t, values=tuple(v)) for t, v in (targets or [])) or None,
        interval_period=IntervalPeriod(start=start, duration=dt.timedelta(hours=hours)),
        intervals=(Interval[EventPayload](id=0, payloads=tuple(payloads)),))


def _report(event_id: str, program_id: str, rows: dict[str, list[tuple[dt.datetime, str, object]]],
            client_name="ven-agg-a"):
    """``rows``: resource name -> [(interval start, payload type, value)] (one-hour intervals)."""
    from openadr3_client._models.common.interval import Interval
    from openadr3_client._models.common.interval_period import IntervalPeriod
    from openadr3_client.oadr301.models.report.report import NewReport, ReportResource
    from openadr3_client.oadr301.models.report.report_payload import ReportPayload, ReportPayloadType

    resources = []
    for name, items in rows.items():
        intervals = tuple(
            Interval[ReportPayload](id=i, interval_period=IntervalPeriod(start=start, duration=dt.timedelta(hours=1)),
                                    payloads=(ReportPayload(type=ReportPayloadType(kind), values=(value,)),))
            for i, (start, kind, value) in enumerate(items))
        resources.append(ReportResource(resource_name=name, intervals=intervals))
    return NewReport(programID=program_id, eventID=event_id, client_name=client_name, report_name="outcome",
                     resources=tuple(resources))


def _subscription(program_id: str | None, url: str, *, objects=("EVENT",), operations=("POST", "PUT", "DELETE"),
                  token="tok", client_name="client"):
    from openadr3_client.oadr301.models.subscriptions.subscription import (
        NewSubscription,
        Object,
        ObjectOperation,
        Operation,
    )

    return NewSubscription(client_name=client_name, programID=program_id or "0", object_operations=(
        ObjectOperation(objects=tuple(Object(o) for o in objects), operations=tuple(Operation(o) for o in operations),
                        callback_url=url, bearer_token=token),))


def _events(client, **kw):
    return client.events.get_events(target=kw.get("target"), pagination=kw.get("pagination"),
                                    program_id=kw.get("program_id"))


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"] == "about:blank"
    return body


# ------------------------------------------------------------------------------------------------ security
def test_token_endpoint_gives_a_ven_client_the_ven_scopes(world):
    import requests

    cid, secret = world.credentials["agg-a"]
    response = requests.post(world.token_url, data={"grant_type": "client_credentials"}, auth=(cid, secret),
                             timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert set(body["scope"].split()) == {"read_targets", "read_ven_objects", "write_reports",
                                          "write_subscriptions", "write_vens"}


def test_a_ven_client_cannot_get_a_business_logic_scope(world):
    import requests

    cid, secret = world.credentials["agg-a"]
    response = requests.post(world.token_url, data={"grant_type": "client_credentials", "scope": "write_events"},
                             auth=(cid, secret), timeout=10)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_a_301_ven_gets_the_301_read_scope_read_all_and_still_sees_only_its_own(world):
    """OpenADR 3.0.1 has one read scope, read_all ("VENs and BL can read all resources", securitySchemes): every
    GET asks for it, so a VEN built from 3.0.1 asks for it. The VEN still sees only its own objects and events."""
    import requests

    world.register_vens()
    world.bl().events.create_event(new_event=_event_request(
        str(world.program.pk), start=tomorrow_la(15), level=1, targets=[("VEN_NAME", ["ven-agg-b"])]))
    event = world.scheduled_event(hours=(18, 20), name="Evening")
    cid, secret = world.credentials["agg-a"]
    response = requests.post(world.token_url, data={"grant_type": "client_credentials", "scope": "read_all"},
                             auth=(cid, secret), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read_all"
    ven = world.ven("agg-a", scopes=["read_all", "write_reports", "write_subscriptions", "write_vens"])
    assert [e.id for e in _events(ven)] == [str(event.pk)]
    assert [v.ven_name for v in ven.vens.get_vens(ven_name=None, target=None, pagination=None)] == ["ven-agg-a"]
    token = response.json()["access_token"]
    assert [e["id"] for e in world.http("GET", "/events", token).json()] == [str(event.pk)]
    _problem(world.http("POST", "/events", token, json={}), 403)
    # OpenADR 3.1 keeps read_all for business logic: its token endpoint refuses it to a VEN.
    v31 = requests.post(f"{world.base}/3.1/auth/token", data={"grant_type": "client_credentials",
                                                              "scope": "read_all"}, auth=(cid, secret), timeout=10)
    assert (v31.status_code, v31.json()["error"]) == (400, "invalid_scope")


def test_a_bad_token_is_refused_with_401(world):
    response = world.http("GET", "/programs", "not-a-token")
    body = _problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "bearer token" in body["detail"]


def test_no_token_is_refused_with_401(world):
    _problem(world.http("GET", "/events", None), 401)


def test_a_ven_token_cannot_create_a_program(world):
    token = world.token("agg-a")
    body = _problem(world.http("POST", "/programs", token, json={"programName": "rogue",
                                                                 "programType": "thermostat_dr"}), 403)
    assert "VEN" in body["detail"]
    from programs.models import Program

    assert not Program.objects.filter(code="rogue").exists()


def test_a_token_without_the_write_scope_is_refused_with_403(world):
    bl = world.bl(scopes=["read_all"])
    with pytest.raises(HTTPError) as exc:
        bl.events.create_event(new_event=_event_request(str(world.program.pk), start=tomorrow_la(15), level=1))
    assert exc.value.response.status_code == 403
    assert "write_events" in exc.value.response.json()["detail"]
    from events.models import Event

    assert Event.objects.count() == 0


def test_reads_need_the_spec_s_read_scope(world):
    world.register_vens()
    world.scheduled_event()
    token = world.token("agg-a", "read_targets")
    assert len(world.http("GET", "/events", token).json()) == 1
    body = _problem(world.http("GET", "/vens", token), 403)
    assert "read_ven_objects" in body["detail"]
    own = world.token("agg-a", "read_ven_objects")
    assert [v["venName"] for v in world.http("GET", "/vens", own).json()] == ["ven-agg-a"]
    assert "read_targets" in _problem(world.http("GET", "/events", own), 403)["detail"]


def test_the_token_endpoint_is_discoverable_and_notifiers_say_webhooks(world):
    import requests

    assert requests.get(f"{world.base}/auth/server", timeout=10).json() == {"tokenURL": world.token_url}
    assert world.http("GET", "/notifiers", world.token("agg-a")).json() == {"WEBHOOK": True, "MQTT": None}


# ------------------------------------------------------------------------------------------------ programs
def test_business_logic_creates_a_program_that_is_a_cpm_program(world):
    from openadr3_client.oadr301.models.program.program import NewProgram

    from cpm.models import AuditEntry
    from programs.models import Program

    created = world.bl().programs.create_program(new_program=NewProgram(
        program_name="ev-managed", program_long_name="EV Managed Charging", program_type="ev_managed_charging"))
    program = Program.objects.get(pk=int(created.id))
    assert (program.code, program.name, program.status, program.time_zone) == (
        "ev-managed", "EV Managed Charging", "draft", "America/Los_Angeles")
    assert AuditEntry.objects.filter(object_id=str(program.pk), action="create", actor_label="utility-bl").exists()
    again = world.bl().programs.get_program_by_id(created.id)
    assert again.program_name == "ev-managed"


def test_a_program_created_through_openadr_calls_its_types_device_and_can_be_changed(world):
    from programs.models import Program

    token = world.token("bl")
    made = world.http("POST", "/programs", token, json={"programName": "ev-evening", "programType":
                                                        "ev_managed_charging"})
    assert made.status_code == 201, made.text
    ptr = world.http("POST", "/programs", token, json={"programName": "ptr-or", "programType": "peak_time_rebate"})
    assert ptr.status_code == 201, ptr.text
    program = Program.objects.get(pk=int(made.json()["id"]))
    assert (program.eligible_device_types, program.requires_device) == (["ev_charger"], True)
    assert Program.objects.filter(pk=int(ptr.json()["id"]), requires_device=False, eligible_device_types=[]).exists()
    changed = world.http("PUT", f"/programs/{program.pk}", token, json={
        "programName": "ev-evening", "programLongName": "EV Evening Charging"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["programLongName"] == "EV Evening Charging"
    program.refresh_from_db()
    assert program.name == "EV Evening Charging"


def test_a_duplicate_program_name_is_refused(world):
    token = world.token("bl")
    response = world.http("POST", "/programs", token, json={"programName": "smart-ac",
                                                            "programType": "thermostat_dr"})
    body = _problem(response, 400)
    assert "programName" in body["detail"]


def test_pagination_skip_and_limit(world):
    from tests.factories.programs import ProgramFactory

    for n in range(3):
        ProgramFactory(code=f"p-{n}")
    token = world.token("bl")
    names = [p["programName"] for p in world.http("GET", "/programs?skip=1&limit=2", token).json()]
    assert names == ["p-0", "p-1"]
    body = _problem(world.http("GET", "/programs?limit=51", token), 400)
    assert "limit" in body["detail"]
    _problem(world.http("GET", "/programs?skip=-1", token), 400)
    # The OpenADR 3.0.1 definition allows limit 0 to 50: 0 asks for no object (an empty page, not an error).
    empty = world.http("GET", "/programs?limit=0", token)
    assert (empty.status_code, empty.json()) == (200, [])


# ------------------------------------------------------------------------------------------------ VENs
def test_two_vens_register_and_each_sees_only_its_own_ven(world):
    vens = world.register_vens()
    a = world.ven("agg-a").vens.get_vens(ven_name=None, target=None, pagination=None)
    b = world.ven("agg-b").vens.get_vens(ven_name=None, target=None, pagination=None)
    assert [v.ven_name for v in a] == ["ven-agg-a"]
    assert [v.ven_name for v in b] == ["ven-agg-b"]
    everyone = world.bl().vens.get_vens(ven_name=None, target=None, pagination=None)
    assert sorted(v.ven_name for v in everyone) == ["ven-agg-a", "ven-agg-b"]
    response = world.http("GET", f"/vens/{vens['agg-b'].id}", world.token("agg-a"))
    _problem(response, 404)


def test_a_second_ven_of_the_same_aggregator_is_a_409(world):
    world.register_vens()
    body = _problem(world.http("POST", "/vens", world.token("agg-a"), json={"venName": "ven-agg-a-2"}), 409)
    assert "agg-a already has a VEN" in body["detail"]


def test_the_resources_of_a_ven_are_its_aggregators_devices(world):
    vens = world.register_vens()
    resources = world.ven("agg-a").vens.get_ven_resources(ven_id=vens["agg-a"].id, resource_name=None, target=None,
                                                          pagination=None)
    assert sorted(r.resource_name for r in resources) == ["agg-a-t0", "agg-a-t1"]
    assert {r.ven_id for r in resources} == {vens["agg-a"].id}
    _problem(world.http("GET", f"/vens/{vens['agg-a'].id}/resources", world.token("agg-b")), 404)


def test_a_ven_adds_a_resource_and_a_duplicate_name_is_409(world):
    from cpm.openadr3.models import Resource

    vens = world.register_vens()
    token = world.token("agg-a")
    path = f"/vens/{vens['agg-a'].id}/resources"
    response = world.http("POST", path, token, json={"resourceName": "site-meter", "venID": vens["agg-a"].id})
    assert response.status_code == 201
    assert response.json()["resourceName"] == "site-meter"
    assert Resource.objects.get(pk=int(response.json()["id"])).device_id is None
    body = _problem(world.http("POST", path, token, json={"resourceName": "agg-a-t0"}), 409)
    assert "agg-a-t0" in body["detail"]


# ------------------------------------------------------------------------------------------------ events
def test_business_logic_creates_an_event_through_cpms_event_services(world):
    from events.models import Event, Participation

    world.register_vens()
    created = world.bl().events.create_event(new_event=_event_request(
        str(world.program.pk), start=tomorrow_la(15), level=2, kw=-10, name="Flex alert"))
    event = Event.objects.get(pk=int(created.id))
    assert (event.name, event.status, event.category, event.direction, event.target_kw) == (
        "Flex alert", "scheduled", "reliability", "reduce", pytest.approx(10))
    assert event.start == tomorrow_la(15) and event.end == tomorrow_la(17)
    assert Participation.objects.filter(event=event, status="reserved").count() == 4
    seen = world.bl().events.get_event_by_id(created.id)
    targets = {t.type: t.values for t in seen.targets}
    assert targets["VEN_NAME"] == ("ven-agg-a", "ven-agg-b")
    assert sorted(targets["RESOURCE_NAME"]) == ["agg-a-t0", "agg-a-t1", "agg-b-t0", "agg-b-t1"]
    payloads = {p.type: p.values for p in seen.intervals[0].payloads}
    assert payloads == {"SIMPLE": (2,), "DISPATCH_SETPOINT_RELATIVE": (-10.0,)}


def test_an_event_against_the_participation_rules_is_a_400_and_leaves_nothing(world):
    from events.models import Event

    response = world.http("POST", "/events", world.token("bl"), json={
        "programID": str(world.program.pk), "eventName": "Night",
        "intervalPeriod": {"start": tomorrow_la(3).isoformat(), "duration": "PT1H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]})
    body = _problem(response, 400)
    assert "window" in body["detail"]
    assert Event.objects.count() == 0


def test_each_ven_sees_only_the_events_targeted_at_it(world):
    world.register_vens()
    world.bl().events.create_event(new_event=_event_request(
        str(world.program.pk), start=tomorrow_la(15), level=1, targets=[("VEN_NAME", ["ven-agg-a"])]))
    a = _events(world.ven("agg-a"))
    assert len(a) == 1
    assert {t.type: t.values for t in a[0].targets}["RESOURCE_NAME"] == ("agg-a-t0", "agg-a-t1")
    assert _events(world.ven("agg-b")) == ()
    _problem(world.http("GET", f"/events/{a[0].id}", world.token("agg-b")), 404)


def test_a_cpm_event_once_reserved_is_published_with_offsets_in_the_programs_zone(world):
    from cpm.openadr3 import services
    from tests.actors import TEST_ACTOR

    world.register_vens()
    services.program_settings_set(program=world.program, randomize_start_seconds=600, now=real_now(),
                                  actor=TEST_ACTOR)
    event = world.scheduled_event(target_kw=10)
    raw = world.http("GET", f"/events/{event.pk}", world.token("agg-b")).json()
    assert raw["intervalPeriod"] == {"start": tomorrow_la(15).isoformat(), "duration": "PT2H",
                                     "randomizeStart": "PT10M"}
    assert raw["intervalPeriod"]["start"].endswith(("-08:00", "-07:00"))
    assert raw["createdDateTime"].endswith("+00:00")
    assert raw["modificationNumber"] == 0
    assert raw["targets"] == [{"type": "VEN_NAME", "values": ["ven-agg-b"]},
                              {"type": "RESOURCE_NAME", "values": ["agg-b-t0", "agg-b-t1"]}]
    assert raw["intervals"][0]["payloads"] == [{"type": "SIMPLE", "values": [1]},
                                               {"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-10.0]}]


def _null_interval_periods(doc, where="") -> list[str]:
    """The places of ``"intervalPeriod": null`` in a document (the schema's intervalPeriod is an object, not
    nullable: 3.0.1 program, event and interval)."""
    if isinstance(doc, dict):
        return [f"{where}.{k}" for k, v in doc.items() if k == "intervalPeriod" and v is None] + [
            p for k, v in doc.items() for p in _null_interval_periods(v, f"{where}.{k}")]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _null_interval_periods(v, f"{where}[{i}]")]
    return []


def test_no_document_carries_a_null_interval_period(world, receiver):
    """intervalPeriod ($ref intervalPeriod, required start) is optional but not nullable in program, event and
    interval: it is left out when there is none (3.0.1 and 3.1)."""
    world.register_vens()
    world.ven("agg-a").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/a"))
    event = world.scheduled_event()
    token = world.token("bl")
    for path in (f"/programs/{world.program.pk}", "/programs", f"/events/{event.pk}", "/events",
                 f"/3.1/programs/{world.program.pk}", f"/3.1/events/{event.pk}"):
        response = world.http("GET", path, token)
        assert response.status_code == 200, response.text
        assert _null_interval_periods(response.json()) == [], path
    note = receiver.wait_for(lambda c: True)[0]["json"]
    assert _null_interval_periods(note) == []
    assert note["object"]["intervalPeriod"]["duration"] == "PT2H"


def test_filters_by_program_target_and_name(world):
    world.register_vens()
    event = world.scheduled_event()
    bl = world.bl()
    from openadr3_client.oadr301._vtn.interfaces.filters import PaginationFilter, TargetFilter

    assert [e.id for e in _events(bl, program_id=str(world.program.pk))] == [str(event.pk)]
    assert _events(bl, program_id="999") == ()
    assert [e.id for e in _events(bl, target=TargetFilter(target_type="RESOURCE_NAME",
                                                          target_values=["agg-b-t1"]))] == [str(event.pk)]
    assert _events(bl, target=TargetFilter(target_type="RESOURCE_NAME", target_values=["nope"])) == ()
    assert _events(bl, pagination=PaginationFilter(skip=1, limit=5)) == ()
    named = bl.vens.get_vens(ven_name="ven-agg-b", target=None, pagination=None)
    assert [v.ven_name for v in named] == ["ven-agg-b"]


def test_unknown_ids_are_404(world):
    token = world.token("bl")
    for path in ("/events/424242", "/programs/424242", "/vens/424242", "/reports/424242", "/subscriptions/x",
                 "/nowhere"):
        body = _problem(world.http("GET", path, token), 404)
        assert body["instance"] == f"/openadr3{path}"


def test_a_modification_through_openadr_is_a_new_revision_that_reaches_the_ven(world, receiver):
    from openadr3_client.oadr301.models.event.event import EventUpdate

    from events.models import Event, EventRevision

    world.register_vens()
    world.ven("agg-a").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/a", token="tok-a"))
    bl = world.bl()
    created = bl.events.create_event(new_event=_event_request(str(world.program.pk), start=tomorrow_la(15),
                                                              level=1))
    receiver.wait_for(lambda c: c["json"]["operation"] == "POST")
    from openadr3_client._models.common.interval_period import IntervalPeriod

    changed = created.update(EventUpdate(interval_period=IntervalPeriod(start=tomorrow_la(16),
                                                                        duration=dt.timedelta(hours=3))))
    bl.events.update_event_by_id(created.id, changed)
    event = Event.objects.get(pk=int(created.id))
    assert event.revision == 2 and event.start == tomorrow_la(16)
    assert EventRevision.objects.filter(event=event, revision=1).exists()
    seen = _events(world.ven("agg-a"))[0]
    assert seen.interval_period.start == tomorrow_la(16)
    puts = receiver.wait_for(lambda c: c["json"]["operation"] == "PUT")
    assert puts[0]["json"]["object"]["modificationNumber"] == 1
    assert puts[0]["json"]["object"]["intervalPeriod"]["duration"] == "PT3H"
    assert puts[0]["headers"]["Authorization"] == "Bearer tok-a"


def test_a_modification_made_in_cpm_reaches_the_ven(world):
    from events import services as event_services
    from tests.actors import TEST_ACTOR

    world.register_vens()
    event = world.scheduled_event()
    event_services.event_update(event=event, changes={"end": tomorrow_la(18)}, now=real_now(), actor=TEST_ACTOR,
                                reason="longer")
    raw = world.http("GET", f"/events/{event.pk}", world.token("agg-a")).json()
    assert raw["modificationNumber"] == 1
    assert raw["intervalPeriod"]["duration"] == "PT3H"


def test_cancellation_through_openadr_reaches_the_ven_as_a_delete(world, receiver):
    from events.models import Event

    world.register_vens()
    world.ven("agg-b").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/b", token="tok-b"))
    event = world.scheduled_event()
    deleted = world.bl().events.delete_event_by_id(str(event.pk))
    assert deleted.id == str(event.pk)
    event.refresh_from_db()
    assert event.status == "cancelled" and "OpenADR" in event.cancel_reason
    deletes = receiver.wait_for(lambda c: c["json"]["operation"] == "DELETE")
    assert deletes[0]["path"] == "/b" and deletes[0]["json"]["object"]["id"] == str(event.pk)
    assert _events(world.ven("agg-b")) == ()
    _problem(world.http("GET", f"/events/{event.pk}", world.token("agg-b")), 404)
    assert Event.objects.get(pk=event.pk).participations.filter(status="cancelled").count() == 4


def test_cancellation_in_cpm_reaches_the_ven(world, receiver):
    from events import services as event_services
    from tests.actors import TEST_ACTOR

    world.register_vens()
    world.ven("agg-a").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/a"))
    event = world.scheduled_event()
    event_services.event_cancel(event=event, reason="cooler weather", now=real_now(), actor=TEST_ACTOR)
    deletes = receiver.wait_for(lambda c: c["json"]["operation"] == "DELETE")
    assert deletes[0]["json"]["objectType"] == "EVENT"
    assert deletes[0]["json"]["object"]["targets"][0] == {"type": "VEN_NAME", "values": ["ven-agg-a"]}


# ------------------------------------------------------------------------------------------------ webhooks
def test_webhook_bodies_are_json_encoded_once_and_scoped_to_the_ven(world, receiver):
    from cpm.openadr3.models import Notification

    world.register_vens()
    world.ven("agg-a").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/a", token="tok-a"))
    world.bl().events.create_event(new_event=_event_request(
        str(world.program.pk), start=tomorrow_la(15), level=1, targets=[("VEN_NAME", ["ven-agg-b"])]))
    assert receiver.wait_for(lambda c: True, timeout=1.5) == []  # agg-a is not targeted: told nothing
    event = world.scheduled_event(hours=(18, 20), name="Evening")
    calls = receiver.wait_for(lambda c: c["json"]["object"]["id"] == str(event.pk))
    call = calls[0]
    assert isinstance(call["json"], dict) and call["json"]["operation"] == "POST"
    stored = Notification.objects.get(object_id=str(event.pk), callback_url=f"{receiver.url}/a")
    assert call["raw"] == stored.body.encode()
    assert json.loads(stored.body)["object"]["eventName"] == "Evening"
    assert stored.status == "delivered" and stored.attempts == 1
    assert call["headers"]["Content-Type"] == "application/json"


def test_business_logic_subscription_is_told_of_every_event(world, receiver):
    world.register_vens()
    response = world.http("POST", "/subscriptions", world.token("bl"), json={
        "clientName": "utility", "objectOperations": [{"objects": ["EVENT", "PROGRAM"], "operations": ["POST"],
                                                       "callbackUrl": f"{receiver.url}/bl"}]})
    assert response.status_code == 201 and response.json()["programID"] is None
    event = world.scheduled_event()
    call = receiver.wait_for(lambda c: c["path"] == "/bl")[0]
    obj = call["json"]["object"]
    assert obj["id"] == str(event.pk)
    assert obj["targets"][0]["values"] == ["ven-agg-a", "ven-agg-b"]


def test_program_subscriptions_are_told_of_programs_created_changed_and_deleted(world, receiver):
    """A subscription's objectOperations may name PROGRAM (3.0.1 objectTypes); a program created, changed or deleted,
    through the VTN or in cpm, is notified to it (a VEN's too: every program is the VEN's to read)."""
    from programs import services as program_services
    from tests.actors import TEST_ACTOR

    token = world.token("bl")
    response = world.http("POST", "/subscriptions", token, json={
        "clientName": "utility", "objectOperations": [{"objects": ["PROGRAM"], "operations": ["POST", "PUT", "DELETE"],
                                                       "callbackUrl": f"{receiver.url}/bl"}]})
    assert response.status_code == 201, response.text
    assert world.http("POST", "/subscriptions", world.token("agg-a"), json={
        "clientName": "ven-a", "objectOperations": [{"objects": ["PROGRAM"], "operations": ["POST"],
                                                     "callbackUrl": f"{receiver.url}/a"}]}).status_code == 201
    made = world.http("POST", "/programs", token, json={"programName": "ev-x", "programType": "ev_managed_charging"})
    assert made.status_code == 201, made.text
    program_id = made.json()["id"]
    assert world.http("PUT", f"/programs/{program_id}", token, json={
        "programName": "ev-x", "programLongName": "EV X"}).status_code == 200
    assert world.http("DELETE", f"/programs/{program_id}", token).status_code == 200
    in_cpm = program_services.program_create(data={"code": "cpm-made", "name": "Made in cpm",
                                                   "program_type": "thermostat_dr", "time_zone": "America/Los_Angeles"},
                                           now=real_now(), actor=TEST_ACTOR)
    calls = receiver.wait_for(lambda c: c["path"] == "/a" and c["json"]["object"]["id"] == str(in_cpm.pk))
    assert calls and calls[0]["json"]["objectType"] == "PROGRAM"
    receiver.wait_for(lambda c: c["path"] == "/bl" and c["json"]["object"]["id"] == str(in_cpm.pk))
    bl = [(c["json"]["operation"], c["json"]["object"]["id"], c["json"]["object"]["programLongName"])
          for c in receiver.calls if c["path"] == "/bl"]
    assert bl == [("POST", program_id, "ev-x"), ("PUT", program_id, "EV X"), ("DELETE", program_id, "EV X"),
                  ("POST", str(in_cpm.pk), "Made in cpm")]
    assert sorted(c["json"]["object"]["programName"] for c in receiver.calls if c["path"] == "/a") == [
        "cpm-made", "ev-x"]


def test_a_subscriptions_targets_filter_its_callbacks(world, receiver):
    """subscription.targets: "A list of valuesMap objects. Used by server to filter callbacks." (3.0.1): a
    subscription naming targets is told only of objects carrying one of them; one naming none, of everything it may
    read (a VEN without targets included)."""
    world.register_vens()
    token = world.token("bl")
    for path, targets in (("/ven-a", [{"type": "VEN_NAME", "values": ["ven-agg-a"]}]),
                          ("/b-t1", [{"type": "RESOURCE_NAME", "values": ["agg-b-t1", "elsewhere"]}]),
                          ("/all", None)):
        response = world.http("POST", "/subscriptions", token, json={
            "clientName": "utility", "programID": str(world.program.pk), "targets": targets,
            "objectOperations": [{"objects": ["EVENT"], "operations": ["POST", "PUT"],
                                  "callbackUrl": f"{receiver.url}{path}"}]})
        assert response.status_code == 201, response.text
    world.ven("agg-b").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/ven-b", operations=("POST", "PUT")))
    only_b = world.bl().events.create_event(new_event=_event_request(
        str(world.program.pk), start=tomorrow_la(15), level=1, targets=[("VEN_NAME", ["ven-agg-b"])]))
    both = world.scheduled_event(hours=(18, 20), name="Evening")
    receiver.wait_for(lambda c: c["path"] == "/ven-a")
    receiver.wait_for(lambda c: c["path"] == "/b-t1" and c["json"]["object"]["id"] == only_b.id)
    # An event created by business logic is published at once, then again (PUT) once its devices are reserved:
    # its targets are those of its reserved devices.
    told = {(c["path"], c["json"]["object"]["id"]) for c in receiver.calls}
    assert told == set([("/ven-a", str(both.pk)), ("/b-t1", only_b.id), ("/b-t1", str(both.pk)),
                           ("/all", only_b.id), ("/all", str(both.pk)), ("/ven-b", only_b.id),
                           ("/ven-b", str(both.pk))])


def test_a_ven_manages_only_its_own_subscriptions(world, receiver):
    world.register_vens()
    a = world.ven("agg-a").subscriptions.create_subscription(
        new_subscription=_subscription(str(world.program.pk), f"{receiver.url}/a", client_name="a"))
    assert [s.client_name for s in world.ven("agg-b").subscriptions.get_subscriptions(
        pagination=None, target=None, program_id=None, client_name=None, objects=None)] == []
    _problem(world.http("DELETE", f"/subscriptions/{a.id}", world.token("agg-b")), 404)
    response = world.http("POST", "/subscriptions", world.token("agg-a"), json={
        "clientName": "a", "objectOperations": [{"objects": ["EVENT"], "operations": ["POST"],
                                                 "callbackUrl": "ftp://x"}]})
    assert "callbackUrl" in _problem(response, 400)["detail"]
    deleted = world.ven("agg-a").subscriptions.delete_subscription_by_id(a.id)
    assert deleted.id == a.id


# ------------------------------------------------------------------------------------------------ reports
def _dispatched_event(world):
    from events import services as event_services
    from tests.actors import TEST_ACTOR

    event = world.scheduled_event()
    return event_services.event_dispatch(event=event, now=real_now(), actor=TEST_ACTOR)


def test_reports_become_participation_outcomes(world):
    from events.models import Participation

    world.register_vens()
    event = _dispatched_event(world)
    start = tomorrow_la(15)
    report = world.ven("agg-a").reports.create_report(new_report=_report(
        str(event.pk), str(world.program.pk), {"agg-a-t0": [(start, "OPERATING_STATE", "PARTICIPATED")],
                                               "agg-a-t1": [(start, "OPERATING_STATE", "NON_RESPONSIVE")]}))
    statuses = dict(Participation.objects.filter(event=event).values_list("device__aggregator_device_id", "status"))
    assert statuses == {"agg-a-t0": "participated", "agg-a-t1": "non_responsive", "agg-b-t0": "dispatched",
                        "agg-b-t1": "dispatched"}
    assert Participation.objects.get(event=event, device__aggregator_device_id="agg-a-t0").outcome_revision == 1
    assert report.client_name == "ven-agg-a"
    from cpm.openadr3.models import Report

    assert Report.objects.get(pk=int(report.id)).results["outcomes"] == {"agg-a-t0": "recorded",
                                                                         "agg-a-t1": "recorded"}


def test_an_opted_out_report_is_an_opt_out_at_the_intervals_start(world):
    from events.models import OptOut

    world.register_vens()
    event = world.scheduled_event()
    world.ven("agg-b").reports.create_report(new_report=_report(
        str(event.pk), str(world.program.pk), {"agg-b-t1": [(tomorrow_la(16), "OPERATING_STATE", "OPTED_OUT")]},
        client_name="ven-agg-b"))
    opt_out = OptOut.objects.get(participation__event=event)
    assert opt_out.channel == "aggregator_report"
    assert opt_out.at == tomorrow_la(16)
    assert opt_out.participation.device.aggregator_device_id == "agg-b-t1"
    assert opt_out.participation.status == "opted_out"


def test_usage_reports_become_versioned_idempotent_telemetry_readings(world):
    from settlement.meterdata.intervals import decode
    from settlement.meterdata.models import IntervalDay

    world.register_vens()
    event = _dispatched_event(world)
    start = tomorrow_la(15)
    slot = start.astimezone(dt.UTC)
    device = world.devices["agg-a"][0]
    ven = world.ven("agg-a")
    ven.reports.create_report(new_report=_report(str(event.pk), str(world.program.pk),
                                                 {"agg-a-t0": [(start, "USAGE", 0.75)]}))
    rows = IntervalDay.objects.filter(device=device, is_current=True)
    assert [(r.day, r.channel, r.version) for r in rows] == [(slot.date(), "delivered", 1)]
    assert decode(rows[0].values)[slot.hour] == pytest.approx(0.75)
    ven.reports.create_report(new_report=_report(str(event.pk), str(world.program.pk),
                                                 {"agg-a-t0": [(start, "USAGE", 0.75)]}))
    assert IntervalDay.objects.filter(device=device).count() == 1  # the same report again changes nothing
    ven.reports.create_report(new_report=_report(str(event.pk), str(world.program.pk),
                                                 {"agg-a-t0": [(start, "USAGE", 0.5)]}))
    current = IntervalDay.objects.get(device=device, is_current=True)
    assert current.version == 2 and decode(current.values)[slot.hour] == pytest.approx(0.5)


def test_a_report_on_an_event_not_targeted_at_the_ven_is_refused(world):
    world.register_vens()
    world.bl().events.create_event(new_event=_event_request(
        str(world.program.pk), start=tomorrow_la(15), level=1, targets=[("VEN_NAME", ["ven-agg-a"])]))
    from cpm.openadr3.models import OadrEvent

    event_id = str(OadrEvent.objects.get().pk)
    response = world.http("POST", "/reports", world.token("agg-b"), json={
        "programID": str(world.program.pk), "eventID": event_id, "clientName": "b",
        "resources": [{"resourceName": "agg-b-t0", "intervals": []}]})
    assert "eventID" in _problem(response, 400)["detail"]


def test_reports_are_seen_by_their_ven_and_business_logic_only(world):
    world.register_vens()
    event = world.scheduled_event()
    start = tomorrow_la(15)
    world.ven("agg-a").reports.create_report(new_report=_report(
        str(event.pk), str(world.program.pk), {"agg-a-t0": [(start, "USAGE", 1.0)]}))
    assert len(world.ven("agg-a").reports.get_reports(pagination=None, program_id=None, event_id=str(event.pk),
                                                      client_name=None)) == 1
    assert world.ven("agg-b").reports.get_reports(pagination=None, program_id=None, event_id=None,
                                                  client_name=None) == ()
    assert len(world.bl().reports.get_reports(pagination=None, program_id=str(world.program.pk), event_id=None,
                                              client_name="ven-agg-a")) == 1
    body = _problem(world.http("POST", "/reports", world.token("bl"), json={}), 403)
    assert "business logic" in body["detail"]


def test_utc_now_offsets_in_ven_documents(world):
    vens = world.register_vens()
    raw = world.http("GET", f"/vens/{vens['agg-a'].id}", world.token("agg-a")).json()
    created = dt.datetime.fromisoformat(raw["createdDateTime"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs(created - real_now()) < dt.timedelta(minutes=5)
    assert LA.key == "America/Los_Angeles"
