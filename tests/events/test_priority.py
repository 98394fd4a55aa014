"""Direction and priority of overlapping events (issue 16, point 5; the rule in ``events.priority``).

Priority = category (emergency 3 > reliability 2 > economic 1 > test 0), then the program's ``event_priority``
(higher wins). ``Peak`` is 2026-07-15 15:00-18:00 America/Los_Angeles; ``Storm`` 16:00-19:00 the same day overlaps
it by two hours. Each test reserves Peak first, then Storm, and reads both ledgers."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.models import AuditEntry
from events import services
from events.choices import EventCategory, EventDirection, EventStatus, ParticipationStatus
from events.choices import ReservationDecision as D
from events.models import Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import EnrollmentFactory, ProgramSubscriptionFactory, active_participant
from tests.factories.events import EventFactory, la
from tests.factories.programs import (
    IncentiveRuleFactory,
    ParticipationRuleFactory,
    ProgramFactory,
    SeasonFactory,
)

pytestmark = pytest.mark.django_db

RELEASED = ParticipationStatus.CANCELLED


def scheduled(program, name, *, category=EventCategory.ECONOMIC, direction=EventDirection.REDUCE, hour=15):
    return EventFactory(program=program, name=name, category=category, direction=direction,
                        start=la(2026, 7, 15, hour), end=la(2026, 7, 15, hour + 3), status=EventStatus.SCHEDULED)


def reserve(event, now):
    return services.event_reserve(event=event, now=now, actor=TEST_ACTOR)


def row(event, sub):
    """(participation status or None, ledger decision, ledger detail)."""
    p = Participation.objects.filter(event=event, subscription=sub).first()
    r = Reservation.objects.get(event=event, subscription=sub)
    return (p.status if p else None), r.decision, r.detail


def test_higher_category_takes_the_device_from_a_lower_event_not_yet_dispatched(program, july_now):
    """Peak (economic, rank 1) reserves the device; Storm (emergency, rank 3) overlaps and outranks it, and
    Peak is SCHEDULED with the participation RESERVED, so Storm takes it: Peak's participation cancelled (released)
    with ledger RELEASED naming Storm and the rule; Storm's RESERVED naming Peak. Counts: Storm {reserved: 1}.
    The release is audited on the participation (reserved -> cancelled) by the reserving actor."""
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak")
    reserve(peak, july_now)
    storm = scheduled(program, "Storm", category=EventCategory.EMERGENCY, hour=16)
    assert reserve(storm, july_now) == {D.RESERVED: 1}
    assert row(peak, sub) == (RELEASED, D.RELEASED,
                              f"Released: taken by event #{storm.pk} 'Storm' of program smart-ac, which overlaps it "
                              "with higher priority (emergency over economic).")
    assert row(storm, sub) == (ParticipationStatus.RESERVED, D.RESERVED,
                               f"Taken from event #{peak.pk} 'Peak' of program smart-ac (higher priority wins: "
                               "emergency over economic). 0 other event(s) so far in Summer 2026.")
    p = Participation.objects.get(event=peak, subscription=sub)
    assert list(AuditEntry.objects.filter(object_type="events.participation", object_id=str(p.pk)).values_list(
        "actor_label", "from_status", "to_status")) == [("system:tests", "reserved", "cancelled")]


def test_taken_event_does_not_count_toward_the_day_limit(program, rule, july_now):
    """The rule allows 1 event per day. Peak holds the device on 07-15; Storm (reliability) takes it: Peak no
    longer counts, so 0 other events that day and Storm reserves it (not DAY_LIMIT)."""
    rule.max_events_per_day = 1
    rule.save()
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak")
    reserve(peak, july_now)
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    reserve(storm, july_now)
    assert row(storm, sub)[:2] == (ParticipationStatus.RESERVED, D.RESERVED)
    assert row(peak, sub)[:2] == (RELEASED, D.RELEASED)


def test_a_take_over_in_one_span_is_seen_by_the_limits_of_the_next(program, rule, july_now, settings):
    """One enrollment, two devices, one span each (CPM_CHUNK_SIZE = 1). Peak holds device A only; the rule allows 1
    event per day. Storm takes A from Peak in the first span, so Peak no longer counts for the enrollment when the
    second span decides device B: RESERVED, not DAY_LIMIT. The engine reads a span ahead while it writes the one
    before (issue 20), except after a span whose writes release another event's participations: this one."""
    from tests.factories.devices import DeviceFactory, DeviceInstallationFactory

    rule.max_events_per_day = 1
    rule.save()
    first = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak")
    reserve(peak, july_now)
    device = DeviceFactory(last_seen_at=july_now)
    DeviceInstallationFactory(device=device, service_point=first.enrollment.service_point)
    second = ProgramSubscriptionFactory(enrollment=first.enrollment, device=device, start_date=first.start_date,
                                        exclusive=first.exclusive)
    settings.CPM_CHUNK_SIZE = 1
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    assert reserve(storm, july_now) == {D.RESERVED: 2}
    assert row(peak, first)[:2] == (RELEASED, D.RELEASED)
    assert row(storm, first)[:2] == (ParticipationStatus.RESERVED, D.RESERVED)
    assert row(storm, second) == (ParticipationStatus.RESERVED, D.RESERVED,
                                  "0 other event(s) so far in Summer 2026.")


