"""Event services: scheduling under the rules, overrides, DST and cross-midnight events, revisions, cancellation,
the tick and settlement hand-off, opt-outs, dispatch messages and webhook delivery, aggregator outcomes."""

import datetime as dt
import json
import urllib.error
from decimal import Decimal

import pytest

from cpm.base import roles
from cpm.base.errors import ConflictError, DomainValidationError, TransitionNotAllowed
from cpm.models import AuditEntry
from events import services
from events.api.serializers import EventSerializer
from events.choices import (
    DeliveryStatus,
    DispatchKind,
    EventCategory,
    EventStatus,
    OptOutChannel,
    ParticipationStatus,
)
from events.choices import ReservationDecision as D
from events.models import DispatchMessage, Event, EventRevision, OptOut, Participation, Reservation
from events.services import dispatch
from events.signals import event_completed
from programs.choices import ProgramStatus, SettlementTiming
from tests.actors import TEST_ACTOR
from tests.events.helpers import role_user
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.events import UnavailabilityFactory, la

pytestmark = pytest.mark.django_db


def participant(program, now, **device):
    return active_participant(program=program, device_kwargs={"last_seen_at": now, **device})


def create(program, now, start, end, **kw):
    if kw.get("notification_at") is None:
        kw["notification_at"] = start - dt.timedelta(hours=2)
    return services.event_create(program=program, name="Heat wave", start=start, end=end, now=now,
                                  **{"actor": TEST_ACTOR, **kw})


def scheduled(program, now, start=None, end=None, **kw):
    event = create(program, now, start or la(2026, 7, 15, 15), end or la(2026, 7, 15, 18), **kw)
    services.event_schedule(event=event, now=now, actor=TEST_ACTOR)
    services.event_reserve(event=event, now=now,
                           actor=TEST_ACTOR)  # the task runs after commit, which tests do not reach
    event.refresh_from_db()
    return event


def test_schedule_refuses_each_rule_by_name(program, rule, july_now):
    rule.min_notice_minutes = 120
    rule.save()
    cases = {
        "weekends_allowed": (la(2026, 7, 18, 15), la(2026, 7, 18, 16), None),
        "holidays_allowed": (la(2026, 9, 7, 15), la(2026, 9, 7, 16), None),
        "window_start": (la(2026, 7, 15, 12), la(2026, 7, 15, 13), None),
        "max_duration_minutes": (la(2026, 7, 15, 15), la(2026, 7, 15, 20), None),
        "min_notice_minutes": (la(2026, 7, 15, 15), la(2026, 7, 15, 16), la(2026, 7, 15, 14, 30)),
        "season": (la(2026, 10, 14, 15), la(2026, 10, 14, 16), None),
    }
    for name, (start, end, notice) in cases.items():
        event = create(program, july_now, start, end, notification_at=notice)
        with pytest.raises(DomainValidationError) as exc:
            services.event_schedule(event=event, now=july_now, actor=TEST_ACTOR)
        assert name in exc.value.errors, (name, exc.value.errors)
        event.refresh_from_db()
        assert event.status == EventStatus.DRAFT


def test_schedule_needs_an_active_program(program, july_now):
    event = create(program, july_now, la(2026, 7, 15, 15), la(2026, 7, 15, 16))
    program.status = ProgramStatus.SUSPENDED
    program.save()
    with pytest.raises(ConflictError, match="smart-ac is suspended"):
        services.event_schedule(event=event, now=july_now, actor=TEST_ACTOR)


def test_emergency_override_is_audited_and_only_for_emergencies(program, july_now):
    sub = participant(program, july_now)
    saturday = (la(2026, 7, 18, 10), la(2026, 7, 18, 12))
    economic = create(program, july_now, *saturday)
    with pytest.raises(DomainValidationError) as exc:
        services.event_schedule(event=economic, now=july_now, override_rules=True, override_reason="grid",
                                actor=TEST_ACTOR)
    assert "override_rules" in exc.value.errors
    event = create(program, july_now, *saturday, category=EventCategory.EMERGENCY)
    with pytest.raises(DomainValidationError):
        services.event_schedule(event=event, now=july_now, override_rules=True, actor=TEST_ACTOR)
    services.event_schedule(event=event, now=july_now, override_rules=True, override_reason="CAISO EEA 2",
                            actor=role_user(roles.PROGRAM_ADMIN, "pa-1"))
    event.refresh_from_db()
    assert (event.status, event.overrides_rules, event.override_reason) == (EventStatus.SCHEDULED, True,
                                                                            "CAISO EEA 2")
    entry = AuditEntry.objects.get(action="override", object_id=str(event.pk))
    assert entry.actor_label == "pa-1"
    assert entry.changes["violations"][0].startswith("weekends_allowed")
    services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
    assert Reservation.objects.get(event=event).subscription_id == sub.pk


