"""Independent checks of settlement on hard cases (QA pass): expected money and kWh worked by hand in each test's
docstring from the program's rule or the baseline method's published definition."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from programs.choices import IncentiveBasis, IncentiveKind
from settlement import services
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, DeviceInstallationFactory
from tests.factories.enrollments import ProgramSubscriptionFactory, active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)


def _settle(event):
    with run_on_commit():
        return services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)


def test_two_thermostats_of_one_enrollment_at_one_meter_are_paid_the_meter_reduction_once():
    """CAISO 10-in-10 (BPM for Demand Response, Customer Load Baseline): one meter, 2.0 kWh every hour before the
    event day, 0.5 kWh in each event hour (16:00-19:00 PDT 2026-07-15): baseline 2.0 kW, adjustment 1.0 (the three
    hours ending one hour before the event read 2.0 = baseline), 1.5 kWh avoided an hour, 4.5 kWh at the meter.
    Two thermostats of the same enrollment both took part; the meter measured the service point once:
    4.5 kWh x $1.25 = $5.625 -> $5.63 for the service point, not $5.63 per thermostat ($11.26). The meter's kWh
    is counted once, on the first participation (rounded once), the second naming it."""
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    second = DeviceFactory()
    DeviceInstallationFactory(device=second, service_point=sp)
    sub2 = ProgramSubscriptionFactory(enrollment=sub.enrollment, device=second, start_date=sub.start_date)
    write_hourly(service_point=sp, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16),
                 overrides={h: 0.5 for h in event_hours()})
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    ParticipationFactory(event=event, subscription=sub2)
    _settle(event)
    rows = list(EventSettlement.objects.filter(event=event).order_by("participation_id")
                .values_list("participation_id", "kwh_avoided", "amount", "explanation"))
    assert [(k, a) for _, k, a, _ in rows] == [(Decimal("4.5000"), Decimal("5.63")), (Decimal("0.0000"),
                                                                                       Decimal("0.00"))]
    assert f"is on participation {rows[0][0]}" in rows[1][3]

# ------------------------------------------------------------------------------------------------------------------
# Season incentives of an account: several devices, unenrolment and re-enrolment in the same season.
from enrollments.choices import EnrollmentStatus  # noqa: E402
from events.choices import ParticipationStatus  # noqa: E402
from programs.choices import DeviceType, PerformanceMeasurement, ProgramType, SettlementTiming  # noqa: E402
from settlement.choices import Channel, LineKind, PeriodKind  # noqa: E402
from tests.factories.enrollments import EnrollmentFactory  # noqa: E402
from tests.factories.programs import SeasonFactory  # noqa: E402

SEASON_NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)
# Wednesdays 16:00-19:00 PDT (23:00Z-02:00Z).
JULY = [dt.datetime(2026, 7, d, 23, tzinfo=dt.UTC) for d in (1, 8, 15, 22)]


def _season_end(account, program, season):
    return services.customer_settlement_calculate(account=account, program=program,
                                                  period_kind=PeriodKind.SEASON_END, period_start=season.start_date,
                                                  period_end=season.end_date + dt.timedelta(days=1), now=SEASON_NOW,
                                                  actor=TEST_ACTOR)


def _battery_program(**rule):
    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY], settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KW, basis=IncentiveBasis.PER_KW,
                         amount=Decimal("200"), **rule)
    return program, season


def _discharge(sub, kwh_per_event_hour: dict[dt.datetime, float]):
    overrides = {h: kwh for start, kwh in kwh_per_event_hour.items() for h in event_hours(start)}
    write_hourly(service_point=sub.enrollment.service_point, device=sub.device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 1), last=dt.date(2026, 7, 23), kwh=0.0, overrides=overrides)


def _settle_season_events(program, starts):
    events = [EventFactory(program=program, start=s, end=s + dt.timedelta(hours=3)) for s in starts]
    return events


def _settle_all(events):
    for event in events:
        with run_on_commit():
            services.event_settle(event=event, now=SEASON_NOW, actor=TEST_ACTOR)


def test_per_kw_season_pays_the_sites_kw_when_one_enrollment_has_two_batteries():
    """ConnectedSolutions / Efficiency Maine: kW = the battery system's average discharge over the season's events.
    One enrollment, two 5 kW batteries, each discharging 5 kWh in every hour of three 3-hour events: per event
    5 + 5 = 10 kW for the site; season average 10 kW x $200/kW = $2,000.00 (not the mean per battery, 5 kW,
    $1,000.00)."""
    program, season = _battery_program()
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("5")})
    second = DeviceFactory(device_type=DeviceType.BATTERY, capacity_kw=Decimal("5"))
    DeviceInstallationFactory(device=second, service_point=sub.enrollment.service_point)
    sub2 = ProgramSubscriptionFactory(enrollment=sub.enrollment, device=second, start_date=sub.start_date)
    for s in (sub, sub2):
        _discharge(s, {start: 5.0 for start in JULY[:3]})
    events = _settle_season_events(program, JULY[:3])
    for event in events:
        ParticipationFactory(event=event, subscription=sub)
        ParticipationFactory(event=event, subscription=sub2)
    _settle_all(events)
    cs = _season_end(sub.enrollment.account, program, season)
    line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (line.quantity, line.amount) == (Decimal("10.0000"), Decimal("2000.00"))


def _reenrolled(program, *, device_kwargs=None):
    """Enrolled June 1, unenrolled from July 10 (end date), enrolled again from July 20, same account, service
    point and device. Returns the two subscriptions."""
    first = active_participant(program=program, start=dt.date(2026, 6, 1), device_kwargs=device_kwargs)
    e1 = first.enrollment
    e1.status, e1.end_date = EnrollmentStatus.UNENROLLED, dt.date(2026, 7, 10)
    e1.save()
    first.end_date = dt.date(2026, 7, 10)
    first.save()
    e2 = EnrollmentFactory(account=e1.account, service_point=e1.service_point, program=program,
                           effective_date=dt.date(2026, 7, 20))
    second = ProgramSubscriptionFactory(enrollment=e2, device=first.device, start_date=dt.date(2026, 7, 20))
    return first, second


def test_an_account_that_unenrolls_and_reenrolls_in_the_season_is_paid_the_seasonal_incentive_once():
    """PGE Smart Thermostat: "$25 per season" participated; SCE Smart Energy Program: $40 per year (maximum). The
    account leaves on July 10 and comes back on July 20 at the same service point with the same thermostat: one
    season, one seasonal incentive, $25.00 (not $25 per enrollment, $50.00)."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, basis=IncentiveBasis.FLAT,
                         amount=Decimal("25"))
    first, _ = _reenrolled(program)
    cs = _season_end(first.enrollment.account, program, season)
    assert [(x.kind, x.amount) for x in cs.lines.all()] == [(LineKind.SEASONAL, Decimal("25.00"))]
    assert cs.total_amount == Decimal("25.00")


