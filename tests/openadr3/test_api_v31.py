"""The VTN's OpenADR 3.1.0 API (``/openadr3/3.1``) driven by ``openadr3-client``'s 3.1 clients (business logic and
two VENs) against a live cpm server. The library enforces HTTPS for 3.1; the live test server speaks plain HTTP, so
the clients are made with the library's own test switch ``allow_insecure_http=True``. Every answer is parsed by the
library's 3.1 pydantic models (the clients do it; raw answers with ``model_validate``); the same objects are read
back through the 3.0.1 API to show one model of truth."""

from __future__ import annotations

import datetime as dt

import pytest

from .conftest import real_now, tomorrow_la

pytestmark = pytest.mark.django_db(transaction=True)

BL_SCOPES = ["read_all", "write_programs", "write_events", "write_subscriptions", "write_vens"]
VEN_SCOPES = ["read_targets", "read_ven_objects", "write_reports", "write_subscriptions", "write_vens"]


def _base(world) -> str:
    return f"{world.base}/3.1"


def _bl(world, *, discover: bool = False):
    from openadr3_client.bl.http_factory import BusinessLogicHttpClientFactory
    from openadr3_client.version import OADRVersion

    cid, secret = world.credentials["bl"]
    return BusinessLogicHttpClientFactory.create_http_bl_client(
        vtn_base_url=_base(world), client_id=cid, client_secret=secret,
        token_url=None if discover else f"{_base(world)}/auth/token", scopes=BL_SCOPES, allow_insecure_http=True,
        version=OADRVersion.OADR_310)


def _ven(world, code: str):
    from openadr3_client.ven.http_factory import VirtualEndNodeHttpClientFactory
    from openadr3_client.version import OADRVersion

    cid, secret = world.credentials[code]
    return VirtualEndNodeHttpClientFactory.create_http_ven_client(
        vtn_base_url=_base(world), client_id=cid, client_secret=secret, token_url=f"{_base(world)}/auth/token",
        scopes=VEN_SCOPES, allow_insecure_http=True, version=OADRVersion.OADR_310)


def _register(world) -> dict:
    """Both aggregators register their VEN themselves (VEN_VEN_REQUEST); {code: ExistingVen}."""
    from openadr3_client.oadr310.models.ven.ven import NewVenVenRequest

    return {code: _ven(world, code).vens.create_ven(new_ven=NewVenVenRequest(ven_name=f"ven-{code}"))
            for code in ("agg-a", "agg-b")}


def _new_event(program_id: str, *, start: dt.datetime, level: int = 1, kw: float | None = None, targets=None,
               hours: int = 2, name: str = "Grid alert"):
    from openadr3_client._models.common.interval import Interval
    from openadr3_client._models.common.interval_period import IntervalPeriod
    from openadr3_client.oadr310.models.event.event import NewEvent
    from openadr3_client.oadr310.models.event.event_payload import EventPayload, EventPayloadType

    payloads = [EventPayload(type=EventPayloadType.SIMPLE, values=(level,))]
    if kw is not None:
        payloads.append(EventPayload(type=EventPayloadType.DISPATCH_SETPOINT_RELATIVE, values=(kw,)))
    return NewEvent(programID=program_id, event_name=name, targets=tuple(targets) if targets else None,
                    interval_period=IntervalPeriod(start=start, duration=dt.timedelta(hours=hours)),
                    intervals=(Interval[EventPayload](id=0, payloads=tuple(payloads)),))


def _events(client, targets=None):
    from openadr3_client.oadr310._vtn.interfaces.filters import TargetFilter

    return client.events.get_events(target=TargetFilter(targets=targets) if targets else None, pagination=None,
                                    program_id=None)


def _get(world, who: str, path: str, **kw):
    return world.http("GET", f"/3.1{path}", world.token(who), **kw)


