"""Reservation ledger: each limit and skip reason, rotation with a target kW, replaced devices, device-less
programs, idempotent re-runs, chunked runs and constant query counts."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.base.bulk import insert_rows
from devices.choices import DeviceStatus
from enrollments.choices import EnrollmentStatus
from events import services
from events.choices import EventStatus, ParticipationStatus
from events.choices import ReservationDecision as D
from events.models import Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, PremiseFactory, ServicePointFactory
from tests.factories.enrollments import ProgramSubscriptionFactory, active_participant
from tests.factories.events import EventFactory, UnavailabilityFactory, la
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory

from .helpers import past_event

pytestmark = pytest.mark.django_db


def participant(program, now, **device):
    return active_participant(program=program, device_kwargs={"last_seen_at": now, **device})


def reserve(event, now, **kw):
    if event.status == EventStatus.DRAFT:
        event.status = EventStatus.SCHEDULED
        event.save(update_fields=["status"])
    services.event_reserve(event=event, now=now, **{"actor": TEST_ACTOR, **kw})
    return {r.subscription_id: (r.decision, r.detail) for r in Reservation.objects.filter(event=event)}


def set_rule(rule, **kw):
    for k, v in kw.items():
        setattr(rule, k, v)
    rule.save()


def test_all_pass_reserved_with_participations(program, july_now):
    subs = [participant(program, july_now) for _ in range(3)]
    event = EventFactory(program=program)
    got = reserve(event, july_now)
    assert {k: v[0] for k, v in got.items()} == {s.pk: D.RESERVED for s in subs}
    parts = Participation.objects.filter(event=event)
    assert parts.count() == 3
    assert {(p.start, p.end, p.status) for p in parts} == {(event.start, event.end, ParticipationStatus.RESERVED)}
    event.refresh_from_db()
    assert event.reserved_at == july_now


def test_day_limit_and_day_hours_limit(program, rule, july_now):
    a, b = participant(program, july_now), participant(program, july_now)
    past_event(program, la(2026, 7, 15, 10), hours=2, subs=[a], status=EventStatus.SCHEDULED)
    set_rule(rule, max_events_per_day=1)
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.DAY_LIMIT, "Already 1 event on 2026-07-15; the program allows 1 per day.")
    assert got[b.pk][0] == D.RESERVED
    set_rule(rule, max_events_per_day=None, max_event_hours_per_day=Decimal("4"))
    got = reserve(EventFactory(program=program, start=la(2026, 7, 15, 19), end=la(2026, 7, 15, 21)), july_now)
    # a was skipped from the 15:00-18:00 event (2 h that day: 2 + 2 = 4 is allowed); b took it (3 + 2 > 4).
    assert got[a.pk][0] == D.RESERVED
    assert got[b.pk] == (D.DAY_HOURS_LIMIT, "3 event hours already on 2026-07-15 plus 2 would exceed the daily "
                                            "maximum of 4 hours.")


def test_week_limit_counts_monday_to_sunday(program, rule, july_now):
    a, b = participant(program, july_now), participant(program, july_now)
    # Friday 07-10 is the week before; Monday 07-13 and Tuesday 07-14 are in the event's week.
    past_event(program, la(2026, 7, 10, 15), subs=[a, b])
    past_event(program, la(2026, 7, 13, 15), subs=[a, b])
    past_event(program, la(2026, 7, 14, 15), subs=[a])
    set_rule(rule, max_events_per_week=2)
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.WEEK_LIMIT, "Already 2 events in the week of 2026-07-13; the program allows 2 per week.")
    assert got[b.pk][0] == D.RESERVED


def test_season_limit_ignores_other_seasons_and_cancelled_events(program, rule, july_now):
    a, b = participant(program, july_now), participant(program, july_now)
    past_event(program, la(2026, 5, 20, 15), subs=[a, b])  # before the season
    past_event(program, la(2026, 6, 10, 15), subs=[a, b])
    past_event(program, la(2026, 6, 20, 15), subs=[a])
    past_event(program, la(2026, 6, 25, 15), subs=[b], status=EventStatus.CANCELLED)
    set_rule(rule, max_events_per_season=2)
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.SEASON_LIMIT, "Already 2 events in Summer 2026; the program allows 2 per season.")
    assert got[b.pk] == (D.RESERVED, "1 other event(s) so far in Summer 2026.")


def test_season_hours_limit(program, rule, july_now):
    a, b = participant(program, july_now), participant(program, july_now)
    past_event(program, la(2026, 6, 10, 15), hours=3, subs=[a])
    past_event(program, la(2026, 6, 11, 15), hours=1, subs=[b])
    set_rule(rule, max_event_hours_per_season=Decimal("5.5"))
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.HOURS_LIMIT, "3 event hours already in Summer 2026 plus 3 would exceed the season "
                                        "maximum of 5.5 hours.")
    assert got[b.pk][0] == D.RESERVED


def test_minimum_rest_between_events(program, rule, july_now):
    a, b = participant(program, july_now), participant(program, july_now)
    past_event(program, la(2026, 7, 14, 17), hours=2, subs=[a])  # ends 07-14 19:00, 20 h before
    past_event(program, la(2026, 7, 13, 13), hours=2, subs=[b])  # ends 07-13 15:00, 48 h before
    set_rule(rule, min_rest_minutes=24 * 60)
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk][0] == D.REST
    assert got[a.pk][1].startswith("Only 1200 minutes from event #")
    assert got[b.pk][0] == D.RESERVED


def test_consecutive_event_days(program, rule, july_now):
    a, b = participant(program, july_now), participant(program, july_now)
    past_event(program, la(2026, 7, 13, 15), subs=[a])
    past_event(program, la(2026, 7, 14, 15), subs=[a])
    past_event(program, la(2026, 7, 12, 15), subs=[b])  # a gap on 07-13 for b
    past_event(program, la(2026, 7, 14, 15, 30), subs=[b])
    set_rule(rule, max_consecutive_event_days=2)
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.CONSECUTIVE_DAYS, "2026-07-15 would make 3 consecutive event days; the program "
                                             "allows 2.")
    assert got[b.pk][0] == D.RESERVED


def test_overlap_with_another_program_event_for_the_same_device(program, july_now):
    other = ProgramFactory(code="ev-charge", allows_co_enrollment=True)
    program.allows_co_enrollment = True
    program.save()
    a = participant(program, july_now)
    b = participant(program, july_now)
    sub_other = active_participant(program=other, device_kwargs=False)
    sub_other.device = a.device
    sub_other.exclusive = False
    sub_other.save()
    other_event = past_event(other, la(2026, 7, 15, 17), hours=2, subs=[sub_other], status=EventStatus.SCHEDULED)
    other_event.name = "Peak\t5 \\ 7pm"  # survives the COPY text format on PostgreSQL
    other_event.save()
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.OVERLAP, f"Already reserved for event #{other_event.pk} '{other_event.name}' of program "
                                    "ev-charge at the same time.")
    assert got[b.pk][0] == D.RESERVED


def test_offline_unavailable_and_not_eligible_reasons(program, july_now):
    stale = participant(program, july_now, last_seen_at=july_now - dt.timedelta(days=2))
    never = participant(program, july_now, last_seen_at=None)
    inactive = participant(program, july_now, status=DeviceStatus.INACTIVE)
    away = participant(program, july_now)
    UnavailabilityFactory(enrollment=away.enrollment, reason="Vacation")
    suspended = participant(program, july_now)
    suspended.enrollment.status = EnrollmentStatus.SUSPENDED
    suspended.enrollment.save()
    got = reserve(EventFactory(program=program), july_now)
    assert got[stale.pk] == (D.OFFLINE, "Device last seen 2026-07-12 09:00 PDT, more than 1440 minutes before "
                                        "reservation.")
    assert got[never.pk] == (D.OFFLINE, "Device has never been seen online.")
    assert got[inactive.pk] == (D.NOT_ELIGIBLE, "Device status is inactive.")
    assert got[away.pk] == (D.UNAVAILABLE, "Customer declared unavailable 2026-07-15 00:00 PDT to 2026-07-16 00:00 PDT "
                                           "(Vacation).")
    assert got[suspended.pk] == (D.NOT_ELIGIBLE, "Enrollment is suspended.")
    assert Participation.objects.count() == 0


def test_opt_out_allowance_used(program, rule, july_now):
    a, b = participant(program, july_now), participant(program, july_now)
    e1 = past_event(program, la(2026, 6, 10, 15), subs=[a, b], opted_out=[a, b])
    past_event(program, la(2026, 6, 11, 15), subs=[a], opted_out=[a])
    assert e1.participations.count() == 2
    set_rule(rule, opt_out_allowance_kind="count", opt_out_allowance_count=1)
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.OPT_OUT_ALLOWANCE_USED, "2 opt-outs in Summer 2026, beyond the allowance of 1.")
    assert got[b.pk][0] == D.RESERVED


def test_targeting_by_feeder_and_device_list(program, july_now):
    north = participant(program, july_now)
    south_sp = ServicePointFactory(premise=PremiseFactory(feeder="FDR-99"))
    south = active_participant(program=program, service_point=south_sp, device_kwargs={"last_seen_at": july_now})
    got = reserve(EventFactory(program=program, target_feeders=["FDR-99"]), july_now)
    assert got == {south.pk: (D.RESERVED, "0 other event(s) so far in Summer 2026.")}
    listed = EventFactory(program=program, start=la(2026, 7, 16, 15), end=la(2026, 7, 16, 16))
    listed.target_devices.set([north.device])
    assert set(reserve(listed, july_now)) == {north.pk}


def test_target_kw_rotation_least_called_first_then_capacity(program, july_now):
    often = participant(program, july_now, capacity_kw=Decimal("5"))
    small = participant(program, july_now, capacity_kw=Decimal("1"))
    big = participant(program, july_now, capacity_kw=Decimal("3"))
    mid = participant(program, july_now, capacity_kw=Decimal("2"))
    past_event(program, la(2026, 6, 10, 15), subs=[often, mid])
    past_event(program, la(2026, 6, 11, 15), subs=[often])
    # Order: big (0 events, 3 kW), small (0, 1 kW), mid (1 event), often (2 events). 4 kW needs big + small.
    got = reserve(EventFactory(program=program, target_kw=Decimal("4")), july_now)
    assert {k: v[0] for k, v in got.items()} == {big.pk: D.RESERVED, small.pk: D.RESERVED,
                                                 mid.pk: D.TARGET_MET, often.pk: D.TARGET_MET}
    assert got[mid.pk][1].startswith("Target 4.000 kW met")
    # Next event: big, small and mid now have 1 event each, often 2: big (3 kW) + mid (2 kW) reach 4.5 kW.
    got = reserve(EventFactory(program=program, target_kw=Decimal("4.5"), start=la(2026, 7, 22, 15),
                               end=la(2026, 7, 22, 16)), july_now)
    assert {k for k, v in got.items() if v[0] == D.RESERVED} == {big.pk, mid.pk}


def test_chunked_run_matches_single_run(program, july_now):
    subs = [participant(program, july_now, capacity_kw=Decimal(n % 4 + 1)) for n in range(7)]
    past_event(program, la(2026, 6, 10, 15), subs=subs[:3])
    event = EventFactory(program=program, target_kw=Decimal("7"))
    chunked = reserve(event, july_now, chunk_size=2)
    # Least called first (subs 3..6 with 0 events: 4, 1, 2, 3 kW), larger capacity first: 4 + 3 = 7 kW.
    assert {k for k, v in chunked.items() if v[0] == D.RESERVED} == {subs[3].pk, subs[6].pk}
    single = reserve(event, july_now)
    assert single == chunked


def test_single_transaction_in_spans_matches_one_span(program, rule, july_now, settings):
    """One transaction decided span by span (CPM_CHUNK_SIZE) writes the same ledger as one span for everything:
    the target kW choice stays global, outcomes already recorded are kept, ex-candidates are released."""
    subs = [participant(program, july_now, capacity_kw=Decimal(n % 4 + 1)) for n in range(9)]
    past_event(program, la(2026, 6, 10, 15), subs=subs[:3])
    past_event(program, la(2026, 6, 12, 15), subs=subs[:1])
    set_rule(rule, max_events_per_season=5)
    event = EventFactory(program=program, target_kw=Decimal("8"))
    settings.CPM_CHUNK_SIZE = 10_000
    whole = reserve(event, july_now)
    whole_parts = set(Participation.objects.filter(event=event).values_list("subscription_id", "status"))
    Reservation.objects.filter(event=event).delete()
    Participation.objects.filter(event=event).delete()
    settings.CPM_CHUNK_SIZE = 2
    spans = reserve(event, july_now)
    assert spans == whole
    assert set(Participation.objects.filter(event=event).values_list("subscription_id", "status")) == whole_parts
    # Never called first (subs 3..8: 4, 1, 2, 3, 4, 1 kW), larger capacity first: 4 + 4 = 8 kW.
    assert {k for k, v in spans.items() if v[0] == D.RESERVED} == {subs[3].pk, subs[7].pk}
    # An ex-candidate (subscription ended) is released; the others keep their decision.
    gone = subs[3]
    gone.end_date = dt.date(2026, 7, 1)
    gone.save()
    again = reserve(event, july_now)
    assert again[gone.pk][0] == D.NOT_ELIGIBLE
    assert Participation.objects.get(event=event, subscription=gone).status == ParticipationStatus.CANCELLED
    assert {k for k, v in again.items() if v[0] == D.RESERVED} == {subs[7].pk, subs[6].pk, subs[5].pk}


def test_spans_cover_candidates_added_after_the_plan(program, july_now):
    subs = [participant(program, july_now) for _ in range(5)]
    event = EventFactory(program=program, status=EventStatus.SCHEDULED)
    chunks = services.event_reservation_start(event=event, now=july_now, chunk_size=2, actor=TEST_ACTOR)
    assert [(c.first_id, c.end_id) for c in chunks] == [(None, subs[2].pk), (subs[2].pk, subs[4].pk),
                                                         (subs[4].pk, None)]
    late = participant(program, july_now)  # enrolled between the plan and the chunks: the open last span has it
    counts = [services.reserve_chunk(event_id=event.pk, first_id=c.first_id, end_id=c.end_id, chosen_ids=None,
                                     now=july_now) for c in chunks]
    assert counts == [{D.RESERVED: 2}, {D.RESERVED: 2}, {D.RESERVED: 2}]
    assert set(Reservation.objects.filter(event=event).values_list("subscription_id", flat=True)) == {
        *(s.pk for s in subs), late.pk}


def test_replaced_device_keeps_the_enrollment_season_history(program, rule, july_now):
    old = participant(program, july_now)
    past_event(program, la(2026, 6, 10, 15), subs=[old])
    past_event(program, la(2026, 6, 20, 15), subs=[old])
    old.end_date = dt.date(2026, 7, 1)
    old.save()
    new = ProgramSubscriptionFactory(enrollment=old.enrollment, device=DeviceFactory(last_seen_at=july_now),
                                     start_date=dt.date(2026, 7, 1))
    set_rule(rule, max_events_per_season=2)
    got = reserve(EventFactory(program=program), july_now)
    assert got[new.pk][0] == D.SEASON_LIMIT
    assert old.pk not in got  # ended before the event: not a candidate


def test_program_without_devices_reserves_service_points(july_now):
    ptr = ProgramFactory(code="ptr", requires_device=False, eligible_device_types=[])
    SeasonFactory(program=ptr)
    ParticipationRuleFactory(program=ptr)
    a = active_participant(program=ptr, device_kwargs=False)
    b = active_participant(program=ptr, device_kwargs=False)
    UnavailabilityFactory(enrollment=b.enrollment)
    got = reserve(EventFactory(program=ptr), july_now)
    assert got[a.pk][0] == D.RESERVED
    assert got[b.pk][0] == D.UNAVAILABLE
    p = Participation.objects.get()
    assert (p.device_id, p.service_point_id) == (None, a.enrollment.service_point_id)
    other = ProgramFactory(code="ptr-2", requires_device=False, eligible_device_types=[])
    c = ProgramSubscriptionFactory(enrollment__program=other, enrollment__service_point=a.enrollment.service_point,
                                   device=None)
    got = reserve(EventFactory(program=other, start=la(2026, 7, 15, 16), end=la(2026, 7, 15, 17)), july_now)
    assert got[c.pk][0] == D.OVERLAP


def test_rerun_is_idempotent_and_releases_devices_gone_offline(program, july_now):
    subs = [participant(program, july_now) for _ in range(3)]
    event = EventFactory(program=program)
    first = reserve(event, july_now)
    ids = set(Participation.objects.values_list("pk", flat=True))
    assert reserve(event, july_now) == first
    assert set(Participation.objects.values_list("pk", flat=True)) == ids
    assert Reservation.objects.count() == 3
    device = subs[0].device
    device.last_seen_at = july_now - dt.timedelta(days=3)
    device.save()
    again = reserve(event, july_now)
    assert again[subs[0].pk][0] == D.OFFLINE
    # The participation is kept, CANCELLED (the ledger row says why); back online, the same row is re-opened.
    assert dict(Participation.objects.filter(event=event).values_list("subscription_id", "status")) == {
        subs[0].pk: ParticipationStatus.CANCELLED, subs[1].pk: ParticipationStatus.RESERVED,
        subs[2].pk: ParticipationStatus.RESERVED}
    device.last_seen_at = july_now
    device.save()
    assert reserve(event, july_now) == first
    assert set(Participation.objects.values_list("pk", flat=True)) == ids
    assert set(Participation.objects.values_list("status", flat=True)) == {ParticipationStatus.RESERVED}


def test_constant_query_count_whatever_the_number_of_candidates(program, rule, july_now):
    set_rule(rule, max_events_per_season=5, min_rest_minutes=60, max_consecutive_event_days=3)

    def run(n):
        subs = [participant(program, july_now) for _ in range(n)]
        past_event(program, la(2026, 6, 10 + n, 15), subs=subs)
        event = EventFactory(program=program, start=la(2026, 7, 15 + n, 15), end=la(2026, 7, 15 + n, 16))
        event.status = EventStatus.SCHEDULED
        event.save()
        with CaptureQueriesContext(connection) as ctx:
            counts = services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
        return len(ctx.captured_queries), counts

    small, counts_small = run(1)
    large, counts_large = run(12)
    assert counts_large[D.RESERVED] >= 12
    assert small == large


def test_query_count_grows_by_a_constant_per_span(program, rule, july_now, settings):
    set_rule(rule, max_events_per_season=5)
    settings.CPM_CHUNK_SIZE = 3
    queries = []
    for n in (1, 2, 3):  # 3, 6 and 9 new candidates: 1, 2 and 3 spans of the new ones, plus the earlier ones
        subs = [participant(program, july_now) for _ in range(3)]
        past_event(program, la(2026, 6, 10 + n, 15), subs=subs)
        event = EventFactory(program=program, start=la(2026, 7, 15 + n, 15), end=la(2026, 7, 15 + n, 16),
                             status=EventStatus.SCHEDULED)
        with CaptureQueriesContext(connection) as ctx:
            counts = services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
        assert counts == {D.RESERVED: 3 * n}
        queries.append(len(ctx.captured_queries))
    assert queries[1] - queries[0] == queries[2] - queries[1] > 0


def test_copy_keeps_ids_and_equal_decimals_apart(program, july_now):
    """The COPY writer caches the text of each value: an id 7 and a capacity of 7.000 kW are equal in Python, but
    not the same text (a bigint column refuses "7.000")."""
    first, second = participant(program, july_now), participant(program, july_now)
    event = EventFactory(program=program, status=EventStatus.SCHEDULED)
    rows = [(event.pk, s.pk, s.enrollment_id, s.device_id, s.enrollment.service_point_id, D.RESERVED, "", capacity,
             july_now) for s, capacity in ((first, Decimal(f"{second.pk}.000")), (second, Decimal("1.500")))]
    insert_rows(Reservation, ["event_id", "subscription_id", "enrollment_id", "device_id", "service_point_id",
                              "decision", "detail", "capacity_kw", "decided_at"], rows)
    assert dict(Reservation.objects.filter(event=event).values_list("subscription_id", "capacity_kw")) == {
        first.pk: Decimal(f"{second.pk}.000"), second.pk: Decimal("1.500")}


@pytest.mark.postgres
def test_a_clash_the_database_refuses_in_a_later_span_refuses_the_whole_reservation(program, july_now, settings,
                                                                                      monkeypatch):
    """A clash the database's no-overlap check refuses in the second of three spans (the reservation's own overlap
    check blinded here) is a ``ConflictError``, and nothing of the run is written: the spans before it are rolled
    back with it (one transaction)."""
    from cpm.base.errors import ConflictError
    from events.services import reservation

    subs = [participant(program, july_now) for _ in range(5)]
    other_program = ProgramFactory(code="other-clash", allows_co_enrollment=True)
    SeasonFactory(program=other_program)
    holder = ProgramSubscriptionFactory(enrollment__program=other_program, device=subs[2].device, exclusive=False,
                                        enrollment__service_point=subs[2].enrollment.service_point)
    other = EventFactory(program=other_program, status=EventStatus.SCHEDULED)
    Participation.objects.create(event=other, subscription=holder, enrollment=holder.enrollment,
                                 device=holder.device, service_point=holder.enrollment.service_point,
                                 start=other.start, end=other.end)
    monkeypatch.setattr(reservation, "_overlaps",
                        lambda *a, **k: reservation.Overlaps({}, {}, {}, {}, frozenset(), {}, {}))
    settings.CPM_CHUNK_SIZE = 2  # three spans: the clash is in the second
    event = EventFactory(program=program, status=EventStatus.SCHEDULED)
    with pytest.raises(ConflictError, match="two overlapping events"):
        services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
    assert Reservation.objects.filter(event=event).count() == 0
    assert Participation.objects.filter(event=event).count() == 0
    monkeypatch.undo()
    got = reserve(event, july_now)
    assert got[subs[2].pk][0] == D.OVERLAP
    assert sorted(v[0] for k, v in got.items() if k != subs[2].pk) == [D.RESERVED] * 4


def test_target_kw_reserved_again_after_an_opt_out_calls_the_next_device(program, july_now):
    """QA (rules): a 4 kW target called the 5 kW thermostat a (larger first) and left the 4 kW b 'target met'.
    The customer of a opts out; the administrator reserves again: a's 5 kW will not be delivered, so it no longer
    counts toward the target and b is called (4 kW). a keeps its opt-out, and its ledger row says so in words."""
    a = participant(program, july_now, capacity_kw=Decimal("5"))
    b = participant(program, july_now, capacity_kw=Decimal("4"))
    event = EventFactory(program=program, target_kw=Decimal("4"))
    got = reserve(event, july_now)
    assert {k: v[0] for k, v in got.items()} == {a.pk: D.RESERVED, b.pk: D.TARGET_MET}
    services.participation_opt_out(participation=Participation.objects.get(event=event, subscription=a),
                                   channel="portal", now=july_now, actor=TEST_ACTOR)
    got = reserve(event, july_now)
    assert got[b.pk] == (D.RESERVED, "0 other event(s) so far in Summer 2026.")
    assert got[a.pk] == (D.RESERVED, "Reserved earlier; the customer opted out, kept as recorded (does not count "
                                     "toward the target kW).")
    assert dict(Participation.objects.filter(event=event).values_list("subscription_id", "status")) == {
        a.pk: ParticipationStatus.OPTED_OUT, b.pk: ParticipationStatus.RESERVED}
    assert reserve(event, july_now) == got  # a re-run changes nothing


def test_rest_across_the_autumn_dst_night_counts_real_minutes_and_names_the_other_event_in_local_time(
        program, rule, july_now):
    """QA (rules): 60 minutes of rest. Device a's earlier event ran 2026-10-31 23:00 PDT to 2026-11-01 01:30 PDT
    (08:30 UTC); the next starts at 01:15 PST, the second 01:15 of the night (09:15 UTC): 45 real minutes of rest,
    though the wall clock reads 15 minutes earlier. Device b's event ended 00:00 PDT (07:00 UTC): 135 minutes, enough.
    The ledger names the event that is too close with its local times, not only its number."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/Los_Angeles")
    season = program.seasons.get()
    season.end_date = dt.date(2026, 11, 30)
    season.save()
    set_rule(rule, min_rest_minutes=60)
    a, b = participant(program, july_now), participant(program, july_now)
    earlier = past_event(program, la(2026, 10, 31, 23), hours=2.5, subs=[a], status=EventStatus.SCHEDULED)
    past_event(program, la(2026, 10, 31, 22), hours=2, subs=[b], status=EventStatus.SCHEDULED)
    start = dt.datetime(2026, 11, 1, 1, 15, fold=1, tzinfo=tz)
    assert start.astimezone(dt.UTC) == dt.datetime(2026, 11, 1, 9, 15, tzinfo=dt.UTC)
    got = reserve(EventFactory(program=program, start=start, end=start + dt.timedelta(hours=1)), july_now)
    assert got[a.pk] == (D.REST, f"Only 45 minutes from event #{earlier.pk} '{earlier.name}' (2026-10-31 23:00 PDT "
                                 "to 2026-11-01 01:30 PDT); the program requires 60 minutes of rest between events.")
    assert got[b.pk][0] == D.RESERVED


def test_reserved_row_counts_the_events_before_it_as_so_far_and_says_how_many_come_later(program, july_now):
    """QA (rules): device a took part on June 10 and is reserved for July 22; an event on July 15 is then reserved.
    Its row read '2 other event(s) so far in Summer 2026' although one of the two is a week later: 'so far' is the
    June event only, and the later one is said as such. The rotation still counts both (least called first)."""
    a = participant(program, july_now)
    past_event(program, la(2026, 6, 10, 15), subs=[a])
    past_event(program, la(2026, 7, 22, 15), subs=[a], status=EventStatus.SCHEDULED)
    got = reserve(EventFactory(program=program), july_now)
    assert got[a.pk] == (D.RESERVED, "1 other event(s) so far in Summer 2026, and 1 more scheduled after this one.")