def test_a_device_already_dispatched_stays_in_the_lower_event(program, july_now):
    """Peak (economic) is dispatched: its device is DISPATCHED. Storm (emergency) outranks it but may not take a
    device already told: Storm's ledger OVERLAP says so; Peak keeps it (dispatched)."""
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak")
    reserve(peak, july_now)
    services.event_dispatch(event=peak, now=july_now, actor=TEST_ACTOR)
    storm = scheduled(program, "Storm", category=EventCategory.EMERGENCY, hour=16)
    assert reserve(storm, july_now) == {D.OVERLAP: 1}
    assert row(storm, sub) == (None, D.OVERLAP,
                               f"Already dispatched for event #{peak.pk} 'Peak' of program smart-ac at the same time: "
                               "this event has higher priority (emergency over economic), but a device already "
                               "dispatched stays in its event.")
    assert row(peak, sub)[:2] == (ParticipationStatus.DISPATCHED, D.RESERVED)


def test_a_lower_priority_later_event_does_not_take_the_device(program, july_now):
    """Peak is an emergency (rank 3); Storm, economic (rank 1), comes later: Peak keeps the device and Storm's
    ledger names the higher priority."""
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak", category=EventCategory.EMERGENCY)
    reserve(peak, july_now)
    storm = scheduled(program, "Storm", hour=16)
    reserve(storm, july_now)
    assert row(storm, sub) == (None, D.OVERLAP,
                               f"Already reserved for event #{peak.pk} 'Peak' of program smart-ac at the same time, "
                               "which has higher priority (emergency over economic).")
    assert row(peak, sub)[:2] == (ParticipationStatus.RESERVED, D.RESERVED)


def co_enrolled_programs(now):
    """Two economic programs that allow co-enrollment, ``low`` (priority 0) and ``high`` (priority 5), and one
    device subscribed in both (the same account and service point)."""
    low = ProgramFactory(code="low", allows_co_enrollment=True)
    high = ProgramFactory(code="high", allows_co_enrollment=True, event_priority=5)
    for p in (low, high):
        SeasonFactory(program=p)
        ParticipationRuleFactory(program=p)
    a = active_participant(program=low, device_kwargs={"last_seen_at": now})
    enrollment = EnrollmentFactory(account=a.enrollment.account, service_point=a.enrollment.service_point,
                                   program=high)
    b = ProgramSubscriptionFactory(enrollment=enrollment, device=a.device, exclusive=False)
    return low, high, a, b


def test_program_priority_breaks_a_tie_of_category(july_now):
    """Both events economic (rank 1); program high has priority 5 > 0: its later event takes the device."""
    low, high, a, b = co_enrolled_programs(july_now)
    peak = scheduled(low, "Peak")
    reserve(peak, july_now)
    storm = scheduled(high, "Storm", hour=16)
    reserve(storm, july_now)
    assert row(peak, a) == (RELEASED, D.RELEASED,
                            f"Released: taken by event #{storm.pk} 'Storm' of program high, which overlaps it with "
                            "higher priority (economic events, program priority 5 over 0).")
    assert row(storm, b) == (ParticipationStatus.RESERVED, D.RESERVED,
                             f"Taken from event #{peak.pk} 'Peak' of program low (higher priority wins: economic "
                             "events, program priority 5 over 0). 0 other event(s) so far in Summer 2026.")


