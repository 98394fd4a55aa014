"""Events API: create/modify/schedule/cancel/reserve, ledger and participation lists (constant queries), opt-out,
aggregator polling (back-to-back events both listed) and bulk outcomes, unavailability."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.base import roles
from events import services
from events.choices import EventStatus, ParticipationStatus
from events.models import Event, Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, la

pytestmark = pytest.mark.django_db
JULY_NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(JULY_NOW, tick=False):
        yield


def participant(program, **device):
    return active_participant(program=program, device_kwargs={"last_seen_at": JULY_NOW, **device})


def scheduled_event(program, start=None, end=None, **kw):
    start = start or la(2026, 7, 15, 15)
    event = EventFactory(program=program, start=start, end=end or start + dt.timedelta(hours=2), **kw)
    services.event_schedule(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    services.event_reserve(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    return event


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries), response.json()


def test_create_in_local_time_schedule_and_rule_refusal(admin_api, program):
    body = {"program": "smart-ac", "name": "Heat wave", "start": "2026-07-15T15:00:00",
            "end": "2026-07-15T18:00:00", "notification_at": "2026-07-15T13:00:00-07:00", "target_kw": "50"}
    r = admin_api.post("/api/v1/events/", body, format="json")
    assert r.status_code == 201, r.content
    data = r.json()
    assert (data["start"], data["start_local"]) == ("2026-07-15T22:00:00Z", "2026-07-15T15:00:00-07:00")
    assert (data["duration_minutes"], data["quarter_hours"], data["status"]) == (180, 12, "draft")
    r = admin_api.post(f"/api/v1/events/{data['id']}/schedule/", {}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "scheduled"
    saturday = {**body, "start": "2026-07-18T15:00:00", "end": "2026-07-18T16:00:00", "notification_at": None}
    sid = admin_api.post("/api/v1/events/", saturday, format="json").json()["id"]
    r = admin_api.post(f"/api/v1/events/{sid}/schedule/", {}, format="json")
    assert r.status_code == 400
    assert r.json()["code"] == "participation_rule"
    assert "Saturday" in r.json()["weekends_allowed"][0]
    bad = admin_api.post("/api/v1/events/", {**body, "start": "2026-03-08T02:30:00"}, format="json")
    assert bad.status_code == 400 and "does not exist" in bad.json()["start"][0]


def test_modify_cancel_reserve_and_revisions(admin_api, program, django_capture_on_commit_callbacks):
    participant(program)
    event = scheduled_event(program)
    r = admin_api.patch(f"/api/v1/events/{event.pk}/", {"end": "2026-07-15T18:00:00-07:00", "reason": "longer"},
                        format="json")
    assert r.status_code == 200 and r.json()["revision"] == 2
    revs = admin_api.get(f"/api/v1/events/{event.pk}/revisions/").json()
    assert [(x["revision"], x["snapshot"]["end"], x["reason"]) for x in revs] == [
        (1, "2026-07-16T00:00:00+00:00", "longer")]
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_api.post(f"/api/v1/events/{event.pk}/reserve/")
    assert r.status_code == 202
    assert r.json()["reservation_counts"] == {"reserved": 1}
    assert admin_api.post(f"/api/v1/events/{event.pk}/cancel/", {}, format="json").status_code == 400
    r = admin_api.post(f"/api/v1/events/{event.pk}/cancel/", {"reason": "Cooler forecast"}, format="json")
    assert (r.status_code, r.json()["status"], r.json()["cancel_reason"]) == (200, "cancelled", "Cooler forecast")
    assert admin_api.post(f"/api/v1/events/{event.pk}/cancel/", {"reason": "again"}, format="json").status_code == 409


def test_event_list_constant_queries_with_counts(admin_api, program):
    participant(program)
    scheduled_event(program)
    one, data = count_queries(admin_api, "/api/v1/events/")
    assert data["results"][0]["reservation_counts"] == {"reserved": 1}
    for day in (16, 17, 20, 21, 22):
        participant(program)
        scheduled_event(program, start=la(2026, 7, day, 15))
    many, data = count_queries(admin_api, "/api/v1/events/")
    assert data["count"] == 6
    assert one == many


def test_reservation_ledger_filters_and_constant_queries(admin_api, program):
    participant(program)
    first = scheduled_event(program)
    # Warm-up: the aggregator scope (devices.selectors.aggregator_of) caches "no aggregator" on the authenticated user
    # object, which the test client reuses across requests.
    count_queries(admin_api, f"/api/v1/reservations/?event={first.pk}")
    one, _ = count_queries(admin_api, f"/api/v1/reservations/?event={first.pk}")
    participant(program)
    stale = participant(program, last_seen_at=JULY_NOW - dt.timedelta(days=5))
    event = scheduled_event(program, start=la(2026, 7, 16, 15))
    many, data = count_queries(admin_api, f"/api/v1/reservations/?event={event.pk}")
    assert data["count"] == 3 and one == many
    _, data = count_queries(admin_api, f"/api/v1/reservations/?decision=offline&event={event.pk}")
    assert [(x["device"], x["decision_label"]) for x in data["results"]] == [(stale.device_id, "Device offline")]
    assert data["results"][0]["detail"].startswith("Device last seen 2026-07-09")
    _, data = count_queries(admin_api, f"/api/v1/reservations/?device={stale.device_id}")
    assert [x["event"] for x in data["results"]] == [event.pk]


def test_reservation_ledger_by_subscription_reads_its_enrollment_too(admin_api, program):
    """``?subscription=`` lists that subscription's ledger rows in every event and only those; the query names the
    subscription's enrollment as well, so it reads the (enrollment, subscription) index (events migration 0016):
    there is no index on the subscription alone. An unknown subscription is a 400 naming the field."""
    mine = participant(program)
    other = participant(program)
    first = scheduled_event(program)
    second = scheduled_event(program, start=la(2026, 7, 16, 15))
    with CaptureQueriesContext(connection) as ctx:
        r = admin_api.get(f"/api/v1/reservations/?subscription={mine.pk}")
    assert r.status_code == 200, r.content
    rows = r.json()["results"]
    assert sorted((x["event"], x["subscription"], x["decision"]) for x in rows) == [
        (first.pk, mine.pk, "reserved"), (second.pk, mine.pk, "reserved")]
    assert Reservation.objects.filter(subscription=other).count() == 2  # the other's rows exist, and are not listed
    listed = [q["sql"] for q in ctx.captured_queries if 'FROM "events_reservation"' in q["sql"]]
    assert listed and all(f'"events_reservation"."enrollment_id" = {mine.enrollment_id}' in q for q in listed)
    r = admin_api.get("/api/v1/reservations/?subscription=999999")
    assert r.status_code == 400 and "subscription" in r.json()


def test_participations_list_and_opt_out(admin_api, program, rule):
    rule.opt_out_cutoff_minutes = 60
    rule.save()
    a = participant(program)
    scheduled_event(program, start=la(2026, 7, 16, 15))
    count_queries(admin_api, "/api/v1/participations/")  # warm-up: see the ledger test
    one, _ = count_queries(admin_api, "/api/v1/participations/")
    b = participant(program)
    event = scheduled_event(program)
    many, data = count_queries(admin_api, "/api/v1/participations/")
    assert data["count"] == 3 and one == many
    pa = Participation.objects.get(subscription=a, event=event)
    r = admin_api.post(f"/api/v1/participations/{pa.pk}/opt-out/", {"channel": "portal", "reason": "hot"},
                       format="json")
    assert r.status_code == 201, r.content
    assert (r.json()["status"], r.json()["opt_out"]["channel"]) == ("opted_out", "portal")
    pb = Participation.objects.get(subscription=b, event=event)
    r = admin_api.post(f"/api/v1/participations/{pb.pk}/opt-out/", {"at": "2026-07-15T14:30:00-07:00"},
                       format="json")
    assert r.status_code == 409 and r.json()["code"] == "opt_out_cutoff"


def test_aggregator_polls_back_to_back_events_and_reports_outcomes(api_client, django_user_model, program):
    user = django_user_model.objects.create_user("ecobee-api", password="pw-agg-123456")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))  # reporting outcomes needs its capability
    agg = AggregatorFactory(code="ecobee", api_user=user)
    other = AggregatorFactory(code="nest", api_user=django_user_model.objects.create_user("nest-api"))
    participant(program, aggregator=agg, aggregator_device_id="e-1")
    participant(program, aggregator=other, aggregator_device_id="n-1")
    first = scheduled_event(program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 16))
    second = scheduled_event(program, start=la(2026, 7, 15, 16), end=la(2026, 7, 15, 17))
    for e in (first, second):
        services.event_dispatch(event=e, now=JULY_NOW, actor=TEST_ACTOR)
    api_client.force_authenticate(user)
    one, data = count_queries(api_client, "/api/v1/aggregator/events/")
    assert [(e["id"], [d["device"] for d in e["devices"]]) for e in data["results"]] == [
        (first.pk, ["e-1"]), (second.pk, ["e-1"])]
    services.event_activate(event=first, now=JULY_NOW, actor=TEST_ACTOR)
    participant(program, aggregator=agg, aggregator_device_id="e-2")
    third = scheduled_event(program, start=la(2026, 7, 16, 15))
    services.event_dispatch(event=third, now=JULY_NOW, actor=TEST_ACTOR)
    many, data = count_queries(api_client, "/api/v1/aggregator/events/")
    assert [e["status"] for e in data["results"]] == ["active", "dispatched", "dispatched"]
    assert one == many
    rows = [{"event": first.pk, "device": "e-1", "revision": 1, "status": "participated"},
            {"event": first.pk, "device": "n-1", "revision": 1, "status": "participated"}]
    r = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": rows}, format="json")
    assert r.status_code == 200
    assert [x["result"] for x in r.json()["results"]] == ["recorded", "error"]  # n-1 belongs to nest
    r = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": rows[:1]}, format="json")
    assert r.json()["results"][0]["result"] == "unchanged"
    assert Participation.objects.get(event=first, device__aggregator=agg).status == ParticipationStatus.PARTICIPATED
    bad = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": [{**rows[0], "status": "great"}]},
                          format="json")
    assert bad.status_code == 400
    api_client.force_authenticate(django_user_model.objects.create_user("plain"))
    assert api_client.get("/api/v1/aggregator/events/").status_code == 403


def test_aggregator_polling_lists_scheduled_back_to_back_events_with_window_target_and_devices(
        api_client, django_user_model, program):
    """SCHEDULED events (reserved participations) are listed as well as dispatched and active ones, all of them,
    with revision, window, direction, target and the aggregator's own device ids; cancelled events and released
    participations are not."""
    user = django_user_model.objects.create_user("ecobee-api")
    agg = AggregatorFactory(code="ecobee", api_user=user)
    other = AggregatorFactory(code="nest")
    participant(program, aggregator=agg, aggregator_device_id="e-1", capacity_kw="2.5")
    participant(program, aggregator=agg, aggregator_device_id="e-2", capacity_kw="1.5")
    participant(program, aggregator=other, aggregator_device_id="n-1")
    first = scheduled_event(program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 16))
    second = scheduled_event(program, start=la(2026, 7, 15, 16), end=la(2026, 7, 15, 17),
                             direction="increase")
    gone = scheduled_event(program, start=la(2026, 7, 16, 15))
    services.event_cancel(event=gone, reason="forecast cooler", now=JULY_NOW, actor=TEST_ACTOR)
    nest_only = AggregatorFactory(code="lonely", api_user=django_user_model.objects.create_user("lonely-api"))
    api_client.force_authenticate(user)
    n_two, data = count_queries(api_client, "/api/v1/aggregator/events/")
    rows = data["results"]
    assert [(e["id"], e["status"], e["revision"], e["direction"], e["device_ids"]) for e in rows] == [
        (first.pk, "scheduled", 1, "reduce", ["e-1", "e-2"]),
        (second.pk, "scheduled", 1, "increase", ["e-1", "e-2"])]
    assert (rows[0]["start"], rows[0]["end"]) == ("2026-07-15T22:00:00Z", "2026-07-15T23:00:00Z")
    assert (rows[1]["start_local"], rows[1]["end_local"], rows[1]["time_zone"]) == (
        "2026-07-15T16:00:00-07:00", "2026-07-15T17:00:00-07:00", "America/Los_Angeles")
    assert rows[0]["target_kw"] is None
    assert [(d["device"], d["status"], d["capacity_kw"]) for d in rows[0]["devices"]] == [
        ("e-1", "reserved", "2.500"), ("e-2", "reserved", "1.500")]
    # One more event, dispatched, with a target: same number of queries, three events listed.
    third = scheduled_event(program, start=la(2026, 7, 17, 15), target_kw="3")
    services.event_dispatch(event=third, now=JULY_NOW, actor=TEST_ACTOR)
    n_three, data = count_queries(api_client, "/api/v1/aggregator/events/")
    assert [(e["id"], e["status"], e["target_kw"]) for e in data["results"]] == [
        (first.pk, "scheduled", None), (second.pk, "scheduled", None), (third.pk, "dispatched", "3.000")]
    assert n_two == n_three
    api_client.force_authenticate(nest_only.api_user)
    assert api_client.get("/api/v1/aggregator/events/").json()["results"] == []


def test_unavailability_create_and_list(admin_api, program):
    sub = participant(program)
    body = {"enrollment": sub.enrollment_id, "device": sub.device_id, "start": "2026-07-15T00:00:00-07:00",
            "end": "2026-07-16T00:00:00-07:00", "reason": "Away"}
    r = admin_api.post("/api/v1/unavailabilities/", body, format="json")
    assert r.status_code == 201, r.content
    bad = admin_api.post("/api/v1/unavailabilities/", {**body, "end": "2026-07-14T00:00:00-07:00"}, format="json")
    assert bad.status_code == 400 and "end" in bad.json()
    listed = admin_api.get(f"/api/v1/unavailabilities/?enrollment={sub.enrollment_id}").json()
    assert [x["reason"] for x in listed["results"]] == ["Away"]
    event = scheduled_event(program)
    assert Reservation.objects.get(event=event).decision == "unavailable"


def test_plain_user_without_permissions_is_refused(api_client, django_user_model, program):
    api_client.force_authenticate(django_user_model.objects.create_user("nobody"))
    assert api_client.get("/api/v1/events/").status_code == 403
    assert Event.objects.count() == 0
    assert EventStatus.DRAFT == "draft"


def test_an_unknown_target_device_type_is_refused_naming_the_field(admin_api, program):
    """QA: ``target_device_types: ["bogus"]`` was accepted (201) and the event then targeted no device at all; an
    unknown device type is now refused (400) naming the field and the allowed values, nothing created or changed."""
    body = {"program": "smart-ac", "name": "Heat", "start": "2026-07-15T15:00:00", "end": "2026-07-15T18:00:00",
            "target_device_types": ["thermostat", "bogus"]}
    r = admin_api.post("/api/v1/events/", body, format="json")
    assert r.status_code == 400, r.content
    assert "'bogus'" in r.json()["target_device_types"][0] and "thermostat" in r.json()["target_device_types"][0]
    assert not Event.objects.exists()
    event = EventFactory(program=program)
    r = admin_api.patch(f"/api/v1/events/{event.pk}/", {"target_device_types": ["bogus"]}, format="json")
    assert r.status_code == 400 and "target_device_types" in r.json()
    event.refresh_from_db()
    assert event.target_device_types == []


def test_unavailability_refusals_keep_the_api_field_names(admin_api, program):
    sub = participant(program)
    body = {"enrollment": sub.enrollment_id, "start": "2030-07-15T00:00:00-07:00", "end": "2030-07-14T00:00:00-07:00"}
    r = admin_api.post("/api/v1/unavailabilities/", body, format="json")
    assert r.status_code == 400 and r.json()["end"] == ["end must be after start."]
    r = admin_api.post("/api/v1/unavailabilities/", {**body, "start": "2020-07-13T00:00:00-07:00",
                                                     "end": "2020-07-14T00:00:00-07:00"}, format="json")
    assert r.status_code == 400 and r.json()["end"] == ["The period is already over: end must be later than now."]


def test_an_aggregator_lists_and_reads_only_the_events_of_its_own_devices(api_client, django_user_model, program):
    """QA: an aggregator's API client listed every event of every program on ``/api/v1/events/`` (events of another
    aggregator's devices, peak-time rebates without devices) with reservation counts and target devices of other
    aggregators. It now sees only the events its own devices were considered for (ledger or participation), their
    counts and target devices its own, in the same number of queries; another aggregator's event is a 404."""
    from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory

    user = django_user_model.objects.create_user("ecobee-api")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    agg = AggregatorFactory(code="ecobee", api_user=user)
    other = AggregatorFactory(code="nest")
    mine = participant(program, aggregator=agg, aggregator_device_id="e-1")
    theirs = participant(program, aggregator=other, aggregator_device_id="n-1")
    shared = scheduled_event(program)
    targeted = EventFactory(program=program, start=la(2026, 7, 16, 15), end=la(2026, 7, 16, 17))
    targeted.target_devices.set([mine.device, theirs.device])
    services.event_schedule(event=targeted, now=JULY_NOW, actor=TEST_ACTOR)
    services.event_reserve(event=targeted, now=JULY_NOW, actor=TEST_ACTOR)
    nest_program = ProgramFactory(code="nest-only")
    SeasonFactory(program=nest_program)
    ParticipationRuleFactory(program=nest_program)
    participant(nest_program, aggregator=other, aggregator_device_id="n-2")
    foreign = scheduled_event(nest_program, start=la(2026, 7, 17, 15))
    EventFactory(program=program, start=la(2026, 7, 20, 15))  # a draft: nobody's devices considered yet

    api_client.force_authenticate(user)
    count_queries(api_client, "/api/v1/events/")  # warm-up: the user's permissions and aggregator are cached
    n_two, data = count_queries(api_client, "/api/v1/events/")
    assert data["count"] == 2
    assert [(e["id"], e["reservation_counts"], e["target_devices"]) for e in data["results"]] == [
        (targeted.pk, {"reserved": 1}, [mine.device_id]), (shared.pk, {"reserved": 1}, [])]
    assert api_client.get(f"/api/v1/events/{foreign.pk}/").status_code == 404
    assert api_client.get(f"/api/v1/events/{shared.pk}/").json()["reservation_counts"] == {"reserved": 1}
    participant(program, aggregator=agg, aggregator_device_id="e-2")
    scheduled_event(program, start=la(2026, 7, 21, 15))
    n_three, data = count_queries(api_client, "/api/v1/events/")
    assert data["count"] == 3 and n_three == n_two
    # Staff still see every event with every device's counts.
    staff = django_user_model.objects.create_user("auditor")
    staff.groups.add(Group.objects.get(name=roles.AUDITOR))
    api_client.force_authenticate(staff)
    data = api_client.get("/api/v1/events/").json()
    assert data["count"] == 5
    assert {e["id"]: e["reservation_counts"] for e in data["results"]}[shared.pk] == {"reserved": 2}


