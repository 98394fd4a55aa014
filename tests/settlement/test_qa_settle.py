"""QA pass (settle): hard cases of settlement and dispatch checked against the published terms of real programs
(shared/data/programs/real-programs.json); expected kWh, kW and dollars worked by hand in each test's docstring."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from events import services as event_services
from events.choices import DispatchKind, EventStatus, OptOutChannel, ParticipationStatus
from events.models import DispatchMessage, OptOut, Participation
from programs.choices import (
    DeviceType,
    IncentiveBasis,
    IncentiveKind,
    PerformanceMeasurement,
    ProgramType,
    SettlementTiming,
)
from settlement import services
from settlement.choices import Channel, LineKind, PeriodKind
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
SEASON_NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)
START = dt.datetime(2026, 7, 15, 23, 0, tzinfo=dt.UTC)  # Wednesday 16:00 PDT


def _maine_battery_program():
    """Efficiency Maine small battery: $200 per kW of average discharge over the season's events, an opted-out event
    counting 0 kW, partial participation prorated over the event length; plus PGE's battery pilot $1.70/kWh."""
    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY], settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KW, basis=IncentiveBasis.PER_KW,
                         amount=Decimal("200"), opted_out_counts_zero=True)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.70"))
    return program, season


def _season_end(account, program, season):
    return services.customer_settlement_calculate(account=account, program=program,
                                                  period_kind=PeriodKind.SEASON_END, period_start=season.start_date,
                                                  period_end=season.end_date + dt.timedelta(days=1), now=SEASON_NOW,
                                                  actor=TEST_ACTOR)


def test_unavailability_declared_during_an_event_opts_out_then_and_keeps_what_was_delivered():
    """Efficiency Maine: "partial participation is prorated over the event length (e.g. 9 kW for 1 h of a 3 h event
    = 3 kW)". A 9 kW battery is dispatched for 16:00-19:00 PDT and discharges 9 kWh in 16:00-17:00; at 17:00 the
    customer (through the CSR) declares the house unavailable 17:00-23:00. The device stops then: the participation is
    opted out at 17:00 (channel "unavailability"), the aggregator gets a RELEASE message for the device, and
    settlement counts the hour delivered: 9 kWh x $1.70 = $15.30; kW 9 / 3 h = 3 kW x $200 = $600.00; season
    $615.30. (It was released as if it had never begun: no settlement at all, $0.00.)
    The same declaration made after the event ended (19:30, the tick not yet run) changes nothing."""
    program, season = _maine_battery_program()
    agg = AggregatorFactory(code="maine-cloud")
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("9"), "aggregator": agg})
    other = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                               "capacity_kw": Decimal("9"), "aggregator": agg})
    for s in (sub, other):
        write_hourly(service_point=s.enrollment.service_point, device=s.device, channel=Channel.RECEIVED,
                     first=dt.date(2026, 7, 14), last=dt.date(2026, 7, 16), kwh=0.0,
                     overrides={START: 9.0, START + dt.timedelta(hours=1): 9.0 if s is other else 0.0,
                                START + dt.timedelta(hours=2): 9.0 if s is other else 0.0})
    event = EventFactory(program=program, start=START, end=START + dt.timedelta(hours=3), status=EventStatus.ACTIVE)
    p = ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.DISPATCHED)
    q = ParticipationFactory(event=event, subscription=other, status=ParticipationStatus.DISPATCHED)
    at = START + dt.timedelta(hours=1)
    event_services.unavailability_create(enrollment=sub.enrollment, start=at, end=START + dt.timedelta(hours=6),
                                         reason="leaving", now=at, actor=TEST_ACTOR)
    after_the_end = START + dt.timedelta(hours=3, minutes=30)
    event_services.unavailability_create(enrollment=other.enrollment, start=START + dt.timedelta(hours=2),
                                         end=START + dt.timedelta(hours=6), now=after_the_end, actor=TEST_ACTOR)
    p.refresh_from_db()
    q.refresh_from_db()
    assert (p.status, p.opted_out_at) == (ParticipationStatus.OPTED_OUT, at)
    assert OptOut.objects.get(participation=p).channel == OptOutChannel.UNAVAILABILITY
    assert (q.status, q.opted_out_at) == (ParticipationStatus.DISPATCHED, None)
    msg = DispatchMessage.objects.get(kind=DispatchKind.RELEASE)
    assert msg.payload["released_devices"] == [sub.device.aggregator_device_id]

    Participation.objects.filter(pk=q.pk).update(status=ParticipationStatus.PARTICIPATED)
    event.status = EventStatus.COMPLETED
    event.save()
    with run_on_commit():
        services.event_settle(event=event, now=SEASON_NOW, actor=TEST_ACTOR)
    es = EventSettlement.objects.get(participation=p)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("9.0000"), Decimal("3.0000"), Decimal("15.30"))
    cs = _season_end(sub.enrollment.account, program, season)
    assert cs.lines.get(kind=LineKind.PERFORMANCE_KW).amount == Decimal("600.00")
    assert cs.total_amount == Decimal("615.30")
    # The other battery delivered the whole event: 27 kWh, 9 kW.
    assert EventSettlement.objects.get(participation=q).kw_drop_avg == Decimal("9.0000")