def test_opposite_direction_at_equal_priority_is_named(program, july_now):
    """Peak is a load-increase economic event, Storm a load-reduction economic one: equal rank (1, 0), so Peak
    (reserved first) keeps the device; Storm's ledger names the opposite direction."""
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak", direction=EventDirection.INCREASE)
    reserve(peak, july_now)
    storm = scheduled(program, "Storm", hour=16)
    reserve(storm, july_now)
    assert row(storm, sub) == (None, D.OVERLAP,
                               f"Already reserved for event #{peak.pk} 'Peak' of program smart-ac at the same time. "
                               "It overlaps a load-increase event (opposite direction). At equal priority the event "
                               "reserved first keeps the device.")


def test_opposite_direction_take_over_names_the_direction_on_both_sides(program, july_now):
    """Peak (load increase, economic) holds the device; Storm (load reduction, reliability) outranks it and takes
    it; each side's ledger says the other event runs in the opposite direction."""
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak", direction=EventDirection.INCREASE)
    reserve(peak, july_now)
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    reserve(storm, july_now)
    assert row(peak, sub) == (RELEASED, D.RELEASED,
                              f"Released: taken by event #{storm.pk} 'Storm' of program smart-ac, which overlaps it "
                              "with higher priority (reliability over economic). It overlaps a load-reduction event "
                              "(opposite direction).")
    assert row(storm, sub)[2] == (f"Taken from event #{peak.pk} 'Peak' of program smart-ac (higher priority wins: "
                                  "reliability over economic). It overlaps a load-increase event (opposite "
                                  "direction). 0 other event(s) so far in Summer 2026.")


def test_program_declines_an_event_without_incentive(program, july_now):
    """The program pays performance per kWh only (1.25 $/kWh) and declines events without incentive. A
    load-increase event earns no load reduction, so no rule pays it: every candidate NO_INCENTIVE, no
    participation. The overlapping load-reduction event is paid (performance pays reduction) and reserves the
    device, which the declined event did not take."""
    IncentiveRuleFactory(program=program)
    program.declines_events_without_incentive = True
    program.save()
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak", direction=EventDirection.INCREASE)
    assert reserve(peak, july_now) == {D.NO_INCENTIVE: 1}
    assert row(peak, sub) == (None, D.NO_INCENTIVE,
                              "Program smart-ac declines events that carry no incentive: no incentive rule in effect "
                              "pays a load-increase event (per-event payments pay any event, performance payments "
                              "pay load reduction only).")
    storm = scheduled(program, "Storm", hour=16)
    assert reserve(storm, july_now) == {D.RESERVED: 1}


def test_a_per_event_payment_carries_an_incentive_for_either_direction(program, july_now):
    """A per-event payment of $2 pays a load-increase event too: the declining program joins it (RESERVED). A $0
    per-event rule would not count (nothing paid)."""
    IncentiveRuleFactory(program=program, kind="per_event", basis="flat", amount=Decimal("0"))
    program.declines_events_without_incentive = True
    program.save()
    active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    up = scheduled(program, "Up", direction=EventDirection.INCREASE)
    assert reserve(up, july_now) == {D.NO_INCENTIVE: 1}
    IncentiveRuleFactory(program=program, kind="per_event", basis="flat", amount=Decimal("2"))
    assert reserve(up, july_now) == {D.RESERVED: 1}


def test_common_path_reads_no_incentive_rule(program, july_now):
    """A program that joins every event (the default) reads no incentive rule at reservation: the decline check
    costs no query on the common path (the constant query counts of ``test_reservation`` hold as before)."""
    for _ in range(3):
        active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    event = scheduled(program, "Peak")
    with CaptureQueriesContext(connection) as ctx:
        assert reserve(event, july_now) == {D.RESERVED: 3}
    assert not any("programs_incentiverule" in q["sql"] for q in ctx.captured_queries)