def test_a_portal_lists_one_customers_participations_and_enrollments(admin_api, program):
    """QA: a customer portal had no way to ask for one customer's events and enrollments: participations filtered
    by event, device, enrollment or service point only, enrollments by account only. Participations now filter by
    ``account`` (account number) and ``customer`` (CIS person id), enrollments by ``customer``, in constant
    queries."""
    mine = participant(program)
    other = participant(program)
    scheduled_event(program)
    account = mine.enrollment.account
    count_queries(admin_api, "/api/v1/participations/")  # warm-up
    n_one, data = count_queries(admin_api, f"/api/v1/participations/?account={account.account_number}")
    assert [p["enrollment"] for p in data["results"]] == [mine.enrollment_id]
    scheduled_event(program, start=la(2026, 7, 16, 15))
    n_two, data = count_queries(admin_api, f"/api/v1/participations/?customer={account.customer.cis_person_id}")
    assert [p["enrollment"] for p in data["results"]] == [mine.enrollment_id, mine.enrollment_id]
    assert n_one == n_two
    data = admin_api.get(f"/api/v1/enrollments/?customer={account.customer.cis_person_id}").json()
    assert [e["id"] for e in data["results"]] == [mine.enrollment_id]
    assert admin_api.get("/api/v1/participations/?account=NOBODY").json()["count"] == 0
    assert other.enrollment_id != mine.enrollment_id