# ------------------------------------------------------------------------------------------------ discovery
def test_a_31_client_discovers_the_token_url_and_reads_the_notifiers(world):
    import requests
    from openadr3_client.oadr310.models.auth.auth_server import AuthServerInfo

    info = AuthServerInfo.model_validate(requests.get(f"{_base(world)}/auth/server", timeout=10).json())
    assert str(info.token_url) == f"{_base(world)}/auth/token"
    bl = _bl(world, discover=True)  # no token URL given: the library asks /auth/server
    assert [p.program_name for p in bl.programs.get_programs(target=None, pagination=None)] == ["smart-ac"]
    # The spec's notifiersResponse: WEBHOOK required, MQTT an optional object; cpm has no MQTT broker, so MQTT is
    # left out (openadr3-client 2.4.2's NotifierDetails wrongly requires MQTT, so bl.notifiers cannot parse it).
    assert _get(world, "bl", "/notifiers").json() == {"WEBHOOK": True}


# ------------------------------------------------------------------------------------------------ programs
def test_programs_carry_their_31_attributes_and_are_the_same_cpm_programs(world):
    from openadr3_client._models.common.attribute import Attribute
    from openadr3_client.oadr310.models.program.program import NewProgram, ProgramUpdate
    from openadr3_client.oadr310.models.program.program_attribute import ProgramAttributeType as A

    from programs.models import Program

    bl = _bl(world)
    created = bl.programs.create_program(new_program=NewProgram(program_name="ev-managed", attributes=(
        Attribute(type=A.PROGRAM_LONG_NAME, values=("EV Managed Charging",)),
        Attribute(type=A.PROGRAM_TYPE, values=("ev_managed_charging",)))))
    program = Program.objects.get(pk=int(created.id))
    assert (program.code, program.name, program.program_type, program.status) == (
        "ev-managed", "EV Managed Charging", "ev_managed_charging", "draft")
    attrs = {a.type: a.values for a in bl.programs.get_program_by_id(created.id).attributes}
    assert attrs == {"PROGRAM_LONG_NAME": ("EV Managed Charging",), "PROGRAM_TYPE": ("ev_managed_charging",),
                     "BINDING_EVENTS": (False,)}
    pid = str(world.program.pk)
    updated = bl.programs.update_program_by_id(pid, ProgramUpdate(program_name="smart-ac", attributes=(
        Attribute(type=A.PROGRAM_LONG_NAME, values=("Smart AC Rewards 2027",)),)))
    assert updated.attributes.get_by_type(A.PROGRAM_LONG_NAME).values == ("Smart AC Rewards 2027",)
    assert Program.objects.get(pk=world.program.pk).name == "Smart AC Rewards 2027"
    old = world.http("GET", f"/programs/{pid}", world.token("bl")).json()  # the 3.0.1 view of it
    assert (old["programLongName"], old["programType"]) == ("Smart AC Rewards 2027", world.program.program_type)
    raw = _get(world, "bl", f"/programs/{pid}").json()
    assert "programLongName" not in raw and raw["targets"] is None
    body = world.http("POST", "/3.1/programs", world.token("bl"), json={"programName": "no-type"}).json()
    assert body["status"] == 400 and "programType" in body["detail"]