# ---------------------------------------------------------------------------- a take-over and the enrollment's limits
def two_device_enrollment(program, now, *, taken_first: bool, third_in_peak: bool = False):
    """One enrollment, devices A and B (and C when ``third_in_peak``) on one service point. Peak is reserved while
    only A (and C) are online, so Peak holds A (and C) and not B; then B comes online. ``taken_first``: A's
    subscription has the lower id (its span comes first), else B's. Returns (peak, a, b, c or None)."""
    from devices.models import Device
    from tests.factories.devices import DeviceFactory, DeviceInstallationFactory

    def add(enrollment, seen):
        device = DeviceFactory(last_seen_at=seen)
        DeviceInstallationFactory(device=device, service_point=enrollment.service_point)
        return ProgramSubscriptionFactory(enrollment=enrollment, device=device, start_date=first.start_date,
                                          exclusive=first.exclusive)

    first = active_participant(program=program, device_kwargs={"last_seen_at": None if taken_first is False
                                                               else now})
    second = add(first.enrollment, None if taken_first else now)
    a, b = (first, second) if taken_first else (second, first)
    c = add(first.enrollment, now) if third_in_peak else None
    peak = scheduled(program, "Peak")
    reserve(peak, now)
    Device.objects.filter(pk=b.device_id).update(last_seen_at=now)
    assert Participation.objects.filter(event=peak).count() == (2 if third_in_peak else 1)
    return peak, a, b, c


def ledger_of(event):
    return sorted(Reservation.objects.filter(event=event).values_list("subscription_id", "decision", "detail"))


@pytest.mark.parametrize("taken_first", [True, False], ids=["taken-device-first", "taken-device-second"])
@pytest.mark.parametrize("how", ["one-span", "span-per-candidate", "chunks"])
def test_a_take_over_frees_the_day_limit_of_the_whole_enrollment_however_the_candidates_are_split(
        program, rule, july_now, settings, taken_first, how):
    """The rule allows 1 event per day; Peak holds device A of a two-device enrollment, not B. Storm (reliability)
    takes A from Peak, so the enrollment takes part in Storm only that day: Peak no longer counts for ANY of its
    devices, and Storm reserves both A and B. The same ledger whatever the order of the two subscriptions and
    however the candidates are split (one span, a span each, or chunks in their own transactions as on workers),
    and on a re-run. Before: B got DAY_LIMIT when it was decided in the same span as A or before A's span."""
    rule.max_events_per_day = 1
    rule.save()
    peak, a, b, _ = two_device_enrollment(program, july_now, taken_first=taken_first)
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    if how == "span-per-candidate":
        settings.CPM_CHUNK_SIZE = 1
    counts = services.event_reserve(event=storm, now=july_now, actor=TEST_ACTOR,
                                    chunk_size=1 if how == "chunks" else None)
    assert counts == {D.RESERVED: 2}
    assert row(peak, a)[:2] == (RELEASED, D.RELEASED)
    assert row(storm, a) == (ParticipationStatus.RESERVED, D.RESERVED,
                             f"Taken from event #{peak.pk} 'Peak' of program smart-ac (higher priority wins: "
                             "reliability over economic). 0 other event(s) so far in Summer 2026.")
    assert row(storm, b) == (ParticipationStatus.RESERVED, D.RESERVED, "0 other event(s) so far in Summer 2026.")
    first = ledger_of(storm)
    assert reserve(storm, july_now) == {D.RESERVED: 2}
    assert ledger_of(storm) == first  # the take is still named: an earlier run of Storm released Peak's row


@pytest.mark.parametrize("how", ["one-span", "span-per-candidate", "chunks"])
def test_an_event_the_enrollment_keeps_a_device_in_still_counts_toward_its_day_limit(
        program, rule, july_now, settings, how):
    """Peak holds devices A and C of one enrollment; C goes offline before Storm, so Storm can take A but not C:
    the enrollment stays in Peak through C whatever Storm does. With 1 event per day, Storm reserves none of its
    devices (A and B: DAY_LIMIT, C: OFFLINE) and Peak keeps A and C. Before: A was reserved (its own take ignored
    Peak), leaving the enrollment in two events that day."""
    from devices.models import Device

    rule.max_events_per_day = 1
    rule.save()
    peak, a, b, c = two_device_enrollment(program, july_now, taken_first=True, third_in_peak=True)
    Device.objects.filter(pk=c.device_id).update(last_seen_at=None)
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    if how == "span-per-candidate":
        settings.CPM_CHUNK_SIZE = 1
    counts = services.event_reserve(event=storm, now=july_now, actor=TEST_ACTOR,
                                    chunk_size=1 if how == "chunks" else None)
    assert counts == {D.DAY_LIMIT: 2, D.OFFLINE: 1}
    assert [row(storm, s)[:2] for s in (a, b, c)] == [(None, D.DAY_LIMIT), (None, D.DAY_LIMIT), (None, D.OFFLINE)]
    assert [row(peak, s)[:2] for s in (a, c)] == [(ParticipationStatus.RESERVED, D.RESERVED)] * 2
    assert reserve(storm, july_now) == {D.DAY_LIMIT: 2, D.OFFLINE: 1}