def test_opt_outs_before_and_after_a_reenrolment_add_up_against_the_seasons_allowance():
    """Alliant Smart Hours: "Opting out of more than 3 events in a qualified season forfeits the $25 bonus". Two
    opt-outs before the account unenrolled (July 1, July 8) and two after it enrolled again (July 22 and July 29):
    four in the season > 3: $0.00 (each enrollment alone has 2 <= 3: the old result paid $25 twice, $50.00)."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, basis=IncentiveBasis.FLAT,
                         amount=Decimal("25"), max_opt_outs=3)
    first, second = _reenrolled(program)
    starts = [*JULY[:2], JULY[3], JULY[3] + dt.timedelta(days=7)]
    events = _settle_season_events(program, starts)
    for event, sub in zip(events, [first, first, second, second], strict=True):
        ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.OPTED_OUT,
                             opted_out_at=event.start - dt.timedelta(minutes=30))
    cs = _season_end(first.enrollment.account, program, season)
    assert cs.total_amount == Decimal("0.00")



def test_a_prorated_seasonal_incentive_adds_the_days_of_both_enrollments_once():
    """Seasonal $40, prorated by the days enrolled (``season_enrollment`` prorated). Enrolled June 1 - July 9 (end
    date July 10): 30 + 9 = 39 days; again July 20 - September 30: 12 + 31 + 30 = 73 days; 112 of the season's 122
    days: $40 x 112 / 122 = $36.7213 -> $36.72, one line (per enrollment it was $12.79 + $23.93 = $36.72 on two
    lines: the same money here, rounded twice; the rule now works the site once)."""
    from programs.choices import SeasonEnrollment

    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, basis=IncentiveBasis.FLAT,
                         amount=Decimal("40"), season_enrollment=SeasonEnrollment.PRORATED)
    first, _ = _reenrolled(program)
    cs = _season_end(first.enrollment.account, program, season)
    line = cs.lines.get()
    assert (line.kind, line.amount) == (LineKind.SEASONAL, Decimal("36.72"))
    assert "enrolled 112 of the season's 122 days" in line.description

def test_efficiency_maine_counts_events_while_not_enrolled_as_zero_kw():
    """Efficiency Maine small battery (program partner page): "If customer(s) are not enrolled for a given event or
    opt out of the event, the performance of those customer(s) will be counted as 0 kW for that event."
    A 6 kW battery enrolled June 1, unenrolled from July 10: it discharged 6 kWh in each hour of the July 1 and
    July 8 events (6 kW each); the program called two more events on July 15 and July 22, when it was no longer
    enrolled (another customer took part in them). Season average (6 + 6 + 0 + 0) / 4 = 3 kW x $200 = $600.00
    (counting only its own two events: 6 kW, $1,200.00)."""
    program, season = _battery_program(opted_out_counts_zero=True)
    first = active_participant(program=program, start=dt.date(2026, 6, 1),
                               device_kwargs={"device_type": DeviceType.BATTERY, "capacity_kw": Decimal("6")})
    e1 = first.enrollment
    e1.status, e1.end_date = EnrollmentStatus.UNENROLLED, dt.date(2026, 7, 10)
    e1.save()
    other = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                               "capacity_kw": Decimal("6")})
    _discharge(first, {JULY[0]: 6.0, JULY[1]: 6.0})
    _discharge(other, {start: 6.0 for start in JULY})
    events = _settle_season_events(program, JULY)
    for event in events[:2]:
        ParticipationFactory(event=event, subscription=first)
    for event in events:
        ParticipationFactory(event=event, subscription=other)
    _settle_all(events)
    cs = _season_end(e1.account, program, season)
    line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (line.quantity, line.amount) == (Decimal("3.0000"), Decimal("600.00"))


def test_efficiency_maine_counts_the_events_between_an_unenrolment_and_a_reenrolment_as_zero_kw():
    """Same rule, one site: enrolled June 1, unenrolled from July 10, enrolled again from July 20 with the same 6 kW
    battery. July 1 and July 8: 6 kW each (first enrollment); July 15: not enrolled (0 kW); July 22: 6 kW (second
    enrollment). One site, one average: (6 + 6 + 0 + 6) / 4 = 4.5 kW x $200 = $900.00 on one line."""
    program, season = _battery_program(opted_out_counts_zero=True)
    first, second = _reenrolled(program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                        "capacity_kw": Decimal("6")})
    other = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                               "capacity_kw": Decimal("6")})
    _discharge(first, {JULY[0]: 6.0, JULY[1]: 6.0, JULY[3]: 6.0})
    _discharge(other, {start: 6.0 for start in JULY})
    events = _settle_season_events(program, JULY)
    for event, sub in zip(events, [first, first, None, second], strict=True):
        if sub is not None:
            ParticipationFactory(event=event, subscription=sub)
    for event in events:
        ParticipationFactory(event=event, subscription=other)
    _settle_all(events)
    cs = _season_end(first.enrollment.account, program, season)
    line = cs.lines.get(kind=LineKind.PERFORMANCE_KW)
    assert (line.quantity, line.amount, line.enrollment_id) == (Decimal("4.5000"), Decimal("900.00"),
                                                                second.enrollment_id)
    assert "1 event while not enrolled counted 0 kW" in line.description


def test_caiso_day_of_adjustment_is_capped_at_plus_20_percent():
    """CAISO BPM for Demand Response, Customer Load Baseline: the load-point adjustment is the ratio of the actual
    to the baseline load over the 3 hours ending 1 hour before the event (12:00-15:00 PDT for a 16:00 event),
    capped at +/-20 %. Baseline 2.0 kW; those hours read 3.0 kWh each on the event day: 3.0 / 2.0 = 1.5, capped to
    1.2; adjusted baseline 2.4 kW; actual 0.5 kW: 1.9 kWh an hour x 3 h = 5.7 kWh x $1.25 = $7.125 -> $7.13."""
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    sub = active_participant(program=program)
    adj_hours = [dt.datetime(2026, 7, 15, h, tzinfo=dt.UTC) for h in (19, 20, 21)]
    write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16),
                 overrides={**{h: 0.5 for h in event_hours()}, **{h: 3.0 for h in adj_hours}})
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    _settle(event)
    es = EventSettlement.objects.get(event=event)
    assert es.inputs["adjustment"] == 1.2
    assert (es.kwh_avoided, es.amount) == (Decimal("5.7000"), Decimal("7.13"))


def test_recalculating_a_season_end_settlement_of_a_reenrolled_site_changes_nothing():
    """Re-running the season-end calculation: the same single $25.00 line, the same total."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, basis=IncentiveBasis.FLAT,
                         amount=Decimal("25"))
    first, _ = _reenrolled(program)
    account = first.enrollment.account
    once = _season_end(account, program, season)
    again = _season_end(account, program, season)
    assert once.pk == again.pk
    assert [(x.kind, x.amount) for x in again.lines.all()] == [(LineKind.SEASONAL, Decimal("25.00"))]
    assert again.total_amount == Decimal("25.00") and "$25.00" in again.explanation