# ------------------------------------------------------------------------------------------------------------------
# Events the customer was called for and missed: declared unavailable (released or skipped) or device offline.
from events.choices import ReservationDecision  # noqa: E402
from events.models import Reservation  # noqa: E402

JULY = [dt.datetime(2026, 7, d, 23, tzinfo=dt.UTC) for d in (1, 8, 15, 22)]  # Wednesdays 16:00-19:00 PDT


def _missed_season(program, sub):
    """Four 3-hour events on the July Wednesdays, all called for ``sub``: July 1 taken part in; July 8 reserved,
    then released when the customer declared July 8 unavailable (the day before); July 15 skipped at reservation as
    UNAVAILABLE (declared before it); July 22 skipped as OFFLINE (device not seen online). Returns the events."""
    events = [EventFactory(program=program, start=s, end=s + dt.timedelta(hours=3), status=EventStatus.SCHEDULED)
              for s in JULY]
    ParticipationFactory(event=events[0], subscription=sub, status=ParticipationStatus.PARTICIPATED)
    released = ParticipationFactory(event=events[1], subscription=sub, status=ParticipationStatus.RESERVED)
    event_services.unavailability_create(enrollment=sub.enrollment, start=JULY[1] - dt.timedelta(hours=16),
                                         end=JULY[1] + dt.timedelta(hours=8), reason="away",
                                         now=JULY[1] - dt.timedelta(days=1), actor=TEST_ACTOR)
    released.refresh_from_db()
    assert released.status == ParticipationStatus.CANCELLED
    event_services.unavailability_create(enrollment=sub.enrollment, start=JULY[2] - dt.timedelta(hours=16),
                                         end=JULY[2] + dt.timedelta(hours=8), now=JULY[2] - dt.timedelta(days=2),
                                         actor=TEST_ACTOR)
    for event, decision in ((events[2], ReservationDecision.UNAVAILABLE), (events[3], ReservationDecision.OFFLINE)):
        Reservation.objects.create(event=event, subscription=sub, enrollment=sub.enrollment, device=sub.device,
                                   service_point=sub.enrollment.service_point, decision=decision,
                                   detail="skipped", decided_at=event.start - dt.timedelta(days=1))
    for event in events:
        event.status = EventStatus.COMPLETED
        event.save(update_fields=["status"])
    return events