# ------------------------------------------------------------------------------------------------ events
def test_a_targeted_event_reaches_only_its_ven_with_string_targets(world):
    from openadr3_client.oadr310.models.event.event import ExistingEvent

    from events.models import Event, Participation

    _register(world)
    created = _bl(world).events.create_event(new_event=_new_event(
        str(world.program.pk), start=tomorrow_la(15), level=2, kw=-10, targets=["ven-agg-a"], name="Flex alert"))
    event = Event.objects.get(pk=int(created.id))
    assert (event.name, event.status, event.category, event.target_kw) == (
        "Flex alert", "scheduled", "reliability", pytest.approx(10))
    assert Participation.objects.filter(event=event, status="reserved").count() == 2
    seen = _events(_ven(world, "agg-a"))
    assert [e.id for e in seen] == [created.id]
    assert seen[0].targets == ("ven-agg-a", "agg-a-t0", "agg-a-t1")
    assert {p.type: p.values for p in seen[0].intervals[0].payloads} == {"SIMPLE": (2,),
                                                                         "DISPATCH_SETPOINT_RELATIVE": (-10.0,)}
    assert seen[0].interval_period.start == tomorrow_la(15)
    assert _events(_ven(world, "agg-b")) == ()
    assert _get(world, "agg-b", f"/events/{created.id}").status_code == 404
    raw = _get(world, "agg-a", f"/events/{created.id}").json()
    ExistingEvent.model_validate(raw)
    assert "modificationNumber" not in raw
    assert [d["reportIntervals"] for d in raw["reportDescriptors"]] == ["INTERVALS", "INTERVALS"]
    # the 3.0.1 view of the same event keeps its valuesMap targets
    old = world.http("GET", f"/events/{created.id}", world.token("agg-a")).json()
    assert old["targets"][0] == {"type": "VEN_NAME", "values": ["ven-agg-a"]}


def test_the_targets_query_keeps_events_carrying_every_given_target(world):
    _register(world)
    bl = _bl(world)
    a = bl.events.create_event(new_event=_new_event(str(world.program.pk), start=tomorrow_la(15),
                                                    targets=["ven-agg-a"], name="A only"))
    both = bl.events.create_event(new_event=_new_event(str(world.program.pk), start=tomorrow_la(18), hours=1,
                                                       name="Everyone"))
    assert [e.id for e in _events(bl, ["ven-agg-a"])] == [a.id, both.id]
    assert [e.id for e in _events(bl, ["ven-agg-b"])] == [both.id]
    assert [e.id for e in _events(bl, ["ven-agg-b", "agg-b-t1"])] == [both.id]
    assert [e.id for e in _events(bl, ["ven-agg-a", "agg-b-t0"])] == [both.id]
    assert _events(bl, ["ven-agg-a", "no-such-target"]) == ()
    assert [e.name for e in _events(_ven(world, "agg-b"), ["agg-b-t0"])] == ["Everyone"]
    page = _get(world, "bl", "/events?targets=ven-agg-a&skip=1&limit=1").json()
    assert [e["id"] for e in page] == [both.id]


def test_a_31_modification_is_a_new_cpm_revision_the_ven_reads(world):
    from openadr3_client._models.common.interval_period import IntervalPeriod
    from openadr3_client.oadr310.models.event.event import EventUpdate

    from events.models import Event, EventRevision

    _register(world)
    bl = _bl(world)
    created = bl.events.create_event(new_event=_new_event(str(world.program.pk), start=tomorrow_la(15)))
    changed = created.update(EventUpdate(programID=created.program_id, interval_period=IntervalPeriod(
        start=tomorrow_la(16), duration=dt.timedelta(hours=3))))
    updated = bl.events.update_event_by_id(created.id, changed)
    assert updated.interval_period.start == tomorrow_la(16)
    event = Event.objects.get(pk=int(created.id))
    assert (event.revision, event.start, event.end) == (2, tomorrow_la(16), tomorrow_la(19))
    assert EventRevision.objects.filter(event=event, revision=1).exists()
    seen = _events(_ven(world, "agg-b"))[0]
    assert (seen.interval_period.start, seen.interval_period.duration) == (tomorrow_la(16), dt.timedelta(hours=3))
    assert seen.modification_date_time >= seen.created_date_time


def test_a_31_cancellation_cancels_the_cpm_event_and_the_vens_stop_seeing_it(world):
    _register(world)
    event = world.scheduled_event()
    assert [e.id for e in _events(_ven(world, "agg-a"))] == [str(event.pk)]
    deleted = _bl(world).events.delete_event_by_id(str(event.pk))
    assert deleted.id == str(event.pk) and deleted.event_name == "Heat wave"
    event.refresh_from_db()
    assert event.status == "cancelled" and "OpenADR" in event.cancel_reason
    assert event.participations.filter(status="cancelled").count() == 4
    assert _events(_ven(world, "agg-a")) == ()
    assert _get(world, "agg-a", f"/events/{event.pk}").status_code == 404


