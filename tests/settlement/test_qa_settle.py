"""QA pass (settle): hard cases of settlement and dispatch checked against the published terms of real programs
(shared/data/programs/real-programs.json); expected kWh, kW and dollars worked by hand in each test's docstring."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

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