@pytest.mark.parametrize("how", ["one-span", "span-per-candidate", "chunks"])
def test_a_target_that_reserves_an_enrollment_takes_it_whole_from_the_lower_event(
        program, rule, july_now, settings, how):
    """Storm needs 2 kW. Its rotation picks B (3 kW, the larger) alone; but B passes the day limit only because
    Storm takes A (1 kW) from Peak, so that the enrollment is in Storm only that day. Storm reserves A too (beyond
    the target): Peak releases A, the enrollment takes part in one event that day."""
    from devices.models import Device

    rule.max_events_per_day = 1
    rule.save()
    peak, a, b, _ = two_device_enrollment(program, july_now, taken_first=True)
    Device.objects.filter(pk=a.device_id).update(capacity_kw=Decimal("1.0"))
    Device.objects.filter(pk=b.device_id).update(capacity_kw=Decimal("3.0"))
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    storm.target_kw = Decimal("2.0")
    storm.save()
    if how == "span-per-candidate":
        settings.CPM_CHUNK_SIZE = 1
    counts = services.event_reserve(event=storm, now=july_now, actor=TEST_ACTOR,
                                    chunk_size=1 if how == "chunks" else None)
    assert counts == {D.RESERVED: 2}
    assert [row(storm, s)[:2] for s in (a, b)] == [(ParticipationStatus.RESERVED, D.RESERVED)] * 2
    assert row(peak, a)[:2] == (RELEASED, D.RELEASED)
    assert reserve(storm, july_now) == {D.RESERVED: 2}


def test_a_target_that_passes_over_a_taker_leaves_its_enrollment_in_the_lower_event(program, rule, july_now):
    """The same, but a second, single-device enrollment C (5 kW) meets the 2 kW target alone: A and B are not
    needed (TARGET_MET), Peak keeps A, and the enrollment stays in Peak only."""
    rule.max_events_per_day = 1
    rule.save()
    peak, a, b, _ = two_device_enrollment(program, july_now, taken_first=True)
    c = active_participant(program=program, device_kwargs={"last_seen_at": july_now, "capacity_kw": Decimal("5")})
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    storm.target_kw = Decimal("2.0")
    storm.save()
    assert reserve(storm, july_now) == {D.RESERVED: 1, D.TARGET_MET: 2}
    assert [row(storm, s)[:2] for s in (a, b, c)] == [(None, D.TARGET_MET), (None, D.TARGET_MET),
                                                      (ParticipationStatus.RESERVED, D.RESERVED)]
    assert row(peak, a)[:2] == (ParticipationStatus.RESERVED, D.RESERVED)


def mixed_population(program, now, seed):
    """A seeded mix for the take-over consistency checks: 10 enrollments of 1-3 devices (capacity 1-4 kW), Peak
    (economic) reserved while about a third of the devices are offline, then some come online and a few go offline.
    Subscriptions are created enrollment by enrollment, but a random few get a device added last, so an
    enrollment's subscriptions are not always neighbours. Returns Peak."""
    import random

    from devices.models import Device

    rnd = random.Random(seed)
    firsts, later = [], []
    for _ in range(10):
        sub = active_participant(program=program, device_kwargs={
            "last_seen_at": now if rnd.random() < 0.7 else None, "capacity_kw": Decimal(rnd.randint(1, 4))})
        firsts.append(sub)
        for _ in range(rnd.choice((0, 0, 1, 2))):
            if rnd.random() < 0.3:
                later.append(sub)
            else:
                _add_device(sub, now if rnd.random() < 0.6 else None, rnd)
    for sub in later:
        _add_device(sub, now if rnd.random() < 0.6 else None, rnd)
    peak = scheduled(program, "Peak")
    reserve(peak, now)
    devices = list(Device.objects.order_by("pk").values_list("pk", flat=True))
    online = [pk for pk in devices if rnd.random() < 0.8]
    Device.objects.filter(pk__in=online).update(last_seen_at=now)
    Device.objects.exclude(pk__in=online).update(last_seen_at=None)
    return peak