# ------------------------------------------------------------------------------------------------ reports
def test_a_31_report_becomes_outcomes_with_the_vens_client_id_and_is_scoped(world):
    from openadr3_client._models.common.interval import Interval
    from openadr3_client._models.common.interval_period import IntervalPeriod
    from openadr3_client.oadr310.models.report.report import NewReport, ReportResource
    from openadr3_client.oadr310.models.report.report_payload import ReportPayload, ReportPayloadType

    from events import services as event_services
    from events.models import Participation
    from tests.actors import TEST_ACTOR

    _register(world)
    event = event_services.event_dispatch(event=world.scheduled_event(), now=real_now(), actor=TEST_ACTOR)
    start = tomorrow_la(15)

    def resource(name, state):
        return ReportResource(resource_name=name, intervals=(Interval[ReportPayload](
            id=0, interval_period=IntervalPeriod(start=start, duration=dt.timedelta(hours=1)),
            payloads=(ReportPayload(type=ReportPayloadType.OPERATING_STATE, values=(state,)),)),))

    report = _ven(world, "agg-a").reports.create_report(new_report=NewReport(
        eventID=str(event.pk), client_name="ven-agg-a", report_name="outcome",
        resources=(resource("agg-a-t0", "PARTICIPATED"), resource("agg-a-t1", "OPTED_OUT"))))
    assert report.client_id == world.credentials["agg-a"][0]
    statuses = dict(Participation.objects.filter(event=event).values_list("device__aggregator_device_id", "status"))
    assert statuses["agg-a-t0"] == "participated" and statuses["agg-b-t0"] == "dispatched"
    assert statuses["agg-a-t1"] in ("opted_out", "opt_out")
    seen = _bl(world).reports.get_reports(pagination=None, program_id=None, event_id=None, client_name=None)
    assert [(r.id, r.event_id, r.client_id) for r in seen] == [(report.id, str(event.pk),
                                                                world.credentials["agg-a"][0])]
    assert _get(world, "agg-b", "/reports").json() == []
    assert _get(world, "agg-b", f"/reports/{report.id}").status_code == 404
    assert "programID" not in _get(world, "agg-a", f"/reports/{report.id}").json()


# ------------------------------------------------------------------------------------------------ subscriptions
def test_31_subscriptions_carry_the_client_id_are_scoped_and_take_the_311_operation_names(world, receiver):
    from openadr3_client.oadr310.models.subscriptions.subscription import (
        ExistingSubscription,
        NewSubscription,
        Object,
        ObjectOperation,
        Operation,
    )

    from cpm.openadr3.models import Subscription

    _register(world)
    ven_a = _ven(world, "agg-a")
    sub = ven_a.subscriptions.create_subscription(new_subscription=NewSubscription(
        client_name="ven-agg-a", programID=str(world.program.pk), targets=("agg-a-t0",),
        object_operations=(ObjectOperation(objects=(Object.EVENT,), operations=(Operation.POST, Operation.DELETE),
                                           callback_url=f"{receiver.url}/a", bearer_token="tok-a"),)))
    assert sub.targets == ("agg-a-t0",)
    # the spec's subscription has clientID (openadr3-client 2.4.2's 3.1 model does not read it)
    assert _get(world, "agg-a", f"/subscriptions/{sub.id}").json()["clientID"] == world.credentials["agg-a"][0]
    row = Subscription.objects.get(pk=int(sub.id))
    assert row.targets == [{"type": "TARGET", "values": ["agg-a-t0"]}]
    assert [s.id for s in ven_a.subscriptions.get_subscriptions(
        pagination=None, program_id=None, client_name=None, objects=None)] == [sub.id]
    assert _get(world, "agg-b", f"/subscriptions/{sub.id}").status_code == 404
    assert _get(world, "agg-b", "/subscriptions").json() == []
    # OpenADR 3.1.1 names the operations READ/CREATE/UPDATE/DELETE: taken, kept by their 3.0.1 names
    response = world.http("POST", "/3.1/subscriptions", world.token("bl"), json={
        "clientName": "utility", "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE", "UPDATE"],
                                                       "callbackUrl": f"{receiver.url}/bl"}]})
    assert response.status_code == 201, response.text
    bl_sub = ExistingSubscription.model_validate(response.json())
    assert bl_sub.object_operations[0].operations == (Operation.POST, Operation.PUT)
    assert response.json()["clientID"] == world.credentials["bl"][0]
    bl_seen = _bl(world).subscriptions.get_subscriptions(pagination=None, program_id=None, client_name=None,
                                                         objects=None)
    assert sorted(s.id for s in bl_seen) == sorted([sub.id, bl_sub.id])
    deleted = ven_a.subscriptions.delete_subscription_by_id(sub.id)
    assert deleted.id == sub.id and not Subscription.objects.filter(pk=int(sub.id)).exists()


