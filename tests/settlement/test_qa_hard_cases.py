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