def _add_device(first, seen, rnd):
    from tests.factories.devices import DeviceFactory, DeviceInstallationFactory

    device = DeviceFactory(last_seen_at=seen, capacity_kw=Decimal(rnd.randint(1, 4)))
    DeviceInstallationFactory(device=device, service_point=first.enrollment.service_point)
    return ProgramSubscriptionFactory(enrollment=first.enrollment, device=device, start_date=first.start_date,
                                      exclusive=first.exclusive)


@pytest.mark.parametrize("target_kw", [None, Decimal("9")], ids=["no-target", "target-9kW"])
@pytest.mark.parametrize("seed", range(4))
def test_a_take_over_decides_the_same_however_the_candidates_are_split(program, rule, july_now, settings, seed,
                                                                        target_kw):
    """Seeded mixes of multi-device enrollments, a day limit of 1 and a higher-priority Storm overlapping Peak:
    the same ledger (decision and words per candidate), the same participations in Storm and in Peak, in one span,
    in a span per candidate and in chunks in their own transactions (as on workers); and a re-run changes
    nothing. Afterwards no enrollment takes part in both events."""
    from django.db import transaction

    rule.max_events_per_day = 1
    rule.save()
    peak = mixed_population(program, july_now, seed)
    storm = scheduled(program, "Storm", category=EventCategory.RELIABILITY, hour=16)
    storm.target_kw = target_kw
    storm.save()

    def state():
        live = Participation.objects.exclude(status=RELEASED)
        return (ledger_of(storm), sorted(live.filter(event=storm).values_list("subscription_id", flat=True)),
                sorted(live.filter(event=peak).values_list("subscription_id", flat=True)),
                sorted(live.filter(event=peak).values_list("enrollment_id", flat=True).distinct()),
                sorted(live.filter(event=storm).values_list("enrollment_id", flat=True).distinct()))

    seen = {}
    for how in ("one-span", "span-per-candidate", "chunks"):
        settings.CPM_CHUNK_SIZE = 1 if how == "span-per-candidate" else 5000
        with transaction.atomic():
            services.event_reserve(event=storm, now=july_now, actor=TEST_ACTOR,
                                   chunk_size=1 if how == "chunks" else None)
            first = state()
            services.event_reserve(event=storm, now=july_now, actor=TEST_ACTOR,
                                   chunk_size=1 if how == "chunks" else None)
            assert state() == first, f"{how}: a re-run changed the ledger"
            seen[how] = first
            transaction.set_rollback(True)
    assert seen["span-per-candidate"] == seen["one-span"]
    assert seen["chunks"] == seen["one-span"]
    _, in_storm, _, peak_enrollments, storm_enrollments = seen["one-span"]
    assert in_storm  # something was reserved
    assert not set(peak_enrollments) & set(storm_enrollments)  # the day limit holds for every enrollment


def test_cancelling_the_higher_event_gives_the_taken_devices_back_to_the_lower_one(
        program, july_now, django_capture_on_commit_callbacks):
    """QA: Storm (emergency) took the device from Peak (economic, not yet dispatched); Storm was then cancelled (a
    false alarm) and the device stayed released from Peak, which was dispatched without it. Cancelling an event
    now runs the reservation again for the scheduled events it took devices from (after commit), so Peak gets the
    device back with a fresh ledger decision."""
    sub = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    peak = scheduled(program, "Peak")
    reserve(peak, july_now)
    storm = scheduled(program, "Storm", category=EventCategory.EMERGENCY, hour=16)
    reserve(storm, july_now)
    assert row(peak, sub)[:2] == (RELEASED, D.RELEASED)
    with django_capture_on_commit_callbacks(execute=True):
        services.event_cancel(event=storm, reason="false alarm", now=july_now, actor=TEST_ACTOR)
    assert row(peak, sub) == (ParticipationStatus.RESERVED, D.RESERVED, "0 other event(s) so far in Summer 2026.")
    assert Participation.objects.get(event=storm, subscription=sub).status == RELEASED