# ------------------------------------------------------------------------------------------------ VENs, resources
def test_business_logic_registers_a_ven_with_its_client_id_and_targets_only_it_assigns(world):
    from openadr3_client.oadr310.models.ven.ven import NewVenBlRequest, VenUpdateVenRequest

    from cpm.openadr3.models import Ven

    a_client = world.credentials["agg-a"][0]
    bl = _bl(world)
    ven = bl.vens.create_ven(new_ven=NewVenBlRequest(ven_name="agg-a", client_id=a_client, targets=("north",)))
    assert (ven.ven_name, ven.client_id, ven.targets) == ("agg-a", a_client, ("north",))
    assert Ven.objects.get(pk=int(ven.id)).targets == [{"type": "TARGET", "values": ["north"]}]
    ven_a = _ven(world, "agg-a")
    mine = ven_a.vens.get_vens(ven_name=None, target=None, pagination=None)
    assert [(v.id, v.client_id, v.targets) for v in mine] == [(ven.id, a_client, ("north",))]
    # a VEN renames itself; the targets it sends are ignored (only business logic assigns them)
    raw = world.http("PUT", f"/3.1/vens/{ven.id}", world.token("agg-a"), json={
        "objectType": "VEN_VEN_REQUEST", "venName": "agg-a-renamed", "targets": ["south"]})
    assert raw.status_code == 200, raw.text
    assert (raw.json()["venName"], raw.json()["targets"]) == ("agg-a-renamed", ["north"])
    assert ven_a.vens.update_ven_by_id(ven.id, VenUpdateVenRequest(ven_name="agg-a-2")).targets == ("north",)
    from openadr3_client.oadr310._vtn.interfaces.filters import TargetFilter

    assert [v.id for v in bl.vens.get_vens(ven_name=None, target=TargetFilter(targets=["north"]),
                                           pagination=None)] == [ven.id]
    assert bl.vens.get_vens(ven_name=None, target=TargetFilter(targets=["south"]), pagination=None) == ()
    body = world.http("POST", "/3.1/vens", world.token("bl"), json={
        "objectType": "BL_VEN_REQUEST", "venName": "agg-b"}).json()
    assert body["status"] == 400 and "clientID" in body["detail"]
    # the 3.0.1 view of the same VEN: valuesMap targets, its resources embedded
    old = world.http("GET", f"/vens/{ven.id}", world.token("agg-a")).json()
    assert old["targets"] == [{"type": "TARGET", "values": ["north"]}] and old["venName"] == "agg-a-2"