def test_pge_energy_partner_does_not_pay_a_site_that_took_part_in_a_quarter_of_the_event_hours():
    """PGE Energy Partner Smart Thermostat: "$60 per site per season ... participate in >= 50 % of the season's event
    hours". Four 3-hour events called the site (12 h); it took part in one (3 h); it declared itself unavailable
    for two (one released after reservation, one skipped at reservation) and its thermostat was offline for the
    fourth: 3 / 12 = 25 % < 50 %: $0.00. (Only the event taken part in was counted: 3 / 3 = 100 %, paid $60.00.)
    A second site that took part in all four: 100 %: $60.00."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, basis=IncentiveBasis.FLAT,
                         amount=Decimal("60"), min_participation_share=Decimal("0.5"))
    sub = active_participant(program=program)
    events = _missed_season(program, sub)
    full = active_participant(program=program)
    for event in events:
        ParticipationFactory(event=event, subscription=full, status=ParticipationStatus.PARTICIPATED)
    cs = _season_end(sub.enrollment.account, program, season)
    assert cs.total_amount == Decimal("0.00")
    assert "Not paid: 25.0% of event hours not opted out < minimum 50.0%" in cs.explanation
    assert _season_end(full.enrollment.account, program, season).total_amount == Decimal("60.00")


def test_efficiency_maine_counts_events_declared_unavailable_or_missed_offline_as_zero_kw():
    """Efficiency Maine small battery: kW = average discharge across all events, "an opted-out ... event counts as
    0 kW". A 6 kW battery discharging 6 kWh in each hour of the July 1 event (6 kW); July 8 released (declared
    unavailable), July 15 skipped as unavailable, July 22 skipped offline: (6 + 0 + 0 + 0) / 4 = 1.5 kW x $200 =
    $300.00, plus July 1's 18 kWh x $1.70 = $30.60: $330.60. (Only July 1 counted: 6 kW, $1,200 + $30.60.)"""
    program, season = _maine_battery_program()
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("6")})
    write_hourly(service_point=sub.enrollment.service_point, device=sub.device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 1), last=dt.date(2026, 7, 2), kwh=0.0,
                 overrides={JULY[0] + dt.timedelta(hours=h): 6.0 for h in range(3)})
    events = _missed_season(program, sub)
    with run_on_commit():
        services.event_settle(event=events[0], now=SEASON_NOW, actor=TEST_ACTOR)
    cs = _season_end(sub.enrollment.account, program, season)
    line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (line.quantity, line.amount) == (Decimal("1.5000"), Decimal("300.00"))
    assert "(1 of 4)" not in line.description and "(4 of 4)" in line.description
    assert cs.total_amount == Decimal("330.60")


# ------------------------------------------------------------------------------------------------------------------
# Eversource CT EV Managed Charging: two monthly rewards, only one of them forfeited by an opted-out event.
def test_eversource_opt_out_forfeits_that_months_event_reward_not_the_off_peak_reward():
    """Eversource CT EV Managed Charging (real-programs.json): "$10 per month: at least 80 % of home charging
    off-peak" (no opt-out condition) and "$20 per month, June-September: no opt-out of peak demand events in that
    month"; "the $20 for that summer month is earned only if no event that month is opted out of". The sample
    program (``load_sample_programs``) has both monthly rules and an opt-out penalty "forfeit_month" rule described
    as "An opted-out event forfeits that month's $20 event reward."
    One EV charger enrolled all summer 2026, opted out of one July event: June $10 + $20, July $10 only, August
    and September $10 + $20: $100.00 at season end (the $10 off-peak reward of July was forfeited too: $90.00)."""
    from django.core.management import call_command

    from programs.models import Program, Season

    call_command("load_sample_programs", "--years", "2026", stdout=__import__("io").StringIO())
    program = Program.objects.get(code="eversource-ct-ev-managed-charging")
    season = Season.objects.get(program=program, name="Summer 2026")
    sub = active_participant(program=program, start=dt.date(2026, 5, 1),
                             device_kwargs={"device_type": DeviceType.EV_CHARGER})
    start = dt.datetime(2026, 7, 15, 19, 0, tzinfo=dt.UTC)  # 15:00 EDT
    event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=2))
    ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=start + dt.timedelta(minutes=30))
    cs = _season_end(sub.enrollment.account, program, season)
    monthly = sorted((x.description[:26], x.amount) for x in cs.lines.filter(kind=LineKind.MONTHLY))
    assert [a for d, a in monthly if d.startswith("Monthly incentive 2026-07")] == [Decimal("10.00")]
    assert cs.total_amount == Decimal("100.00")