def test_dst_nights_durations_and_local_wall_times(program, rule, july_now):
    rule.window_start = rule.window_end = None
    rule.weekends_allowed = True
    rule.max_duration_minutes = None
    rule.save()
    autumn = create(program, july_now, dt.datetime(2026, 11, 1, 0), dt.datetime(2026, 11, 1, 3))  # naive = local
    assert autumn.start == dt.datetime(2026, 11, 1, 7, tzinfo=dt.UTC)
    assert autumn.duration_hours == 4
    assert EventSerializer(autumn).data["quarter_hours"] == 16
    spring = create(program, july_now, dt.datetime(2026, 3, 8, 0), dt.datetime(2026, 3, 8, 3))
    assert spring.duration_hours == 2
    assert EventSerializer(spring).data["quarter_hours"] == 8
    with pytest.raises(DomainValidationError) as exc:
        create(program, july_now, dt.datetime(2026, 3, 8, 2, 30), dt.datetime(2026, 3, 8, 4))
    assert "does not exist in America/Los_Angeles" in exc.value.errors["start"][0]
    with pytest.raises(DomainValidationError) as exc:
        create(program, july_now, dt.datetime(2026, 11, 1, 1, 30), dt.datetime(2026, 11, 1, 4))
    assert "occurs twice" in exc.value.errors["start"][0]


def test_cross_midnight_event_needs_the_subscription_for_both_local_days(program, rule, july_now):
    rule.window_start, rule.window_end, rule.max_duration_minutes = dt.time(20), None, None
    rule.save()
    whole = participant(program, july_now)
    ending = participant(program, july_now)
    ending.end_date = dt.date(2026, 7, 16)
    ending.save()
    event = scheduled(program, july_now, la(2026, 7, 15, 23), la(2026, 7, 16, 2))
    assert event.duration_hours == 3
    services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
    got = dict(Reservation.objects.values_list("subscription_id", "decision"))
    assert got == {whole.pk: D.RESERVED, ending.pk: D.NOT_ELIGIBLE}
    assert Reservation.objects.get(subscription=ending).detail == ("Subscription ends 2026-07-16, before the event "
                                                                   "ends on 2026-07-16.")


def test_modification_after_scheduling_keeps_the_previous_revision(program, july_now):
    sub = participant(program, july_now)
    event = scheduled(program, july_now)
    services.event_update(event=event, changes={"end": la(2026, 7, 15, 19), "name": "Heat wave (extended)"},
                          now=july_now, actor=role_user(roles.PROGRAM_ADMIN, "pa-1"), reason="forecast")
    event.refresh_from_db()
    assert event.revision == 2
    rev = EventRevision.objects.get(event=event)
    assert (rev.revision, rev.snapshot["end"], rev.changed_by) == (1, "2026-07-16T01:00:00+00:00", "pa-1")
    p = Participation.objects.get(subscription=sub)
    assert p.end == la(2026, 7, 15, 19)
    # No change, no revision.
    services.event_update(event=event, changes={"name": "Heat wave (extended)"}, now=july_now, actor=TEST_ACTOR)
    event.refresh_from_db()
    assert event.revision == 2
    services.event_dispatch(event=event, now=july_now, actor=TEST_ACTOR)
    services.event_update(event=event, changes={"target_kw": Decimal("10")}, now=july_now, actor=TEST_ACTOR)
    kinds = list(DispatchMessage.objects.order_by("revision").values_list("kind", "revision"))
    assert kinds == [(DispatchKind.DISPATCH, 2), (DispatchKind.MODIFY, 3)]


def test_completed_event_cannot_be_modified_or_cancelled(program, july_now):
    participant(program, july_now)
    event = scheduled(program, july_now)
    services.events_tick(now=la(2026, 7, 15, 19), actor=TEST_ACTOR)
    event.refresh_from_db()
    assert event.status == EventStatus.COMPLETED
    with pytest.raises(TransitionNotAllowed):
        services.event_update(event=event, changes={"name": "x"}, now=july_now, actor=TEST_ACTOR)
    with pytest.raises(TransitionNotAllowed):
        services.event_cancel(event=event, reason="late", now=july_now, actor=TEST_ACTOR)