def test_resources_live_at_slash_resources_scoped_to_the_vens_own(world):
    from openadr3_client.oadr310._vtn.interfaces.filters import TargetFilter
    from openadr3_client.oadr310.models.resource.resource import (
        NewResourceBlRequest,
        NewResourceVenRequest,
        ResourceUpdateVenRequest,
    )

    from cpm.openadr3.models import Resource

    vens = _register(world)
    a_id, b_id = vens["agg-a"].id, vens["agg-b"].id
    ven_a = _ven(world, "agg-a")
    mine = ven_a.resources.get_resources()
    assert sorted((r.resource_name, r.ven_id, r.client_id) for r in mine) == [
        ("agg-a-t0", a_id, world.credentials["agg-a"][0]), ("agg-a-t1", a_id, world.credentials["agg-a"][0])]
    everyone = _bl(world).resources.get_resources()
    assert len(everyone) == 4
    assert sorted(r.resource_name for r in _bl(world).resources.get_resources(ven_id=b_id)) == ["agg-b-t0",
                                                                                               "agg-b-t1"]
    assert ven_a.resources.get_resources(ven_id=b_id) == ()
    b_resource = next(r for r in everyone if r.ven_id == b_id)
    assert _get(world, "agg-a", f"/resources/{b_resource.id}").status_code == 404
    # a VEN adds a resource to its own VEN (whatever venID it names)
    added = ven_a.resources.create_resource(NewResourceVenRequest(resource_name="site-meter", ven_id=b_id))
    assert (added.ven_id, Resource.objects.get(pk=int(added.id)).ven_id) == (a_id, int(a_id))
    renamed = ven_a.resources.update_resource_by_id(added.id, ResourceUpdateVenRequest(
        resource_name="site-meter-2", ven_id=a_id))
    assert renamed.resource_name == "site-meter-2"
    # business logic adds one to VEN b with targets, and filters by them
    bl_added = _bl(world).resources.create_resource(NewResourceBlRequest(
        resource_name="feeder-7", ven_id=b_id, client_id=world.credentials["agg-b"][0], targets=("feeder-7",)))
    assert (bl_added.ven_id, bl_added.targets) == (b_id, ("feeder-7",))
    assert [r.id for r in _bl(world).resources.get_resources(target=TargetFilter(targets=["feeder-7"]))] == [
        bl_added.id]
    assert ven_a.resources.get_resources(target=TargetFilter(targets=["feeder-7"])) == ()
    deleted = ven_a.resources.delete_resource_by_id(added.id)
    assert deleted.id == added.id and not Resource.objects.filter(pk=int(added.id)).exists()
    body = world.http("PUT", f"/3.1/resources/{bl_added.id}", world.token("bl"), json={
        "objectType": "BL_RESOURCE_REQUEST", "resourceName": "feeder-7", "venID": a_id,
        "clientID": "x"}).json()
    assert body["status"] == 400 and "venID" in body["detail"]


def test_a_31_subscription_is_notified_with_31_objects_a_301_one_with_301_objects(world, receiver):
    from openadr3_client.oadr310.models.event.event import ExistingEvent
    from openadr3_client.oadr310.models.resource.resource import ExistingResource, NewResourceVenRequest
    from openadr3_client.oadr310.models.subscriptions.subscription import (
        NewSubscription,
        Object,
        ObjectOperation,
        Operation,
    )

    _register(world)
    ven_a = _ven(world, "agg-a")
    ven_a.subscriptions.create_subscription(new_subscription=NewSubscription(
        client_name="ven-agg-a", object_operations=(ObjectOperation(
            objects=(Object.EVENT, Object.RESOURCE), operations=(Operation.POST,), callback_url=f"{receiver.url}/v31",
            bearer_token="tok-31"),)))
    world.ven("agg-a").subscriptions.create_subscription(new_subscription=_subscription_301(
        str(world.program.pk), f"{receiver.url}/v301"))
    created = _bl(world).events.create_event(new_event=_new_event(str(world.program.pk), start=tomorrow_la(15),
                                                                  targets=["ven-agg-a"]))
    v31_calls = receiver.wait_for(lambda c: c["path"] == "/v31" and c["json"]["objectType"] == "EVENT")
    v301_calls = receiver.wait_for(lambda c: c["path"] == "/v301")
    note = v31_calls[0]["json"]
    assert (note["operation"], note["object"]["id"]) == ("POST", created.id)
    assert note["targets"] == ["ven-agg-a", "agg-a-t0", "agg-a-t1"]
    assert ExistingEvent.model_validate(note["object"]).targets == ("ven-agg-a", "agg-a-t0", "agg-a-t1")
    assert "modificationNumber" not in note["object"]
    assert v31_calls[0]["headers"]["Authorization"] == "Bearer tok-31"
    assert v301_calls[0]["json"]["object"]["targets"][0] == {"type": "VEN_NAME", "values": ["ven-agg-a"]}
    added = ven_a.resources.create_resource(NewResourceVenRequest(resource_name="site-meter", ven_id="0"))
    res_note = receiver.wait_for(lambda c: c["path"] == "/v31" and c["json"]["objectType"] == "RESOURCE")[0]
    resource = ExistingResource.model_validate(res_note["json"]["object"])
    assert (resource.id, resource.client_id) == (added.id, world.credentials["agg-a"][0])


