"""QA pass (programs): settlement of the sample programs (``load_sample_programs``) checked against the published
terms of the real programs they model (shared/data/programs/real-programs.json); expected dollars worked by hand in
each test's docstring."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from events.choices import ParticipationStatus
from programs.choices import DeviceType
from programs.models import Program, Season
from settlement import services
from settlement.choices import LineKind, PeriodKind
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.settlement import EventFactory, ParticipationFactory

pytestmark = pytest.mark.django_db
SEASON_NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)


def _sample(code):
    call_command("load_sample_programs", "--years", "2026", stdout=io.StringIO())
    program = Program.objects.get(code=code)
    return program, Season.objects.get(program=program, name="Summer 2026")


def _season_end(account, program, season):
    return services.customer_settlement_calculate(account=account, program=program,
                                                  period_kind=PeriodKind.SEASON_END, period_start=season.start_date,
                                                  period_end=season.end_date + dt.timedelta(days=1), now=SEASON_NOW,
                                                  actor=TEST_ACTOR)


def _weekday_events(program, n, *, hour_utc=19):
    """``n`` two-hour events on the Wednesdays from 2026-07-01, 14:00-16:00 CDT (19:00Z)."""
    first = dt.datetime(2026, 7, 1, hour_utc, tzinfo=dt.UTC)
    return [EventFactory(program=program, start=first + dt.timedelta(days=7 * k),
                         end=first + dt.timedelta(days=7 * k, hours=2)) for k in range(n)]


@pytest.mark.parametrize(("opt_outs", "expected"), [(0, "25.00"), (1, "25.00"), (3, "25.00"), (4, "0.00")])
def test_alliant_sample_forfeits_the_bonus_only_after_more_than_three_opt_outs(opt_outs, expected):
    """Alliant Smart Hours (real-programs.json, opt_out_rule max_opt_outs_per_season 3): "Opting out of more than 3
    events in a qualified season forfeits the $25 bonus." The sample program has the seasonal $25 per thermostat
    with ``max_opt_outs`` 3 and an opt-out rule "forfeit_season" described "More than 3 opt-outs forfeit the bonus".
    One thermostat, five events in July 2026, ``opt_outs`` of them opted out: 0, 1 or 3 opt-outs -> $25.00;
    4 opt-outs (more than 3) -> $0.00. (The forfeit_season rule forfeited the bonus at the first opt-out: $0.00
    for 1 and 3 opt-outs.)"""
    program, season = _sample("alliant-smart-hours")
    sub = active_participant(program=program, start=dt.date(2026, 5, 1),
                             device_kwargs={"device_type": DeviceType.THERMOSTAT})
    for k, event in enumerate(_weekday_events(program, 5)):
        if k < opt_outs:
            ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.OPTED_OUT,
                                 opted_out_at=event.start + dt.timedelta(minutes=30))
        else:
            ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.PARTICIPATED)
    cs = _season_end(sub.enrollment.account, program, season)
    assert cs.total_amount == Decimal(expected)
    if expected == "0.00":
        assert f"Forfeited: {opt_outs} opt-outs > 3 allowed" in cs.explanation
    else:
        assert [(x.kind, x.amount) for x in cs.lines.all()] == [(LineKind.SEASONAL, Decimal("25.00"))]


def test_austin_sample_pays_a_replaced_thermostat_as_one_thermostat():
    """Austin Energy Power Partner (real-programs.json): "$50 one-time per thermostat" at enrollment and "$25 per
    year per thermostat ... for each thermostat that stays enrolled". One thermostat enrolled May 1 2026, replaced by
    a new one on July 10 (``enrollment_replace_device``: the old subscription ends July 10, the new one starts July
    10; one thermostat subscribed every day). Season end (June-September): $50 x 1 + $25 x 1 = $75.00. (Both
    subscriptions overlap the season, so they were counted as two thermostats: $100 + $50 = $150.00.)
    A home that really has two thermostats at once (both subscribed all season) is paid for two: $150.00."""
    from enrollments.services import enrollment_replace_device
    from tests.factories.devices import DeviceFactory, DeviceInstallationFactory
    from tests.factories.enrollments import ProgramSubscriptionFactory

    program, season = _sample("austin-energy-power-partner")
    sub = active_participant(program=program, start=dt.date(2026, 5, 1),
                             device_kwargs={"device_type": DeviceType.THERMOSTAT})
    new = DeviceFactory(device_type=DeviceType.THERMOSTAT, aggregator=sub.device.aggregator)
    DeviceInstallationFactory(device=new, service_point=sub.enrollment.service_point)
    enrollment_replace_device(enrollment=sub.enrollment, old_device=sub.device, new_device=new,
                              on=dt.date(2026, 7, 10), now=dt.datetime(2026, 7, 9, 18, tzinfo=dt.UTC),
                              actor=TEST_ACTOR)
    cs = _season_end(sub.enrollment.account, program, season)
    assert sorted((x.kind, x.quantity, x.amount) for x in cs.lines.all()) == [
        (LineKind.ENROLLMENT_BONUS, Decimal("1.0000"), Decimal("50.00")),
        (LineKind.SEASONAL, Decimal("1.0000"), Decimal("25.00"))]
    assert cs.total_amount == Decimal("75.00")

    two = active_participant(program=program, start=dt.date(2026, 5, 1),
                             device_kwargs={"device_type": DeviceType.THERMOSTAT})
    second = DeviceFactory(device_type=DeviceType.THERMOSTAT, aggregator=two.device.aggregator)
    DeviceInstallationFactory(device=second, service_point=two.enrollment.service_point)
    ProgramSubscriptionFactory(enrollment=two.enrollment, device=second, start_date=dt.date(2026, 5, 1))
    assert _season_end(two.enrollment.account, program, season).total_amount == Decimal("150.00")
