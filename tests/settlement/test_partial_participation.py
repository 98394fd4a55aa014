"""Issue 16 point 2: partial participation is prorated for per-kW and per-kWh performance incentives; an opt-out
inside an hour counts the intervals before it at the data's own resolution (15-minute data).

Rule (``settlement.incentives.performance_kw_component``, Efficiency Maine small battery terms): an event's kW is the
average kW drop over the whole event window, the intervals after the opt-out counting zero; an event opted out before
it began counts 0 kW or is left out of the season average (``IncentiveRule.opted_out_counts_zero``). Per kWh: the kWh
avoided in the intervals before the opt-out.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from events.choices import ParticipationStatus
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
from settlement.meterdata.kwdrop import kw_drop_file_load
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory
from tests.factories.enrollments import active_participant
from tests.factories.kwdrop import kw_drop_file, record
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import (
    EventFactory,
    ParticipationFactory,
    event_hours,
    run_on_commit,
    write_hourly,
    write_intervals,
)

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)
# Three Wednesdays, 16:00-19:00 PDT (23:00Z-02:00Z).
STARTS = [dt.datetime(2026, 7, d, 23, tzinfo=dt.UTC) for d in (1, 8, 15)]


def _battery_season(*, counts_zero: bool):
    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY], settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KW, basis=IncentiveBasis.PER_KW,
                         amount=Decimal("200"), opted_out_counts_zero=counts_zero)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.70"))
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("6")})
    # Discharge (device RECEIVED channel): 6 kWh in each hour of event 1, 5 kWh in each hour of event 2, 6 kWh in
    # each hour of event 3; 0 otherwise.
    overrides = {h: 6.0 for h in event_hours(STARTS[0])} | {h: 5.0 for h in event_hours(STARTS[1])} | {
        h: 6.0 for h in event_hours(STARTS[2])}
    write_hourly(service_point=sub.enrollment.service_point, device=sub.device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 1), last=dt.date(2026, 7, 16), kwh=0.0, overrides=overrides)
    events = [EventFactory(program=program, start=s, end=s + dt.timedelta(hours=3)) for s in STARTS]
    # Event 1: opted out after 2 of 3 hours. Event 2: full. Event 3: opted out 30 minutes before it began.
    ParticipationFactory(event=events[0], subscription=sub, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=STARTS[0] + dt.timedelta(hours=2))
    ParticipationFactory(event=events[1], subscription=sub)
    ParticipationFactory(event=events[2], subscription=sub, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=STARTS[2] - dt.timedelta(minutes=30))
    for event in events:
        with run_on_commit():
            services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    return program, season, sub, events


def _season_end(sub, season):
    e = sub.enrollment
    return services.customer_settlement_calculate(account=e.account, program=e.program,
                                                  period_kind=PeriodKind.SEASON_END, period_start=season.start_date,
                                                  period_end=season.end_date + dt.timedelta(days=1), now=NOW,
                                                  actor=TEST_ACTOR)


def test_battery_opting_out_mid_event_counts_its_delivered_kw_prorated_over_the_window():
    """Event 1: 6 kWh x 2 h before the opt-out = 12 kWh; kW = 12 / 3 h = 4 kW; per kWh 12 x $1.70 = $20.40.
    Event 2: 15 kWh, 5 kW, $25.50. Event 3 (opted out before it began): 0 kWh, 0 kW, $0.
    Season per kW, the opted-out-before-start event counting 0: (4 + 5 + 0) / 3 = 3 kW x $200 = $600.00
    (the old rule counted event 1 as 0 kW too: 5 / 3 x $200 = $333.33).
    Season total: $600.00 + $20.40 + $25.50 = $645.90."""
    program, season, sub, events = _battery_season(counts_zero=True)
    es = {s.event_id: s for s in EventSettlement.objects.all()}
    assert [(es[e.pk].kwh_avoided, es[e.pk].kw_drop_avg, es[e.pk].amount) for e in events] == [
        (Decimal("12.0000"), Decimal("4.0000"), Decimal("20.40")),
        (Decimal("15.0000"), Decimal("5.0000"), Decimal("25.50")),
        (Decimal("0.0000"), Decimal("0.0000"), Decimal("0.00"))]
    cs = _season_end(sub, season)
    kw_line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (kw_line.amount, kw_line.quantity) == (Decimal("600.00"), Decimal("3.0000"))
    assert "(3 of 3)" in kw_line.description
    assert cs.total_amount == Decimal("645.90")


def test_an_event_opted_out_before_it_began_is_left_out_when_the_program_says_so():
    """Same season, ``opted_out_counts_zero`` False: event 3 is left out: (4 + 5) / 2 = 4.5 kW x $200 = $900.00;
    total $900.00 + $20.40 + $25.50 = $945.90."""
    program, season, sub, events = _battery_season(counts_zero=False)
    cs = _season_end(sub, season)
    kw_line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (kw_line.amount, kw_line.quantity) == (Decimal("900.00"), Decimal("4.5000"))
    assert "(2 of 2)" in kw_line.description
    assert cs.total_amount == Decimal("945.90")


# ------------------------------------------------------------------------------------------------------------------
# An opt-out inside an hour, with data finer than the hour: the intervals before it count at the data's resolution.
# Rule (``settlement.measurement``): only intervals that END at or before the opt-out count, so the interval the
# opt-out cuts does not (the customer's load after opting out is held neither against nor for them), as for hourly
# data. Event: Wednesday 2026-07-15, 14:00-18:00 PDT (21:00Z-01:00Z).
EVENT_1400 = dt.datetime(2026, 7, 15, 21, tzinfo=dt.UTC)
EVENT_1800 = EVENT_1400 + dt.timedelta(hours=4)


def _local(hour: int, minute: int) -> dt.datetime:
    """2026-07-15 ``hour:minute`` PDT as UTC."""
    return dt.datetime(2026, 7, 15, hour + 7, minute, tzinfo=dt.UTC)


def _quarters(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    return [start + dt.timedelta(minutes=15 * i) for i in range(int((end - start) / dt.timedelta(minutes=15)))]


def test_meter_data_of_15_minutes_counts_the_quarter_hours_before_a_mid_hour_opt_out():
    """CAISO 10-in-10 on 15-minute readings: 0.5 kWh a quarter-hour (2 kW) on every day, 0.125 kWh (0.5 kW) in the
    event quarters of the event day: 0.375 kWh avoided per quarter-hour, adjustment 1.0.

    Opted out at 14:37: 14:00-14:15 and 14:15-14:30 count (0.75 kWh x $1.25 = $0.9375 -> $0.94); 14:30-14:45 ends
    after the opt-out and does not. Before the fix the 15-minute readings were summed into hours and the opt-out
    counted whole hours only: 0 kWh, $0.00.
    The same readings without an opt-out settle as before on the hourly grid (6 kWh, $7.50); hourly readings with an
    opt-out at 15:37 count the one whole hour before it, as before (1.5 kWh, $1.88)."""
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    event = EventFactory(program=program, start=EVENT_1400, end=EVENT_1800)
    first, last = dt.date(2026, 5, 25), dt.date(2026, 7, 16)
    quarter_sub, full_sub, hourly_sub = (active_participant(program=program) for _ in range(3))
    for sub in (quarter_sub, full_sub):
        write_intervals(service_point=sub.enrollment.service_point, first=first, last=last, interval_minutes=15,
                        kwh=0.5, overrides={t: 0.125 for t in _quarters(EVENT_1400, EVENT_1800)})
    write_hourly(service_point=hourly_sub.enrollment.service_point, first=first, last=last, kwh=2.0,
                 overrides={h: 0.5 for h in event_hours(EVENT_1400, 4)})
    opted = ParticipationFactory(event=event, subscription=quarter_sub, status=ParticipationStatus.OPTED_OUT,
                                 opted_out_at=_local(14, 37))
    full = ParticipationFactory(event=event, subscription=full_sub)
    hourly = ParticipationFactory(event=event, subscription=hourly_sub, status=ParticipationStatus.OPTED_OUT,
                                  opted_out_at=_local(15, 37))
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)

    es = EventSettlement.objects.get(participation=opted)
    assert (es.measurement_status, es.kwh_avoided, es.kw_drop_avg, es.amount) == (
        "ok", Decimal("0.7500"), Decimal("0.1875"), Decimal("0.94"))
    assert es.inputs["interval_minutes"] == 15 and es.inputs["start"] == EVENT_1400.isoformat()
    assert es.inputs["participated"] == [0, 2]
    assert es.inputs["baseline_kw"] == [2.0] * 16 and es.inputs["actual_kw"] == [0.5] * 16
    assert es.inputs["reduction_kwh"] == [0.375] * 16
    assert "0.75 kWh avoided over 2 intervals of 15 min" in es.explanation
    assert "Opted out at 2026-07-15 14:37 PDT" in es.explanation

    es = EventSettlement.objects.get(participation=full)
    assert (es.kwh_avoided, es.amount, es.inputs["interval_minutes"], es.inputs["participated"]) == (
        Decimal("6.0000"), Decimal("7.50"), 60, [0, 4])
    assert es.inputs["reduction_kwh"] == [1.5] * 4

    es = EventSettlement.objects.get(participation=hourly)
    assert (es.kwh_avoided, es.amount, es.inputs["interval_minutes"], es.inputs["participated"]) == (
        Decimal("1.5000"), Decimal("1.88"), 60, [0, 1])

    # Re-running changes nothing (each settlement is measured on the same grid again).
    before = list(EventSettlement.objects.order_by("pk").values_list("pk", "fingerprint", "updated_at"))
    with run_on_commit():
        recalc = services.event_settle(event=event, now=NOW + dt.timedelta(days=1), actor=TEST_ACTOR,
                                       recalculate=True)
    recalc.refresh_from_db()
    assert (recalc.items_unchanged, recalc.items_calculated) == (3, 0)
    assert list(EventSettlement.objects.order_by("pk").values_list("pk", "fingerprint", "updated_at")) == before


def test_battery_telemetry_of_15_minutes_counts_the_quarter_hours_before_a_mid_hour_opt_out():
    """A 6 kW battery discharging 1.5 kWh a quarter-hour (device RECEIVED rows of 15 minutes), $1.70/kWh, opted out
    at 15:52: the seven quarter-hours 14:00-15:45 count: 10.5 kWh, $17.85, 10.5 / 4 h = 2.625 kW (15:45-16:00 ends
    after the opt-out). Before the fix only the hour 14:00-15:00 counted: 6 kWh, $10.20, 1.5 kW. A battery with
    hourly telemetry and the same opt-out still counts that one hour ($10.20)."""
    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY])
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.70"))
    event = EventFactory(program=program, start=EVENT_1400, end=EVENT_1800)
    battery = {"device_type": DeviceType.BATTERY, "capacity_kw": Decimal("6")}
    quarter_sub = active_participant(program=program, device_kwargs=battery)
    hourly_sub = active_participant(program=program, device_kwargs=battery)
    write_intervals(service_point=quarter_sub.enrollment.service_point, device=quarter_sub.device,
                    channel=Channel.RECEIVED, first=dt.date(2026, 7, 15), last=dt.date(2026, 7, 16),
                    interval_minutes=15, kwh=0.0, overrides={t: 1.5 for t in _quarters(EVENT_1400, EVENT_1800)})
    write_hourly(service_point=hourly_sub.enrollment.service_point, device=hourly_sub.device,
                 channel=Channel.RECEIVED, first=dt.date(2026, 7, 15), last=dt.date(2026, 7, 16), kwh=0.0,
                 overrides={h: 6.0 for h in event_hours(EVENT_1400, 4)})
    quarter = ParticipationFactory(event=event, subscription=quarter_sub, status=ParticipationStatus.OPTED_OUT,
                                   opted_out_at=_local(15, 52))
    hourly = ParticipationFactory(event=event, subscription=hourly_sub, status=ParticipationStatus.OPTED_OUT,
                                  opted_out_at=_local(15, 52))
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)

    es = EventSettlement.objects.get(participation=quarter)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("10.5000"), Decimal("2.6250"), Decimal("17.85"))
    assert (es.inputs["interval_minutes"], es.inputs["participated"]) == (15, [0, 7])
    assert es.inputs["actual_kw"] == [6.0] * 16
    es = EventSettlement.objects.get(participation=hourly)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("6.0000"), Decimal("1.5000"), Decimal("10.20"))
    assert (es.inputs["interval_minutes"], es.inputs["participated"]) == (60, [0, 1])


def test_aggregator_reported_15_minute_kw_drop_counts_the_quarter_hours_before_a_mid_hour_opt_out(settings, tmp_path):
    """A 15-minute kW-drop report of 2 kW in every quarter-hour, $1.20/kWh, opted out at 14:37: 14:00-14:30 count
    (2 kW x 0.5 h = 1 kWh, $1.20; completeness 100 % of the counted time). Before the fix: no counted interval,
    0 kWh, $0.00."""
    settings.MEDIA_ROOT = tmp_path
    program = ProgramFactory(performance_measurement=PerformanceMeasurement.AGGREGATOR_REPORTED)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.20"))
    event = EventFactory(program=program, start=EVENT_1400, end=EVENT_1800)
    sp = ServicePointFactory(service_point_id="SP-Q1")
    part = ParticipationFactory(event=event, subscription=active_participant(program=program, service_point=sp),
                                status=ParticipationStatus.OPTED_OUT, opted_out_at=_local(14, 37))
    loaded = kw_drop_file_load(content=kw_drop_file([record(event=event, service_point=sp, values=[2.0] * 16)]),
                               now=NOW, actor=TEST_ACTOR)
    assert loaded.status == "completed", loaded.errors
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    es = EventSettlement.objects.get(participation=part)
    assert (es.kwh_avoided, es.amount) == (Decimal("1.0000"), Decimal("1.20"))
    assert (es.inputs["interval_minutes"], es.inputs["participated"]) == (15, [0, 2])
    assert es.inputs["reported"]["intervals_reported"] == 2
    assert es.inputs["reported"]["completeness_pct"] == 100.0