def test_a_31_subscriptions_target_strings_filter_its_callbacks(world, receiver):
    """3.1 subscription.targets (strings) are used by the server to filter callbacks: told only of objects carrying
    every one of them (the 3.1 ``targets`` query's rule)."""
    _register(world)
    for path, targets in (("/t31", ["agg-b-t1"]), ("/both", ["ven-agg-a", "ven-agg-b"]), ("/all", None)):
        response = world.http("POST", "/3.1/subscriptions", world.token("bl"), json={
            "clientName": "utility", "targets": targets, "objectOperations": [{
                "objects": ["EVENT"], "operations": ["POST", "PUT"], "callbackUrl": f"{receiver.url}{path}"}]})
        assert response.status_code == 201, response.text
    only_a = _bl(world).events.create_event(new_event=_new_event(str(world.program.pk), start=tomorrow_la(15),
                                                                 targets=["ven-agg-a"]))
    both = world.scheduled_event(hours=(18, 20), name="Evening")
    receiver.wait_for(lambda c: c["path"] == "/both")
    receiver.wait_for(lambda c: c["path"] == "/all" and c["json"]["object"]["id"] == str(both.pk))
    told = {(c["path"], c["json"]["object"]["id"]) for c in receiver.calls}
    assert told == {("/t31", str(both.pk)), ("/both", str(both.pk)), ("/all", only_a.id), ("/all", str(both.pk))}


def _subscription_301(program_id: str, url: str):
    from openadr3_client.oadr301.models.subscriptions.subscription import (
        NewSubscription,
        Object,
        ObjectOperation,
        Operation,
    )

    return NewSubscription(client_name="ven-agg-a", programID=program_id, object_operations=(ObjectOperation(
        objects=(Object.EVENT,), operations=(Operation.POST,), callback_url=url, bearer_token="tok-301"),))


def test_31_lists_run_a_constant_number_of_queries(world):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from cpm.openadr3.models import Resource, Ven

    _register(world)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world.token('bl')}"}
    client = Client()

    def count(path):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"/openadr3/3.1{path}", **auth)
        assert response.status_code == 200, response.content
        return len(ctx.captured_queries), len(response.json())

    paths = ("/resources", "/vens", "/resources?targets=t", "/subscriptions", "/reports", "/events", "/programs")
    before = {p: count(p) for p in paths}
    ven = Ven.objects.get(ven_name="ven-agg-a")
    now = ven.created_at
    Resource.objects.bulk_create([Resource(ven=ven, resource_name=f"r{n}", targets=[{"type": "TARGET",
                                                                                  "values": ["t"]}],
                                           created_at=now, updated_at=now) for n in range(20)])
    after = {p: count(p) for p in paths}
    assert after["/resources"][1] == 24 and after["/resources?targets=t"][1] == 20
    assert {p: q for p, (q, _) in after.items()} == {p: q for p, (q, _) in before.items()}
