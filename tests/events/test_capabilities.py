"""Capabilities on the events write path: every write service refuses an actor without its capability and changes
nothing; bulk participation changes are audited per participation; the admin offers actions only to roles holding
them; the webhook retry is a guarded, audited service; an aggregator acts only on its own devices."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.base.capabilities import USE_CASES
from cpm.base.errors import NotFound, PermissionDenied, TransitionNotAllowed
from cpm.models import AuditEntry
from events import services
from events.choices import DeliveryStatus, EventStatus, OptOutChannel, ParticipationStatus
from events.models import DispatchMessage, Event, EventRevision, OptOut, Participation, Reservation, Unavailability
from events.services import dispatch
from tests.actors import TEST_ACTOR
from tests.events.helpers import role_user
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, la

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)
DISPATCH_AT = la(2026, 7, 15, 13)


def participant(program, **device):
    return active_participant(program=program, device_kwargs={"last_seen_at": NOW, **device})


def scheduled(program, start, hours=3):
    event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=hours))
    services.event_schedule(event=event, now=NOW, actor=TEST_ACTOR)
    services.event_reserve(event=event, now=NOW, actor=TEST_ACTOR)
    event.refresh_from_db()
    return event


@pytest.fixture
def world(program):
    """A dispatched event (three devices of an aggregator with a webhook, one pending message), a scheduled one,
    a draft one."""
    agg = AggregatorFactory(code="ecobee", webhook_url="https://agg.example.com/dr")
    subs = [participant(program, aggregator=agg, aggregator_device_id=f"e-{i}") for i in range(3)]
    dispatched = scheduled(program, la(2026, 7, 15, 15))
    services.event_dispatch(event=dispatched, now=DISPATCH_AT, actor=TEST_ACTOR)
    dispatched.refresh_from_db()
    return {
        "program": program, "aggregator": agg, "subs": subs, "dispatched": dispatched,
        "scheduled": scheduled(program, la(2026, 7, 16, 15)),
        "draft": EventFactory(program=program, start=la(2026, 7, 17, 15), end=la(2026, 7, 17, 16)),
        "message": DispatchMessage.objects.get(event=dispatched),
        "participation": Participation.objects.filter(event=dispatched).order_by("pk").first(),
    }


# Every events write service with the arguments of a call that would succeed for an allowed actor.
CALLS = {
    "event.create": lambda w: (services.event_create, dict(
        program=w["program"], name="Heat", start=la(2026, 7, 20, 15), end=la(2026, 7, 20, 16), now=NOW)),
    "event.update": lambda w: (services.event_update, dict(event=w["draft"], changes={"name": "Renamed"}, now=NOW)),
    "event.schedule": lambda w: (services.event_schedule, dict(event=w["draft"], now=NOW)),
    "event.reserve": lambda w: (services.event_reserve, dict(event=w["scheduled"], now=NOW)),
    "event.dispatch": lambda w: (services.event_dispatch, dict(event=w["scheduled"], now=DISPATCH_AT)),
    "event.activate": lambda w: (services.event_activate, dict(event=w["dispatched"], now=la(2026, 7, 15, 15))),
    "event.complete": lambda w: (services.event_complete, dict(event=w["dispatched"], now=la(2026, 7, 15, 18))),
    "event.cancel": lambda w: (services.event_cancel, dict(event=w["dispatched"], reason="cooler", now=NOW)),
    "events.tick": lambda w: (services.events_tick, dict(now=la(2026, 7, 16, 18))),
    "dispatch_message.deliver": lambda w: (services.dispatch_message_deliver, dict(message=w["message"], now=NOW)),
    "dispatch_message.retry": lambda w: (services.dispatch_message_retry, dict(message=w["message"], now=NOW)),
    "participation.opt_out": lambda w: (services.participation_opt_out, dict(
        participation=w["participation"], channel=OptOutChannel.CSR, now=NOW)),
    "participation.report_outcomes": lambda w: (services.participation_outcomes_report, dict(
        aggregator=w["aggregator"], now=la(2026, 7, 15, 19), outcomes=[
            {"event": w["dispatched"].pk, "device": "e-0", "revision": 1, "status": "participated"}])),
    "unavailability.create": lambda w: (services.unavailability_create, dict(
        enrollment=w["subs"][0].enrollment, start=la(2026, 7, 18), end=la(2026, 7, 19), now=NOW)),
}
# The steps of a chunked reservation check the event.reserve capability themselves.
STEPS = {
    "event_reservation_start": lambda w: (services.event_reservation_start, dict(
        event=w["scheduled"], now=NOW, chunk_size=2)),
    "event_reservation_finish": lambda w: (services.event_reservation_finish, dict(
        event_id=w["scheduled"].pk, counts=[{"reserved": 3}], now=NOW)),
}


def state():
    """Everything an events write could change."""
    return {
        "counts": [m.objects.count() for m in (Event, Participation, Reservation, OptOut, Unavailability,
                                                DispatchMessage, EventRevision, AuditEntry)],
        "events": sorted(Event.objects.values_list("pk", "status", "name", "revision", "reserved_at")),
        "participations": sorted(Participation.objects.values_list("pk", "status", "start", "end")),
        "messages": sorted(DispatchMessage.objects.values_list("pk", "delivery_status", "attempts")),
    }


def test_every_events_use_case_is_covered_here():
    registered = {name for name, uc in USE_CASES.items() if uc.service.startswith("events.")}
    assert registered == set(CALLS)


@pytest.mark.parametrize("name", [*CALLS, *STEPS])
@pytest.mark.parametrize("who", ["none", "string", roles.AUDITOR, roles.SETTLEMENT_ANALYST, roles.BILLING_INTEGRATION])
def test_write_services_refuse_an_actor_without_the_capability(world, name, who):
    service, kwargs = {**CALLS, **STEPS}[name](world)
    actor = None if who == "none" else "events.tick" if who == "string" else role_user(who)
    before = state()
    with pytest.raises(PermissionDenied):
        service(**kwargs, actor=actor)
    assert state() == before


@pytest.mark.parametrize("name", [n for n in CALLS if n.startswith(("event", "dispatch_message"))])
def test_a_csr_may_not_manage_events(world, name):
    service, kwargs = CALLS[name](world)
    before = state()
    with pytest.raises(PermissionDenied, match="Create, schedule, reserve, dispatch and cancel events"):
        service(**kwargs, actor=role_user(roles.CSR))
    assert state() == before


def test_cancel_audits_each_released_participation_with_actor_and_reason(world):
    event = world["dispatched"]
    opted = world["participation"]
    services.participation_opt_out(participation=opted, channel=OptOutChannel.CSR, now=NOW, actor=TEST_ACTOR)
    admin = role_user(roles.PROGRAM_ADMIN, "pa-1")
    before = dict(Participation.objects.filter(event=event).values_list("pk", "status"))
    assert len(before) == 3
    services.event_cancel(event=event, reason="CAISO withdrew the Flex Alert", now=NOW, actor=admin)
    entries = AuditEntry.objects.filter(object_type="events.participation", code="participation.cancelled")
    assert sorted((int(e.object_id), e.from_status, e.to_status, e.actor_id, e.actor_label, e.reason)
                  for e in entries) == sorted(
        (pk, status, ParticipationStatus.CANCELLED, admin.pk, "pa-1", "CAISO withdrew the Flex Alert")
        for pk, status in before.items())
    assert {e.at for e in entries} == {NOW}
    event_entry = AuditEntry.objects.get(object_type="events.event", object_id=str(event.pk), code="event.cancelled")
    assert (event_entry.actor_id, event_entry.reason, event_entry.from_status) == (
        admin.pk, "CAISO withdrew the Flex Alert", EventStatus.DISPATCHED)
    assert set(Participation.objects.filter(event=event).values_list("status", flat=True)) == {
        ParticipationStatus.CANCELLED}


def test_dispatch_audits_each_dispatched_participation(world):
    event = world["scheduled"]
    reserved = set(Participation.objects.filter(event=event).values_list("pk", flat=True))
    services.event_dispatch(event=event, now=DISPATCH_AT, actor=TEST_ACTOR)
    entries = AuditEntry.objects.filter(object_type="events.participation", code="participation.dispatched",
                                        object_id__in=[str(pk) for pk in reserved])
    assert {(int(e.object_id), e.from_status, e.actor_label) for e in entries} == {
        (pk, ParticipationStatus.RESERVED, "system:tests") for pk in reserved}


def test_reservation_audits_once_per_event_with_counts(world):
    """The ledger is the audit of each decision: one audit entry per run, none per participation."""
    event = world["scheduled"]
    participations_audited = AuditEntry.objects.filter(object_type="events.participation").count()
    services.event_reserve(event=event, now=NOW, actor=TEST_ACTOR)
    runs = AuditEntry.objects.filter(object_type="events.event", object_id=str(event.pk), reason="reservation")
    assert [e.changes["reservation_counts"] for e in runs] == [{"reserved": 3}, {"reserved": 3}]
    assert AuditEntry.objects.filter(object_type="events.participation").count() == participations_audited


# --------------------------------------------------------------------------------------------------------- admin
def admin_client(client, role, username=None):
    client.force_login(role_user(role, username))
    return client


@pytest.mark.parametrize("role", [roles.CSR, roles.AUDITOR, roles.SETTLEMENT_ANALYST])
def test_admin_offers_no_event_actions_to_roles_without_the_capability(client, world, role):
    c = admin_client(client, role)
    page = c.get("/admin/events/event/")
    assert page.status_code == 200
    html = page.content.decode()
    for action in ("schedule", "reserve_again", "dispatch_now", "cancel"):
        assert f'value="{action}"' not in html
    assert "/admin/events/event/add/" not in html
    before = state()
    for action, extra in (("cancel", {"apply": "yes", "reason": "cooler"}), ("schedule", {}),
                          ("dispatch_now", {})):
        c.post("/admin/events/event/", {"action": action, "_selected_action": [world["dispatched"].pk,
                                                                                world["scheduled"].pk,
                                                                                world["draft"].pk], **extra})
    assert c.get("/admin/events/event/add/").status_code == 403
    assert state() == before


def test_admin_program_administrator_cancels_with_the_reason(client, world):
    c = admin_client(client, roles.PROGRAM_ADMIN, "pa-1")
    html = c.get("/admin/events/event/").content.decode()
    assert 'value="cancel"' in html and 'value="schedule"' in html
    r = c.post("/admin/events/event/", {"action": "cancel", "_selected_action": [world["dispatched"].pk],
                                        "apply": "yes", "reason": "cooler"}, follow=True)
    assert "Cancelled: 1." in r.content.decode()
    event = Event.objects.get(pk=world["dispatched"].pk)
    assert (event.status, event.cancel_reason) == (EventStatus.CANCELLED, "cooler")
    assert AuditEntry.objects.filter(code="participation.cancelled", actor_label="pa-1", reason="cooler").count() == 3


def test_admin_event_add_goes_through_the_service(client, world):
    c = admin_client(client, roles.PROGRAM_ADMIN, "pa-1")
    device = world["subs"][0].device
    r = c.post("/admin/events/event/add/", {
        "program": world["program"].pk, "name": "Admin heat", "category": "economic", "direction": "reduce",
        "start_0": "2026-07-21", "start_1": "22:00:00", "end_0": "2026-07-21", "end_1": "23:00:00",
        "notification_at_0": "2026-07-21", "notification_at_1": "20:00:00",
        # targeting lists are ticked values (issue 17): none ticked = every device
        "target_devices": str(device.pk), "target_kw": "",
        "revisions-TOTAL_FORMS": "0", "revisions-INITIAL_FORMS": "0"})
    assert r.status_code == 302, r.content.decode()[:3000]
    event = Event.objects.get(name="Admin heat")
    assert list(event.target_devices.values_list("pk", flat=True)) == [device.pk]
    created = AuditEntry.objects.get(object_type="events.event", object_id=str(event.pk), code="event.created")
    assert (created.actor_label, created.changes["target_devices"]) == ("pa-1", [device.pk])


@pytest.mark.parametrize("model", ["reservation", "participation", "optout", "eventrevision", "dispatchmessage"])
def test_ledger_and_messages_are_read_only_in_the_admin(client, world, model):
    c = admin_client(client, roles.PROGRAM_ADMIN)
    assert c.get(f"/admin/events/{model}/").status_code == 200
    assert c.get(f"/admin/events/{model}/add/").status_code == 403


def test_admin_unavailability_is_added_through_the_service(client, world):
    sub = world["subs"][1]
    auditor = admin_client(client, roles.AUDITOR)
    assert auditor.get("/admin/events/unavailability/add/").status_code == 403
    c = admin_client(client, roles.CSR, "csr-1")
    with time_machine.travel(NOW, tick=False):
        r = c.post("/admin/events/unavailability/add/", {
            "enrollment": sub.enrollment_id, "device": sub.device_id, "start_0": "2026-07-18",
            "start_1": "00:00:00", "end_0": "2026-07-19", "end_1": "00:00:00", "reason": "Away"})
    assert r.status_code == 302, r.content.decode()[:3000]
    item = Unavailability.objects.get()
    entry = AuditEntry.objects.get(object_type="events.unavailability", object_id=str(item.pk))
    assert (entry.code, entry.actor_label, entry.reason) == ("unavailability.created", "csr-1", "Away")
    assert c.get(f"/admin/events/unavailability/{item.pk}/delete/").status_code == 403


# ------------------------------------------------------------------------------------------------- webhook retry
def test_dispatch_message_retry_is_audited_and_delivers(world, monkeypatch, django_capture_on_commit_callbacks):
    message = world["message"]
    DispatchMessage.objects.filter(pk=message.pk).update(delivery_status=DeliveryStatus.FAILED, attempts=5,
                                                         last_error="connection refused")
    monkeypatch.setattr(dispatch, "deliver_http", lambda url, body, headers, timeout: 200)
    admin = role_user(roles.PROGRAM_ADMIN, "pa-1")
    with django_capture_on_commit_callbacks(execute=True):
        services.dispatch_message_retry(message=message, now=NOW, actor=admin, reason="webhook fixed")
    entry = AuditEntry.objects.get(object_type="events.dispatchmessage", code="dispatch_message.retried")
    assert (entry.actor_id, entry.from_status, entry.to_status, entry.reason) == (
        admin.pk, DeliveryStatus.FAILED, DeliveryStatus.PENDING, "webhook fixed")
    assert entry.changes["before"] == {"delivery_status": "failed", "attempts": 5, "last_error": "connection refused"}
    message.refresh_from_db()
    assert (message.delivery_status, message.attempts, message.last_error) == (DeliveryStatus.DELIVERED, 1, "")
    delivered = AuditEntry.objects.get(object_type="events.dispatchmessage", code="dispatch_message.delivered")
    assert delivered.actor_label == "system:celery:events.deliver_dispatch_message"


def test_dispatch_message_retry_refused_for_a_csr(client, world):
    message = world["message"]
    DispatchMessage.objects.filter(pk=message.pk).update(delivery_status=DeliveryStatus.FAILED, attempts=5)
    before = state()
    with pytest.raises(PermissionDenied):
        services.dispatch_message_retry(message=message, now=NOW, actor=role_user(roles.CSR))
    c = admin_client(client, roles.CSR, "csr-2")
    assert 'value="retry_delivery"' not in c.get("/admin/events/dispatchmessage/").content.decode()
    c.post("/admin/events/dispatchmessage/", {"action": "retry_delivery", "_selected_action": [message.pk]})
    assert state() == before


def test_admin_retry_action_for_a_program_administrator(client, world, django_capture_on_commit_callbacks,
                                                        monkeypatch):
    message = world["message"]
    DispatchMessage.objects.filter(pk=message.pk).update(delivery_status=DeliveryStatus.FAILED, attempts=5)
    monkeypatch.setattr(dispatch, "deliver_http", lambda url, body, headers, timeout: 200)
    c = admin_client(client, roles.PROGRAM_ADMIN, "pa-1")
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post("/admin/events/dispatchmessage/", {"action": "retry_delivery", "_selected_action": [message.pk]},
                   follow=True)
    assert "Queued: 1." in r.content.decode()
    message.refresh_from_db()
    assert (message.delivery_status, message.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert AuditEntry.objects.filter(code="dispatch_message.retried", actor_label="pa-1").count() == 1


# ------------------------------------------------------------------------------------------- aggregator scope
def aggregator_user(aggregator, username):
    user = role_user(roles.AGGREGATOR, username, is_staff=False)
    aggregator.api_user = user
    aggregator.save(update_fields=["api_user"])
    return user


def test_an_aggregator_opts_out_only_its_own_devices(world, program):
    other = AggregatorFactory(code="nest")
    theirs = participant(program, aggregator=other, aggregator_device_id="n-1")
    services.event_reserve(event=world["scheduled"], now=NOW, actor=TEST_ACTOR)
    foreign = Participation.objects.get(event=world["scheduled"], subscription=theirs)
    mine = Participation.objects.filter(event=world["scheduled"], device__aggregator=world["aggregator"]).first()
    user = aggregator_user(world["aggregator"], "ecobee-api")
    before = state()
    with pytest.raises(NotFound):
        services.participation_opt_out(participation=foreign, channel=OptOutChannel.AGGREGATOR_API, now=NOW,
                                       actor=user)
    assert state() == before
    with pytest.raises(PermissionDenied):
        services.participation_outcomes_report(aggregator=other, now=NOW, actor=user, outcomes=[
            {"event": world["scheduled"].pk, "device": "n-1", "revision": 1, "status": "participated"}])
    assert state() == before
    opt_out = services.participation_opt_out(participation=mine, channel=OptOutChannel.AGGREGATOR_API, now=NOW,
                                             actor=user)
    assert (opt_out.recorded_by, opt_out.participation.status) == (user, ParticipationStatus.OPTED_OUT)


def test_api_opt_out_of_another_aggregators_device_is_not_found(api_client, world, program):
    other = AggregatorFactory(code="nest")
    theirs = participant(program, aggregator=other, aggregator_device_id="n-1")
    services.event_reserve(event=world["scheduled"], now=NOW, actor=TEST_ACTOR)
    foreign = Participation.objects.get(event=world["scheduled"], subscription=theirs)
    api_client.force_authenticate(aggregator_user(world["aggregator"], "ecobee-api"))
    r = api_client.post(f"/api/v1/participations/{foreign.pk}/opt-out/", {"channel": "aggregator_api"},
                        format="json")
    assert r.status_code == 404
    assert not OptOut.objects.exists()


def test_roles_groups_exist():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)


# ------------------------------------------------------------------------------------- one change, one audit entry
# Cancelling or dispatching an event writes exactly one entry for the event (who, when, from, to, why) carrying what
# the change did to its participations, beside one entry per participation moved. Both wrote two entries for the
# event (``event.cancelled`` / ``event.dispatched`` and an ``event.updated`` with the counts, same actor and reason):
# the History page listed one change twice and a lookup of the entry of a cancellation found two.


def _event_entries(event):
    return list(AuditEntry.objects.filter(object_type="events.event", object_id=str(event.pk)).order_by("pk"))


def test_cancel_writes_one_entry_for_the_event_with_the_participations_it_cancelled(world):
    event = world["dispatched"]
    before = len(_event_entries(event))
    admin = role_user(roles.PROGRAM_ADMIN, "pa-once")
    services.event_cancel(event=event, reason="CAISO withdrew the Flex Alert", now=NOW, actor=admin)

    new = _event_entries(event)[before:]
    assert len(new) == 1, [(e.code, e.reason, e.changes) for e in new]
    entry = new[0]
    assert (entry.code, entry.from_status, entry.to_status, entry.actor_id, entry.reason, entry.at) == (
        "event.cancelled", EventStatus.DISPATCHED, EventStatus.CANCELLED, admin.pk, "CAISO withdrew the Flex Alert",
        NOW)
    assert entry.changes == {"participations_cancelled": 3}
    assert AuditEntry.objects.get(object_type="events.event", object_id=str(event.pk), actor=admin,
                                  reason="CAISO withdrew the Flex Alert") == entry
    assert AuditEntry.objects.filter(object_type="events.participation", code="participation.cancelled",
                                     actor=admin).count() == 3


def test_dispatch_writes_one_entry_for_the_event_with_the_participations_it_dispatched(world):
    event = world["scheduled"]
    before = len(_event_entries(event))
    services.event_dispatch(event=event, now=DISPATCH_AT, actor=TEST_ACTOR)

    new = _event_entries(event)[before:]
    assert len(new) == 1, [(e.code, e.reason, e.changes) for e in new]
    entry = new[0]
    assert (entry.code, entry.from_status, entry.to_status, entry.actor_label, entry.at) == (
        "event.dispatched", EventStatus.SCHEDULED, EventStatus.DISPATCHED, "system:tests", DISPATCH_AT)
    assert entry.changes == {"participations_dispatched": 3, "participations_released": 0}
    assert set(Participation.objects.filter(event=event).values_list("status", flat=True)) == {
        ParticipationStatus.DISPATCHED}


def test_a_refused_cancel_changes_nothing(world):
    event = world["dispatched"]
    services.event_activate(event=event, now=la(2026, 7, 15, 15), actor=TEST_ACTOR)
    services.event_complete(event=event, now=la(2026, 7, 15, 18), actor=TEST_ACTOR)
    before = (AuditEntry.objects.count(), sorted(Participation.objects.filter(event=event).values_list("pk", "status")))
    with pytest.raises(TransitionNotAllowed, match="cannot go from completed to cancelled"):
        services.event_cancel(event=event, reason="too late", now=NOW, actor=TEST_ACTOR)
    assert (AuditEntry.objects.count(),
            sorted(Participation.objects.filter(event=event).values_list("pk", "status"))) == before
