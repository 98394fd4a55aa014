"""QA pass (hard): releases that reach an event already over but not yet completed by the tick; expected kWh, kW
and dollars worked by hand in each test's docstring from the program's published terms
(shared/data/programs/real-programs.json)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from devices.choices import DeviceStatus
from devices.services import device_set_status
from events.choices import EventStatus, ParticipationStatus
from events.services import release
from programs.choices import DeviceType, IncentiveBasis, IncentiveKind, PerformanceMeasurement, ProgramType
from settlement import services
from settlement.choices import Channel
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 7, 15, 23, 0, tzinfo=dt.UTC)  # Wednesday 16:00 PDT
SETTLE_NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)


def test_a_battery_set_inactive_after_the_event_ended_keeps_the_event(monkeypatch,
                                                                      django_capture_on_commit_callbacks):
    """PGE Smart Battery Pilot: $1.70 per kWh discharged in an event. A 9 kW battery is dispatched for 16:00-19:00
    PDT and discharges 9 kWh every hour (27 kWh). At 19:30, before the tick has completed the event (still ACTIVE),
    its aggregator reports it faulted and it is set inactive. The event is over: the battery took part in all of
    it, so nothing is released; settled on its telemetry: 27 kWh x $1.70 = $45.90, 27 kWh / 3 h = 9 kW.
    (It was released, i.e. cancelled, like a reservation of a future event, and settled nothing: $0.00.)"""
    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY])
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.70"))
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("9")})
    write_hourly(service_point=sub.enrollment.service_point, device=sub.device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 15), last=dt.date(2026, 7, 16), kwh=0.0,
                 overrides={START + dt.timedelta(hours=h): 9.0 for h in range(3)})
    event = EventFactory(program=program, start=START, end=START + dt.timedelta(hours=3), status=EventStatus.ACTIVE)
    p = ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.DISPATCHED)
    at = START + dt.timedelta(hours=3, minutes=30)
    monkeypatch.setattr(release, "clock", lambda: at)
    with django_capture_on_commit_callbacks(execute=True):
        device_set_status(device=sub.device, status=DeviceStatus.INACTIVE, now=at, actor=TEST_ACTOR)
    p.refresh_from_db()
    assert p.status == ParticipationStatus.DISPATCHED
    event.status = EventStatus.COMPLETED
    event.save(update_fields=["status"])
    with run_on_commit():
        services.event_settle(event=event, now=SETTLE_NOW, actor=TEST_ACTOR)
    es = EventSettlement.objects.get(participation=p)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("27.0000"), Decimal("9.0000"), Decimal("45.90"))


def _increase_event_settlements(*, charges_negative: bool):
    """A load-increase event (the utility asks for more load, e.g. to absorb midday solar) in a program paying
    $1.25 per kWh of performance. Hourly readings 2.0 kWh on every day (CAISO 10-in-10: baseline 2.0 kW, day-of
    adjustment 1.0); in the three event hours (16:00-19:00 PDT 2026-07-15) A reads 0.5 kWh (it cut its load: 1.5
    kWh below the baseline an hour, 4.5 kWh) and B reads 3.5 kWh (it raised its load as asked: -4.5 kWh "avoided").
    Returns the settlements of A and B."""
    from events.choices import EventDirection
    from tests.factories.settlement import event_hours

    program = ProgramFactory(charges_negative_performance=charges_negative)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    event = EventFactory(program=program, direction=EventDirection.INCREASE)
    out = []
    for kwh in (0.5, 3.5):
        sub = active_participant(program=program)
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), kwh=2.0, overrides={h: kwh for h in event_hours()})
        out.append(ParticipationFactory(event=event, subscription=sub))
    with run_on_commit():
        services.event_settle(event=event, now=SETTLE_NOW, actor=TEST_ACTOR)
    return [EventSettlement.objects.get(participation=p) for p in out]


def test_a_load_increase_event_pays_no_performance_for_load_reduction():
    """Performance payments pay load reduction below the baseline, so they pay a load-reduction event only (the
    rule in ``events.priority``, by which a program declining events without incentive declines this one). In the
    load-increase event A, which cut its load against the event's direction, was paid 4.5 kWh x $1.25 = $5.63 for
    doing the opposite of what was asked; now its performance line is $0.00 and says why. B, which raised its load as
    asked, is neither paid nor, in a program charging negative performance, charged 4.5 x $1.25 = $5.63 for it
    (it was charged -$5.63). The measured kWh stay as measured (4.5 and -4.5)."""
    a, b = _increase_event_settlements(charges_negative=False)
    assert (a.kwh_avoided, a.amount) == (Decimal("4.5000"), Decimal("0.00"))
    assert (b.kwh_avoided, b.amount) == (Decimal("-4.5000"), Decimal("0.00"))
    assert ("load-increase event: performance payments pay load reduction only, so $0"
            in a.components[0]["description"])
    EventSettlement.objects.all().delete()
    a, b = _increase_event_settlements(charges_negative=True)
    assert (a.amount, b.amount) == (Decimal("0.00"), Decimal("0.00"))


def test_a_load_increase_event_is_left_out_of_the_season_kw_average():
    """Efficiency Maine small battery: $200 per kW of average discharge over the season's events (performance:
    load reduction). Two events of the season, 16:00-19:00 PDT: July 15 a load-reduction event, the 6 kW battery
    discharges 6 kWh every hour (18 kWh / 3 h = 6 kW); July 22 a load-increase event (the battery is asked to
    charge: it discharges nothing, 0 kW). A load-increase event carries no performance payment (the rule of
    ``events.priority``; the per-kWh line of such an event is $0), so it is not an event of the per-kW average:
    6 kW x $200 = $1,200.00 (it was averaged in: (6 + 0) / 2 = 3 kW, $600.00)."""
    from events.choices import EventDirection
    from programs.choices import SettlementTiming
    from settlement.choices import LineKind, PeriodKind
    from tests.factories.programs import SeasonFactory

    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY], settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KW, basis=IncentiveBasis.PER_KW,
                         amount=Decimal("200"), opted_out_counts_zero=True)
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("6")})
    later = START + dt.timedelta(days=7)
    write_hourly(service_point=sub.enrollment.service_point, device=sub.device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 15), last=dt.date(2026, 7, 23), kwh=0.0,
                 overrides={START + dt.timedelta(hours=h): 6.0 for h in range(3)})
    for start, direction in ((START, EventDirection.REDUCE), (later, EventDirection.INCREASE)):
        event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=3), direction=direction)
        ParticipationFactory(event=event, subscription=sub)
        with run_on_commit():
            services.event_settle(event=event, now=SETTLE_NOW + dt.timedelta(days=7), actor=TEST_ACTOR)
    cs = services.customer_settlement_calculate(
        account=sub.enrollment.account, program=program, period_kind=PeriodKind.SEASON_END,
        period_start=season.start_date, period_end=season.end_date + dt.timedelta(days=1),
        now=dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC), actor=TEST_ACTOR)
    line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (line.quantity, line.amount) == (Decimal("6.0000"), Decimal("1200.00"))
    assert "(1 of 1)" in line.description and "1 load-increase event left out" in line.description


def test_a_reversed_event_settlement_is_left_out_of_the_season_kw_average():
    """ConnectedSolutions-like battery program settled after each event: $1.70 per kWh discharged (PGE battery pilot)
    and, at season end, $200 per kW of average discharge over the season's events. Two events, 16:00-19:00 PDT:
    July 15 the 6 kW battery discharges 6 kWh every hour (18 kWh, 6 kW: $30.60); July 22 it reports 3 kWh every
    hour (9 kWh, 3 kW: $15.30). The July 22 settlement is approved, then reversed entirely as settled in error (a
    negative line of $15.30): its measurement no longer pays anything, so it is not an event of the season's
    per-kW average either: 6 kW x $200 = $1,200.00 (it was still averaged in: (6 + 3) / 2 = 4.5 kW, $900.00)."""
    from programs.choices import SettlementTiming
    from settlement.choices import LineKind, PeriodKind
    from tests.factories.programs import SeasonFactory

    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY],
                             settlement_timing=SettlementTiming.AFTER_EVENT)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KW, basis=IncentiveBasis.PER_KW,
                         amount=Decimal("200"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.70"))
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("6")})
    later = START + dt.timedelta(days=7)
    overrides = {START + dt.timedelta(hours=h): 6.0 for h in range(3)}
    overrides |= {later + dt.timedelta(hours=h): 3.0 for h in range(3)}
    write_hourly(service_point=sub.enrollment.service_point, device=sub.device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 15), last=dt.date(2026, 7, 23), kwh=0.0, overrides=overrides)
    settlements = []
    for start in (START, later):
        event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=3))
        p = ParticipationFactory(event=event, subscription=sub)
        with run_on_commit():
            services.event_settle(event=event, now=SETTLE_NOW + dt.timedelta(days=7), actor=TEST_ACTOR)
        settlements.append(EventSettlement.objects.get(participation=p))
    assert [es.amount for es in settlements] == [Decimal("30.60"), Decimal("15.30")]
    now = SETTLE_NOW + dt.timedelta(days=8)
    for es in settlements:
        services.event_settlement_approve(settlement=es, now=now, actor=TEST_ACTOR)
    services.event_settlement_reverse(settlement=settlements[1], reason="meter data of another site", now=now,
                                      actor=TEST_ACTOR)
    cs = services.customer_settlement_calculate(
        account=sub.enrollment.account, program=program, period_kind=PeriodKind.SEASON_END,
        period_start=season.start_date, period_end=season.end_date + dt.timedelta(days=1),
        now=dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC), actor=TEST_ACTOR)
    line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (line.quantity, line.amount) == (Decimal("6.0000"), Decimal("1200.00"))
    # $30.60 + $15.30 - $15.30 (reversal) + $1,200.00
    assert cs.total_amount == Decimal("1230.60")


def test_net_readings_on_one_channel_do_not_count_reduction_below_zero_when_the_program_says_so():
    """A net-metered service point whose meter reports net load on one channel (Green Button flowDirection 4:
    stored on the delivered channel, negative values kept): 1.5 kWh every hour, -1.0 kWh (exporting) in the three
    event hours (16:00-19:00 PDT 2026-07-15; CAISO 10-in-10: baseline 1.5 kW, adjustment 1.0). The program does not
    count reduction below zero net load: the actual counted is max(-1.0, min(1.5, 0)) = 0 kW, so 1.5 kWh an hour x
    3 = 4.5 kWh, 1.5 kW, 4.5 x $1.25 = $5.625 -> $5.63, exactly as for the same net load read on two channels
    (``test_net_load``). It was paid the reduction below zero: 2.5 x 3 = 7.5 kWh, $9.38."""
    from tests.factories.settlement import event_hours

    program = ProgramFactory(counts_reduction_below_zero_net_load=False)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    sp.net_metered = True
    sp.save(update_fields=["net_metered"])
    write_hourly(service_point=sp, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16), kwh=1.5,
                 overrides={h: -1.0 for h in event_hours()})
    event = EventFactory(program=program)
    p = ParticipationFactory(event=event, subscription=sub)
    with run_on_commit():
        services.event_settle(event=event, now=SETTLE_NOW, actor=TEST_ACTOR)
    es = EventSettlement.objects.get(participation=p)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("4.5000"), Decimal("1.5000"), Decimal("5.63"))
    assert es.inputs["actual_kw"] == [-1.0, -1.0, -1.0]
    assert es.inputs["reduction_kwh"] == [1.5, 1.5, 1.5]
    assert "Reduction below zero net load does not count (program setting)." in es.explanation


def test_a_day_of_adjustment_without_event_day_readings_is_named_in_the_explanation():
    """CAISO 10-in-10 with the day-of adjustment over the 3 hours ending 1 hour before the event (12:00-15:00 PDT
    for 16:00-19:00 PDT on 2026-07-15). Readings 2.0 kWh every hour, 0.5 in the event hours; the event day's
    12:00-15:00 readings (19:00Z-22:00Z) are missing. The adjustment cannot be measured, so the baseline is used
    unadjusted (ratio 1): 1.5 kWh an hour x 3 = 4.5 kWh, $5.63. The explanation said "day-of adjustment 1." as if
    the ratio had been measured; it now says the adjustment was not measured and why, and the inputs carry the
    flag."""
    import math

    from tests.factories.settlement import event_hours

    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    sub = active_participant(program=program)
    overrides = {h: 0.5 for h in event_hours()}
    overrides |= {dt.datetime(2026, 7, 15, h, tzinfo=dt.UTC): math.nan for h in (19, 20, 21)}
    write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16),
                 kwh=2.0, overrides=overrides)
    event = EventFactory(program=program)
    p = ParticipationFactory(event=event, subscription=sub)
    with run_on_commit():
        services.event_settle(event=event, now=SETTLE_NOW, actor=TEST_ACTOR)
    es = EventSettlement.objects.get(participation=p)
    assert (es.kwh_avoided, es.amount) == (Decimal("4.5000"), Decimal("5.63"))
    assert ("day-of adjustment not measured (the event day's readings are missing in the adjustment hours): "
            "baseline not adjusted (1).") in es.explanation
    assert es.inputs["adjustment_not_measured"] is True
