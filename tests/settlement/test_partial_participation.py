"""Issue 16 point 2: partial participation is prorated for per-kW and per-kWh performance incentives.

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
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

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