def test_tick_moves_statuses_and_hands_off_once(program, july_now, django_capture_on_commit_callbacks):
    sub = participant(program, july_now)
    received = []

    def on_completed(sender, event_id, **kw):
        received.append(event_id)

    event_completed.connect(on_completed)
    try:
        event = scheduled(program, july_now)
        assert services.events_tick(now=la(2026, 7, 15, 12), actor=TEST_ACTOR) == {
            "dispatched": 0, "activated": 0, "completed": 0, "handed_off": 0}
        services.events_tick(now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
        event.refresh_from_db()
        assert event.status == EventStatus.DISPATCHED
        assert Participation.objects.get(subscription=sub).status == ParticipationStatus.DISPATCHED
        services.events_tick(now=la(2026, 7, 15, 15), actor=TEST_ACTOR)
        event.refresh_from_db()
        assert event.status == EventStatus.ACTIVE
        with django_capture_on_commit_callbacks(execute=True):
            assert services.events_tick(now=la(2026, 7, 15, 18), actor=TEST_ACTOR)["completed"] == 1
        with django_capture_on_commit_callbacks(execute=True):
            assert services.events_tick(now=la(2026, 7, 15, 19), actor=TEST_ACTOR) == {"dispatched": 0, "activated": 0,
                                                                     "completed": 0, "handed_off": 0}
        event.refresh_from_db()
        assert (event.status, event.settlement_handed_off_at) == (EventStatus.COMPLETED, la(2026, 7, 15, 18))
        assert received == [event.pk]
    finally:
        event_completed.disconnect(on_completed)


def test_tick_does_not_hand_off_season_end_programs(program, july_now):
    program.settlement_timing = SettlementTiming.SEASON_END
    program.save()
    event = scheduled(program, july_now)
    services.events_tick(now=la(2026, 7, 16, 0), actor=TEST_ACTOR)
    event.refresh_from_db()
    assert (event.status, event.settlement_handed_off_at) == (EventStatus.COMPLETED, None)


def test_cancellation_after_notice_releases_and_does_not_count(program, rule, july_now):
    rule.max_events_per_season = 1
    rule.opt_out_allowance_kind, rule.opt_out_allowance_count = "count", 1
    rule.refuse_opt_out_beyond_allowance = True
    rule.save()
    agg = AggregatorFactory(code="nest")
    sub = participant(program, july_now, aggregator=agg, aggregator_device_id="t-1")
    first = scheduled(program, july_now)
    services.event_dispatch(event=first, now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
    p = Participation.objects.get(event=first)
    services.participation_opt_out(participation=p, channel=OptOutChannel.PORTAL, now=la(2026, 7, 15, 13, 30),
                                   actor=TEST_ACTOR)
    services.event_cancel(event=first, reason="Forecast dropped", now=la(2026, 7, 15, 14), actor=TEST_ACTOR)
    first.refresh_from_db()
    assert (first.status, first.cancel_reason) == (EventStatus.CANCELLED, "Forecast dropped")
    assert Participation.objects.get(event=first).status == ParticipationStatus.CANCELLED
    cancel = DispatchMessage.objects.get(event=first, kind=DispatchKind.CANCEL)
    assert (cancel.payload["devices"], cancel.delivery_status) == (["t-1"], DeliveryStatus.POLL_ONLY)
    # The cancelled event does not count toward the season limit of 1 nor the opt-out allowance of 1.
    second = scheduled(program, july_now, la(2026, 7, 16, 15), la(2026, 7, 16, 17))
    services.event_reserve(event=second, now=july_now, actor=TEST_ACTOR)
    assert Reservation.objects.get(event=second, subscription=sub).decision == D.RESERVED
    p2 = Participation.objects.get(event=second)
    services.participation_opt_out(participation=p2, channel=OptOutChannel.CSR, now=la(2026, 7, 16, 10),
                                   actor=TEST_ACTOR)
    assert Participation.objects.get(event=second).status == ParticipationStatus.OPTED_OUT
    # Never handed to settlement, so never paid.
    services.events_tick(now=la(2026, 7, 17, 0), actor=TEST_ACTOR)
    first.refresh_from_db()
    assert first.settlement_handed_off_at is None


def test_opt_out_after_the_cutoff_is_refused_but_device_reports_are_recorded(program, rule, july_now):
    rule.opt_out_cutoff_minutes = 60
    rule.save()
    a, b = participant(program, july_now), participant(program, july_now)
    event = scheduled(program, july_now)
    services.event_dispatch(event=event, now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
    pa = Participation.objects.get(subscription=a)
    with pytest.raises(ConflictError) as exc:
        services.participation_opt_out(participation=pa, channel=OptOutChannel.PORTAL, now=la(2026, 7, 15, 14, 30),
                                       actor=TEST_ACTOR)
    assert exc.value.code == "opt_out_cutoff"
    assert "cut-off 2026-07-15 14:00 PDT" in exc.value.message
    assert Participation.objects.get(pk=pa.pk).status == ParticipationStatus.DISPATCHED
    ok = services.participation_opt_out(participation=pa, channel=OptOutChannel.CSR, now=la(2026, 7, 15, 13, 59),
                                        actor=TEST_ACTOR)
    assert ok.channel == OptOutChannel.CSR
    pb = Participation.objects.get(subscription=b)
    services.participation_opt_out(participation=pb, channel=OptOutChannel.DEVICE, at=la(2026, 7, 15, 15, 45),
                                   now=la(2026, 7, 15, 16), actor=TEST_ACTOR)
    pb.refresh_from_db()
    assert (pb.status, pb.minutes_participated) == (ParticipationStatus.OPTED_OUT, 45.0)
    # Idempotent: a second opt-out returns the first.
    again = services.participation_opt_out(participation=pb, channel=OptOutChannel.PORTAL, now=la(2026, 7, 15, 17),
                                           actor=TEST_ACTOR)
    assert again.channel == OptOutChannel.DEVICE and OptOut.objects.count() == 2


def test_opt_out_allowance_count_and_percent_hours(program, rule, july_now):
    rule.opt_out_allowance_kind, rule.opt_out_allowance_count = "count", 1
    rule.refuse_opt_out_beyond_allowance = True
    rule.save()
    sub = participant(program, july_now)
    e1 = scheduled(program, july_now)
    e2 = scheduled(program, july_now, la(2026, 7, 16, 15), la(2026, 7, 16, 17))
    for e in (e1, e2):
        services.event_reserve(event=e, now=july_now, actor=TEST_ACTOR)
    p1, p2 = (Participation.objects.get(event=e, subscription=sub) for e in (e1, e2))
    services.participation_opt_out(participation=p1, channel=OptOutChannel.PORTAL, now=july_now, actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match="allowance of 1 per season is used"):
        services.participation_opt_out(participation=p2, channel=OptOutChannel.PORTAL, now=july_now, actor=TEST_ACTOR)
    rule.opt_out_allowance_kind, rule.opt_out_allowance_percent = "percent_hours", Decimal("50")
    rule.max_event_hours_per_season = Decimal("10")
    rule.save()
    # 3 h opted out + 2 h = 5 of 10 season hours = 50%: allowed; a third would exceed.
    services.participation_opt_out(participation=p2, channel=OptOutChannel.PORTAL, now=july_now, actor=TEST_ACTOR)
    e3 = scheduled(program, july_now, la(2026, 7, 17, 15), la(2026, 7, 17, 16))
    services.event_reserve(event=e3, now=july_now, actor=TEST_ACTOR)
    p3 = Participation.objects.get(event=e3, subscription=sub)
    with pytest.raises(ConflictError, match="60.0% of Summer 2026's event hours"):
        services.participation_opt_out(participation=p3, channel=OptOutChannel.PORTAL, now=july_now, actor=TEST_ACTOR)


def test_dispatch_messages_per_aggregator_and_webhook_delivery(program, july_now, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    hooked = AggregatorFactory(code="ecobee", webhook_url="https://agg.example.com/dr", webhook_secret="s3cret")
    polling = AggregatorFactory(code="nest")
    participant(program, july_now, aggregator=hooked, aggregator_device_id="e-1")
    participant(program, july_now, aggregator=hooked, aggregator_device_id="e-2")
    participant(program, july_now, aggregator=polling, aggregator_device_id="n-1")
    sent = []

    def fake_http(url, body, headers, timeout):
        sent.append((url, json.loads(body), headers.get("X-CPM-Signature")))
        return 200

    monkeypatch.setattr(dispatch, "deliver_http", fake_http)
    event = scheduled(program, july_now)
    with django_capture_on_commit_callbacks(execute=True):
        services.event_dispatch(event=event, now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
    msgs = {m.aggregator.code: m for m in DispatchMessage.objects.select_related("aggregator")}
    assert msgs["ecobee"].delivery_status == DeliveryStatus.DELIVERED
    assert msgs["ecobee"].attempts == 1
    assert msgs["ecobee"].payload["devices"] == ["e-1", "e-2"]
    assert msgs["nest"].delivery_status == DeliveryStatus.POLL_ONLY
    url, body, signature = sent[0]
    assert url == "https://agg.example.com/dr"
    assert (body["kind"], body["revision"], body["direction"], body["start"]) == (
        "dispatch", 1, "reduce", "2026-07-15T22:00:00+00:00")
    assert len(signature) == 64
    # Re-dispatching the same revision does not duplicate messages.
    services.create_dispatch_messages(event, kind=DispatchKind.DISPATCH, now=july_now)
    assert DispatchMessage.objects.count() == 2


def test_webhook_failures_retry_then_fail(program, july_now, monkeypatch):
    agg = AggregatorFactory(code="down", webhook_url="https://down.example.com/dr")
    participant(program, july_now, aggregator=agg)
    calls = []

    def failing(url, body, headers, timeout):
        calls.append(1)
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(dispatch, "deliver_http", failing)
    event = scheduled(program, july_now)
    services.event_dispatch(event=event, now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
    msg = DispatchMessage.objects.get()
    for _ in range(services.MAX_DELIVERY_ATTEMPTS):
        services.dispatch_message_deliver(message=msg, now=july_now, actor=TEST_ACTOR)
    msg.refresh_from_db()
    assert (msg.delivery_status, msg.attempts, len(calls)) == (DeliveryStatus.FAILED, 5, 5)
    assert "connection refused" in msg.last_error
    assert services.dispatch_message_deliver(message=msg, now=july_now, actor=TEST_ACTOR) is True
    assert len(calls) == 5


def test_aggregator_outcomes_are_idempotent_per_revision(program, july_now):
    agg = AggregatorFactory(code="nest")
    participant(program, july_now, aggregator=agg, aggregator_device_id="n-1")
    participant(program, july_now, aggregator=agg, aggregator_device_id="n-2")
    event = scheduled(program, july_now)
    services.event_dispatch(event=event, now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
    rows = [{"event": event.pk, "device": "n-1", "revision": 1, "status": "participated"},
            {"event": event.pk, "device": "n-2", "revision": 1, "status": "opted_out",
             "opted_out_at": la(2026, 7, 15, 16)},
            {"event": event.pk, "device": "zz", "revision": 1, "status": "participated"},
            {"event": event.pk, "device": "n-1", "revision": 9, "status": "participated"}]
    out = services.participation_outcomes_report(aggregator=agg, outcomes=rows, now=la(2026, 7, 15, 19),
                                                 actor=TEST_ACTOR)
    assert [r["result"] for r in out] == ["recorded", "recorded", "error", "error"]
    assert out[2]["detail"] == "This device is not reserved for this event."
    assert out[3]["detail"] == "Unknown revision 9 (event is at revision 1)."
    again = services.participation_outcomes_report(aggregator=agg, outcomes=rows[:2], now=la(2026, 7, 15, 20),
                                                   actor=TEST_ACTOR)
    assert [r["result"] for r in again] == ["unchanged", "unchanged"]
    parts = {p.device.aggregator_device_id: p for p in Participation.objects.select_related("device")}
    assert (parts["n-1"].status, parts["n-1"].outcome_revision) == (ParticipationStatus.PARTICIPATED, 1)
    assert (parts["n-2"].status, parts["n-2"].minutes_participated) == (ParticipationStatus.OPTED_OUT, 60.0)
    assert OptOut.objects.get().channel == OptOutChannel.AGGREGATOR_REPORT


def test_unavailability_create_validates(program, july_now):
    sub = participant(program, july_now)
    other = participant(program, july_now)
    with pytest.raises(DomainValidationError) as exc:
        services.unavailability_create(enrollment=sub.enrollment, device=other.device, start=la(2026, 7, 15),
                                       end=la(2026, 7, 16), now=july_now, actor=TEST_ACTOR)
    assert "is not subscribed in enrollment" in exc.value.errors["device"][0]
    u = services.unavailability_create(enrollment=sub.enrollment, device=sub.device, start=la(2026, 7, 15),
                                       end=la(2026, 7, 16), reason="Guests", now=july_now, actor=TEST_ACTOR)
    event = scheduled(program, july_now)
    services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
    assert Reservation.objects.get(subscription=sub).decision == D.UNAVAILABLE
    assert u.reason == "Guests"
    assert Event.objects.get().pk == event.pk


def test_schedule_uses_the_program_rule_checks_daily_hours_and_both_days(program, rule, july_now):
    """The checks are ``programs.rules.check_event_against_rule``: the event's length against the daily hour cap,
    and every local day a cross-midnight event touches (Friday night into Saturday)."""
    rule.max_event_hours_per_day = Decimal("2")
    rule.save()
    long = create(program, july_now, la(2026, 7, 15, 15), la(2026, 7, 15, 18))
    with pytest.raises(DomainValidationError) as exc:
        services.event_schedule(event=long, now=july_now, actor=TEST_ACTOR)
    assert exc.value.errors == {"max_event_hours_per_day": ["The event lasts 3 h; at most 2.00 h per day."]}
    rule.max_event_hours_per_day = None
    rule.window_start = rule.window_end = None
    rule.save()
    friday_night = create(program, july_now, la(2026, 7, 17, 23), la(2026, 7, 18, 1))
    with pytest.raises(DomainValidationError) as exc:
        services.event_schedule(event=friday_night, now=july_now, actor=TEST_ACTOR)
    assert exc.value.errors == {"weekends_allowed": ["Events are not allowed on weekends (Saturday 2026-07-18)."]}


def test_modifying_a_dispatched_event_reserves_again_cancels_misfits_and_sends_modify(program, july_now):
    ecobee, nest = AggregatorFactory(code="ecobee"), AggregatorFactory(code="nest")
    a = participant(program, july_now, aggregator=ecobee, aggregator_device_id="e-1")
    b = participant(program, july_now, aggregator=nest, aggregator_device_id="n-1")
    out = participant(program, july_now, aggregator=ecobee, aggregator_device_id="e-3")
    event = scheduled(program, july_now)  # 15:00-18:00 local
    services.event_dispatch(event=event, now=july_now, actor=TEST_ACTOR)
    services.participation_opt_out(participation=Participation.objects.get(subscription=out), channel="device",
                                   now=july_now, actor=TEST_ACTOR)
    # After dispatch: b's customer declares 18:00-20:00 unavailable; a new participant joins.
    UnavailabilityFactory(enrollment=b.enrollment, start=la(2026, 7, 15, 18), end=la(2026, 7, 15, 20),
                          reason="Guests")
    late = participant(program, july_now, aggregator=ecobee, aggregator_device_id="e-2")

    services.event_update(event=event, changes={"end": la(2026, 7, 15, 19)}, now=july_now, actor=TEST_ACTOR,
                          reason="heat lasts longer")
    event.refresh_from_db()
    assert (event.revision, event.status) == (2, EventStatus.DISPATCHED)
    assert EventRevision.objects.get(event=event).snapshot["end"] == "2026-07-16T01:00:00+00:00"
    ledger = {r.subscription_id: (r.decision, r.detail) for r in Reservation.objects.filter(event=event)}
    assert ledger[b.pk] == (D.UNAVAILABLE, "Customer declared unavailable 2026-07-15 18:00 PDT to 2026-07-15 20:00 PDT "
                                           "(Guests).")
    assert (ledger[a.pk][0], ledger[late.pk][0], ledger[out.pk][0]) == (D.RESERVED, D.RESERVED, D.RESERVED)
    parts = {p.subscription_id: p for p in Participation.objects.filter(event=event)}
    assert {k: p.status for k, p in parts.items()} == {
        a.pk: ParticipationStatus.DISPATCHED, b.pk: ParticipationStatus.CANCELLED,
        late.pk: ParticipationStatus.DISPATCHED, out.pk: ParticipationStatus.OPTED_OUT}
    assert {p.end for k, p in parts.items() if k != b.pk} == {la(2026, 7, 15, 19)}
    modify = {m.aggregator.code: m.payload for m in DispatchMessage.objects.filter(kind=DispatchKind.MODIFY)
              .select_related("aggregator")}
    assert {code: (p["revision"], p["end"], p["devices"], p["released_devices"]) for code, p in modify.items()} == {
        "ecobee": (2, "2026-07-16T02:00:00+00:00", ["e-1", "e-2"], []),
        "nest": (2, "2026-07-16T02:00:00+00:00", [], ["n-1"])}

    # The same change again is no change; a change breaking a rule is refused and nothing moves.
    services.event_update(event=event, changes={"end": la(2026, 7, 15, 19)}, now=july_now, actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        services.event_update(event=event, changes={"end": la(2026, 7, 15, 22)}, now=july_now, actor=TEST_ACTOR)
    assert list(exc.value.errors) == ["window_end", "max_duration_minutes"]
    event.refresh_from_db()
    assert (event.revision, DispatchMessage.objects.filter(kind=DispatchKind.MODIFY).count()) == (2, 2)

    # Back to the first window: b fits again and its participation is re-opened (dispatched), revision 3.
    services.event_update(event=event, changes={"end": la(2026, 7, 15, 18)}, now=july_now, actor=TEST_ACTOR)
    assert Participation.objects.get(pk=parts[b.pk].pk).status == ParticipationStatus.DISPATCHED
    nest_modify = DispatchMessage.objects.get(kind=DispatchKind.MODIFY, revision=3, aggregator=nest)
    assert (nest_modify.payload["devices"], nest_modify.payload["released_devices"]) == (["n-1"], [])
    assert list(EventRevision.objects.filter(event=event).values_list("revision", flat=True)) == [1, 2]


def test_modifying_a_scheduled_event_reserves_at_once_without_messages(program, rule, july_now):
    rule.max_events_per_day = 1
    rule.save()
    a, b = participant(program, july_now), participant(program, july_now)
    morning = scheduled(program, july_now, la(2026, 7, 16, 15), la(2026, 7, 16, 16))
    event = scheduled(program, july_now, la(2026, 7, 15, 15), la(2026, 7, 15, 16), target_device_ids=[a.device_id])
    assert dict(Participation.objects.filter(event=event).values_list("subscription_id", "status")) == {
        a.pk: ParticipationStatus.RESERVED}
    # Moved onto the other event's day, and targeting both devices: the daily limit now skips them both.
    services.event_update(event=event, changes={"start": la(2026, 7, 16, 17), "end": la(2026, 7, 16, 18),
                                                "target_device_ids": [a.device_id, b.device_id]}, now=july_now,
                          actor=TEST_ACTOR)
    ledger = dict(Reservation.objects.filter(event=event).values_list("subscription_id", "decision"))
    assert ledger == {a.pk: D.DAY_LIMIT, b.pk: D.DAY_LIMIT}
    assert dict(Participation.objects.filter(event=event).values_list("subscription_id", "status")) == {
        a.pk: ParticipationStatus.CANCELLED}
    assert Participation.objects.filter(event=morning, status=ParticipationStatus.RESERVED).count() == 2
    assert not DispatchMessage.objects.exists()
    # Narrowed back to device a on its own day: re-opened; b, no longer targeted, leaves the ledger.
    services.event_update(event=event, changes={"start": la(2026, 7, 15, 15), "end": la(2026, 7, 15, 16),
                                                "target_device_ids": [a.device_id]}, now=july_now, actor=TEST_ACTOR)
    assert dict(Reservation.objects.filter(event=event).values_list("subscription_id", "decision")) == {
        a.pk: D.RESERVED}
    assert Participation.objects.get(event=event).status == ParticipationStatus.RESERVED
    event.refresh_from_db()
    assert event.revision == 3


def test_opt_out_request_backdated_before_the_cutoff_is_still_refused(program, rule, july_now):
    """QA: a request is checked when it is made. Made at 14:30 (after the 14:00 cut-off) with ``at`` typed as 10:00,
    it was accepted (the cut-off was checked at ``at``); now refused, and a request never takes effect before it is
    made (``opted_out_at`` is at least ``now``)."""
    rule.opt_out_cutoff_minutes = 60
    rule.save()
    a, b = participant(program, july_now), participant(program, july_now)
    event = scheduled(program, july_now)
    pa, pb = (Participation.objects.get(subscription=s, event=event) for s in (a, b))
    for channel in (OptOutChannel.PORTAL, OptOutChannel.AGGREGATOR_API, OptOutChannel.CSR):
        with pytest.raises(ConflictError) as exc:
            services.participation_opt_out(participation=pa, channel=channel, at=la(2026, 7, 15, 10),
                                           now=la(2026, 7, 15, 14, 30), actor=TEST_ACTOR)
        assert exc.value.code == "opt_out_cutoff"
    assert Participation.objects.get(pk=pa.pk).status == ParticipationStatus.RESERVED
    # Before the cut-off, a backdated request takes effect when it is made, not earlier.
    services.participation_opt_out(participation=pb, channel=OptOutChannel.PORTAL, at=la(2026, 7, 14, 8),
                                   now=la(2026, 7, 15, 11), actor=TEST_ACTOR)
    pb.refresh_from_db()
    assert (pb.status, pb.opted_out_at) == (ParticipationStatus.OPTED_OUT, la(2026, 7, 15, 11))


def test_an_overriding_emergency_event_changed_to_economic_is_checked_against_the_rules(program, july_now):
    """QA: the override belongs to the emergency. An emergency scheduled over the rules (Saturday) and then changed to
    an economic event kept ``overrides_rules``, so the economic event was never checked (any day, any length). Now
    the rules are checked again and the change is refused by rule field, nothing changed; a change that fits the
    rules clears the override."""
    participant(program, july_now)
    event = create(program, july_now, la(2026, 7, 18, 10), la(2026, 7, 18, 12), category=EventCategory.EMERGENCY)
    services.event_schedule(event=event, now=july_now, override_rules=True, override_reason="CAISO EEA 2",
                            actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        services.event_update(event=event, changes={"category": EventCategory.ECONOMIC}, now=july_now,
                              actor=TEST_ACTOR, reason="not an emergency after all")
    assert exc.value.code == "participation_rule" and "weekends_allowed" in exc.value.errors
    event.refresh_from_db()
    assert (event.category, event.overrides_rules, event.revision) == (EventCategory.EMERGENCY, True, 1)
    services.event_update(event=event, changes={"category": EventCategory.ECONOMIC, "start": la(2026, 7, 16, 15),
                                                "end": la(2026, 7, 16, 17), "notification_at": la(2026, 7, 16, 9)},
                          now=july_now, actor=TEST_ACTOR, reason="economic on Thursday")
    event.refresh_from_db()
    assert (event.category, event.overrides_rules, event.override_reason, event.revision) == (
        EventCategory.ECONOMIC, False, "", 2)


def test_a_row_repeated_in_one_outcome_report_is_unchanged_and_refusals_name_local_times(program, july_now):
    """QA: a row repeated in the same report came back as an error ('cannot go from participated to participated')
    instead of unchanged, and refusals named the event in UTC ('Event 0 (2026-07-15 22:00 UTC)'). A repeated row
    is now unchanged, and a refusal names the event in its program's zone."""
    agg = AggregatorFactory(code="nest")
    participant(program, july_now, aggregator=agg, aggregator_device_id="n-1")
    participant(program, july_now, aggregator=agg, aggregator_device_id="n-2")
    event = scheduled(program, july_now)
    services.event_dispatch(event=event, now=july_now, actor=TEST_ACTOR)
    n1 = {"event": event.pk, "device": "n-1", "revision": 1, "status": "participated"}
    n2 = {"event": event.pk, "device": "n-2", "revision": 1, "status": "opted_out", "opted_out_at": la(2026, 7, 15, 16)}
    rows = [n1, n1, n2, {**n2, "status": "participated"}]
    out = services.participation_outcomes_report(aggregator=agg, outcomes=rows, now=la(2026, 7, 15, 19),
                                                 actor=TEST_ACTOR)
    assert [r["result"] for r in out] == ["recorded", "unchanged", "recorded", "error"]
    assert "2026-07-15 15:00 PDT" in out[3]["detail"] and "UTC" not in out[3]["detail"]
    assert Participation.objects.get(device__aggregator_device_id="n-1").status == ParticipationStatus.PARTICIPATED


def test_a_re_reservation_audits_each_participation_it_cancels_or_re_opens(program, rule, july_now):
    """QA (issue 13, one trail): modifying a dispatched event cancels the participation of a device that no longer
    fits (the aggregator is sent a release) and re-opens it when it fits again. The participation's History page
    (its audit entries) said nothing of either: the re-reservation's bulk updates wrote no entry per row, and the
    ledger row that said why was replaced by the next run. Each now has one entry: who, when, from, to and why (the
    ledger's decision in words)."""
    editor = role_user(roles.PROGRAM_ADMIN, "pa-modify")
    a, b = participant(program, july_now), participant(program, july_now)
    event = scheduled(program, july_now)  # 15:00-18:00 local
    services.event_dispatch(event=event, now=july_now, actor=TEST_ACTOR)
    UnavailabilityFactory(enrollment=b.enrollment, start=la(2026, 7, 15, 18), end=la(2026, 7, 15, 20),
                          reason="Guests")
    pb = Participation.objects.get(event=event, subscription=b)

    def trail():
        return [(e.code, e.from_status, e.to_status, e.actor_label, e.reason)
                for e in AuditEntry.objects.filter(object_type="events.participation", object_id=str(pb.pk))
                .order_by("pk")][1:]  # after its dispatch

    services.event_update(event=event, changes={"end": la(2026, 7, 15, 19)}, now=july_now, actor=editor,
                          reason="heat lasts longer")
    assert Participation.objects.get(pk=pb.pk).status == ParticipationStatus.CANCELLED
    assert trail() == [("participation.cancelled", ParticipationStatus.DISPATCHED, ParticipationStatus.CANCELLED,
                        "pa-modify", "Event revision 2: unavailable: Customer declared unavailable 2026-07-15 "
                                     "18:00 PDT to 2026-07-15 20:00 PDT (Guests).")]

    services.event_update(event=event, changes={"end": la(2026, 7, 15, 18)}, now=july_now, actor=editor,
                          reason="back to three hours")
    assert Participation.objects.get(pk=pb.pk).status == ParticipationStatus.DISPATCHED
    assert trail()[1:] == [("participation.dispatched", ParticipationStatus.CANCELLED,
                            ParticipationStatus.DISPATCHED, "pa-modify", "Event revision 3: reserved again.")]
    # The device that stayed throughout has no new entry.
    pa = Participation.objects.get(event=event, subscription=a)
    assert AuditEntry.objects.filter(object_type="events.participation", object_id=str(pa.pk)).count() == 1