def test_eversource_unavailability_declared_over_an_event_forfeits_that_months_event_reward():
    """Eversource CT: the $20 of a summer month "is earned only if no event that month is opted out of". The customer
    declares the July 15 event's afternoon unavailable the day before, after the charger was reserved: the
    reservation is released (the charger is not called), which is an opt-out made ahead: July pays the $10
    off-peak reward only; June, August, September $30 each: $100.00 (the declaration escaped the forfeit: $120.00).
    """
    from django.core.management import call_command

    from programs.models import Program, Season

    call_command("load_sample_programs", "--years", "2026", stdout=__import__("io").StringIO())
    program = Program.objects.get(code="eversource-ct-ev-managed-charging")
    season = Season.objects.get(program=program, name="Summer 2026")
    sub = active_participant(program=program, start=dt.date(2026, 5, 1),
                             device_kwargs={"device_type": DeviceType.EV_CHARGER})
    start = dt.datetime(2026, 7, 15, 19, 0, tzinfo=dt.UTC)  # 15:00 EDT
    event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=2),
                         status=EventStatus.SCHEDULED)
    p = ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.RESERVED)
    event_services.unavailability_create(enrollment=sub.enrollment, start=start - dt.timedelta(hours=3),
                                         end=start + dt.timedelta(hours=6), now=start - dt.timedelta(days=1),
                                         actor=TEST_ACTOR)
    p.refresh_from_db()
    assert p.status == ParticipationStatus.CANCELLED
    event.status = EventStatus.COMPLETED
    event.save(update_fields=["status"])
    cs = _season_end(sub.enrollment.account, program, season)
    july = [x.amount for x in cs.lines.filter(kind=LineKind.MONTHLY) if "2026-07" in x.description]
    assert july == [Decimal("10.00")]
    assert cs.total_amount == Decimal("100.00")


def test_a_battery_set_inactive_during_an_event_keeps_what_it_delivered_before(monkeypatch,
                                                                              django_capture_on_commit_callbacks):
    """Efficiency Maine terms prorate partial participation over the event length. A 9 kW battery dispatched for
    16:00-19:00 PDT discharges 9 kWh in 16:00-17:00; at 17:00 its aggregator reports it faulted and it is set
    inactive. Its participation in the event under way is not released (it took part until then): settled on its
    telemetry, 9 kWh x $1.70 = $15.30, 9 kWh / 3 h = 3 kW x $200 = $600.00 at season end: $615.30. (It was released,
    i.e. cancelled, and settled nothing: $0.00.) Its reservation in a later event (July 22) is released as before."""
    from devices.choices import DeviceStatus
    from devices.services import device_set_status
    from events.services import release

    program, season = _maine_battery_program()
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("9")})
    write_hourly(service_point=sub.enrollment.service_point, device=sub.device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 14), last=dt.date(2026, 7, 16), kwh=0.0, overrides={START: 9.0})
    event = EventFactory(program=program, start=START, end=START + dt.timedelta(hours=3), status=EventStatus.ACTIVE)
    p = ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.DISPATCHED)
    later = EventFactory(program=program, start=JULY[3], end=JULY[3] + dt.timedelta(hours=3),
                         status=EventStatus.SCHEDULED)
    q = ParticipationFactory(event=later, subscription=sub, status=ParticipationStatus.RESERVED)
    at = START + dt.timedelta(hours=1)
    monkeypatch.setattr(release, "clock", lambda: at)
    with django_capture_on_commit_callbacks(execute=True):
        device_set_status(device=sub.device, status=DeviceStatus.INACTIVE, now=at, actor=TEST_ACTOR)
    p.refresh_from_db()
    q.refresh_from_db()
    assert (p.status, q.status) == (ParticipationStatus.DISPATCHED, ParticipationStatus.CANCELLED)
    event.status = EventStatus.COMPLETED
    event.save(update_fields=["status"])
    with run_on_commit():
        services.event_settle(event=event, now=SEASON_NOW, actor=TEST_ACTOR)
    es = EventSettlement.objects.get(participation=p)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("9.0000"), Decimal("3.0000"), Decimal("15.30"))
    later.status = EventStatus.CANCELLED
    later.save(update_fields=["status"])
    assert _season_end(sub.enrollment.account, program, season).total_amount == Decimal("615.30")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL=postgres://...)")
def test_the_missed_events_of_a_chunk_are_read_from_their_partial_index():
    """Season-end incentives read, per chunk of accounts, the ledger rows of events an enrollment missed (offline,
    declared unavailable, released): from ``reservation_missed_idx``, which holds only those rows, never every event
    ledger row of the chunk's enrollments (50 events of 1,000,000 customers: 50,000,000 rows)."""
    from events.models import Reservation
    from settlement.services.customer_settlement import MISSED_DECISIONS
    from tests.plans import assert_index_scans

    assert_index_scans({"reservation_missed_idx": Reservation.objects.filter(
        enrollment_id__any=[1, 2, 3], decision__in=MISSED_DECISIONS).values("event_id")})
