"""Selectors for the CSR page: a device's event history with decisions, statuses and success rate; upcoming
participations with whether an opt-out is still allowed (the same check as the opt-out service). Constant queries."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.base.errors import ConflictError
from events import selectors, services
from events.choices import EventStatus, OptOutChannel, ParticipationStatus
from events.choices import ReservationDecision as D
from events.models import Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.events import la

from .helpers import past_event

pytestmark = pytest.mark.django_db


def participant(program, now):
    return active_participant(program=program, device_kwargs={"last_seen_at": now})


def scheduled(program, now, start, hours=1):
    event = services.event_create(program=program, name=f"Event {start:%m-%d %H}", start=start,
                                  end=start + dt.timedelta(hours=hours), now=now, actor=TEST_ACTOR)
    services.event_schedule(event=event, now=now, actor=TEST_ACTOR)
    services.event_reserve(event=event, now=now, actor=TEST_ACTOR)
    return event


def count(fn):
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    return len(ctx.captured_queries), result


def ledger_row(event, sub, decision, detail, now):
    Reservation.objects.create(event=event, subscription=sub, enrollment=sub.enrollment, device=sub.device,
                               service_point=sub.enrollment.service_point, decision=decision, detail=detail,
                               decided_at=now)


def test_device_event_history_rows_success_rate_and_constant_queries(program, july_now):
    a, b, idle = (participant(program, july_now) for _ in range(3))
    took_part = past_event(program, la(2026, 6, 10, 15), subs=[a])
    opted = past_event(program, la(2026, 6, 11, 15), subs=[a], opted_out=[a])
    no_report = past_event(program, la(2026, 6, 12, 15), subs=[a])
    Participation.objects.filter(event=no_report).update(status=ParticipationStatus.DISPATCHED)
    skipped = past_event(program, la(2026, 6, 15, 15), subs=[])
    for event, decision, detail in ((took_part, D.RESERVED, "0 other event(s) so far in Summer 2026."),
                                    (opted, D.RESERVED, "1 other event(s) so far in Summer 2026.")):
        ledger_row(event, a, decision, detail, july_now)
    ledger_row(skipped, a, D.DAY_LIMIT, "Already 1 event on 2026-06-15; the program allows 1 per day.", july_now)
    ledger_row(skipped, b, D.OFFLINE, "Device has never been seen online.", july_now)
    upcoming = scheduled(program, july_now, la(2026, 7, 15, 15))

    n_one, one = count(lambda: selectors.device_event_history(device_ids=[b.device_id], now=july_now))
    n_all, history = count(lambda: selectors.device_event_history(
        device_ids=[a.device_id, b.device_id, idle.device_id, b.device_id], now=july_now))
    assert n_one == n_all == 2
    assert one[b.device_id].rows == history[b.device_id].rows
    rows = [(r.event.pk, r.decision, r.participation_status, r.opted_out_at) for r in history[a.device_id].rows]
    assert rows == [
        (upcoming.pk, D.RESERVED, ParticipationStatus.RESERVED, None),
        (skipped.pk, D.DAY_LIMIT, None, None),
        (no_report.pk, None, ParticipationStatus.DISPATCHED, None),  # no ledger row: history loaded directly
        (opted.pk, D.RESERVED, ParticipationStatus.OPTED_OUT, la(2026, 6, 11, 15)),
        (took_part.pk, D.RESERVED, ParticipationStatus.PARTICIPATED, None),
    ]
    assert history[a.device_id].rows[1].detail == "Already 1 event on 2026-06-15; the program allows 1 per day."
    assert history[a.device_id].rows[1].decision_label == "Daily event limit reached"
    # Participated 1 of the 2 ended events with an outcome (the unreported and the upcoming ones do not count).
    assert history[a.device_id].success_rate == 0.5
    assert history[a.device_id].outcomes == {ParticipationStatus.PARTICIPATED: 1, ParticipationStatus.OPTED_OUT: 1}
    assert [(r.decision, r.detail) for r in history[b.device_id].rows] == [
        (D.RESERVED, "0 other event(s) so far in Summer 2026."), (D.OFFLINE, "Device has never been seen online.")]
    assert history[b.device_id].success_rate is None
    assert [(r.event.pk, r.decision) for r in history[idle.device_id].rows] == [(upcoming.pk, D.RESERVED)]
    assert history[idle.device_id].success_rate is None
    assert selectors.device_event_history(device_ids=[], now=july_now) == {}


def test_upcoming_participations_say_why_opt_out_is_refused_and_the_service_agrees(program, rule, july_now):
    rule.opt_out_cutoff_minutes = 360  # 6 hours before start
    rule.opt_out_allowance_kind, rule.opt_out_allowance_count = "count", 2
    rule.refuse_opt_out_beyond_allowance = True
    rule.save()
    x, y = participant(program, july_now), participant(program, july_now)
    past_event(program, la(2026, 6, 10, 15), subs=[x], opted_out=[x])
    past_event(program, la(2026, 6, 11, 15), subs=[x], opted_out=[x])
    today = scheduled(program, july_now, la(2026, 7, 14, 14))  # now is 09:00 local: the cut-off was 08:00
    tomorrow = scheduled(program, july_now, la(2026, 7, 15, 15))
    later = scheduled(program, july_now, la(2026, 7, 16, 15))
    services.participation_opt_out(participation=Participation.objects.get(event=later, subscription=y),
                                   channel=OptOutChannel.DEVICE, now=july_now, actor=TEST_ACTOR)
    cancelled = scheduled(program, july_now, la(2026, 7, 17, 15))
    services.event_cancel(event=cancelled, reason="cooler", now=july_now, actor=TEST_ACTOR)

    n_one, only_x = count(lambda: selectors.upcoming_participations(enrollment_ids=[x.enrollment_id], now=july_now))
    n_two, items = count(lambda: selectors.upcoming_participations(
        enrollment_ids=[x.enrollment_id, y.enrollment_id], now=july_now))
    assert n_one == n_two
    assert len(only_x) == 3
    got = {(i.participation.event_id, i.participation.subscription_id): (i.opt_out_allowed, i.opt_out_refusal_code)
           for i in items}
    assert got == {
        (today.pk, x.pk): (False, "opt_out_cutoff"), (today.pk, y.pk): (False, "opt_out_cutoff"),
        (tomorrow.pk, x.pk): (False, "opt_out_allowance"), (tomorrow.pk, y.pk): (True, ""),
        (later.pk, x.pk): (False, "opt_out_allowance"), (later.pk, y.pk): (False, "already_opted_out"),
    }
    assert [i.participation.event_id for i in items] == [today.pk, today.pk, tomorrow.pk, tomorrow.pk, later.pk,
                                                         later.pk]
    by_key = {(i.participation.event_id, i.participation.subscription_id): i for i in items}
    assert by_key[(today.pk, x.pk)].opt_out_refusal == ("Opt-outs close 360 minutes before the event starts "
                                                        "(cut-off 2026-07-14 08:00 PDT).")
    assert by_key[(tomorrow.pk, x.pk)].opt_out_refusal == ("The opt-out allowance of 2 per season is used (2 in "
                                                           "Summer 2026).")
    assert by_key[(later.pk, y.pk)].opt_out_refusal == "Already opted out at 2026-07-14 09:00 PDT."
    # The service answers exactly as the page says.
    for key in ((today.pk, x.pk), (tomorrow.pk, x.pk), (later.pk, x.pk)):
        with pytest.raises(ConflictError) as exc:
            services.participation_opt_out(participation=by_key[key].participation, channel=OptOutChannel.CSR,
                                           now=july_now, actor=TEST_ACTOR)
        assert (exc.value.code, exc.value.message) == (by_key[key].opt_out_refusal_code,
                                                       by_key[key].opt_out_refusal)
    services.participation_opt_out(participation=by_key[(tomorrow.pk, y.pk)].participation,
                                   channel=OptOutChannel.CSR, now=july_now, actor=TEST_ACTOR)
    assert Participation.objects.get(event=tomorrow, subscription=y).status == ParticipationStatus.OPTED_OUT
    # Once the event has ended it is no longer upcoming.
    assert selectors.upcoming_participations(enrollment_ids=[y.enrollment_id], now=la(2026, 7, 16, 16)) == []
    assert EventStatus.CANCELLED not in {i.participation.event.status for i in items}
