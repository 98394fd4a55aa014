"""Settlement of AGGREGATOR_REPORTED programs (issue 18.5): kWh avoided and kW drop from the kW-drop records, blanks
missing (never zero), the program's minimum completeness, opt-outs, reports beyond the event window, price sets and
a corrected file through recalculation.

The event is 16:00-19:00 PDT (23:00Z-02:00Z). ``VALUES`` are 15-minute kW drops with three blanks: reported
2 kW x 3 quarters + 1.5 kW x 4 + 1 kW x 2 = 9 quarter-hours (2.25 h) and 3.5 kWh; 75% of the event time.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from events.choices import ParticipationStatus
from programs.choices import IncentiveBasis, IncentiveKind, PerformanceMeasurement
from settlement import services
from settlement.choices import EventSettlementStatus, MeasurementStatus
from settlement.meterdata.kwdrop import kw_drop_file_load
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory
from tests.factories.enrollments import active_participant
from tests.factories.kwdrop import kw_drop_file, record
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EVENT_START, EventFactory, ParticipationFactory, price_set, run_on_commit

pytestmark = pytest.mark.django_db
ES = EventSettlementStatus
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
VALUES = [2.0, 2.0, None, 2.0, 1.5, 1.5, 1.5, 1.5, None, None, 1.0, 1.0]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def reported_program(**kw):
    return ProgramFactory(performance_measurement=PerformanceMeasurement.AGGREGATOR_REPORTED, **kw)


def per_kwh(program, amount="1.20"):
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal(amount))


def participant(program, event, code, **participation):
    sp = ServicePointFactory(service_point_id=code)
    part = ParticipationFactory(event=event, subscription=active_participant(program=program, service_point=sp),
                                **participation)
    return sp, part


def load(lines, now=NOW):
    result = kw_drop_file_load(content=kw_drop_file(lines), now=now, actor=TEST_ACTOR)
    assert result.status == "completed", result.errors
    return result


def settle(event, **kw):
    with run_on_commit():
        return services.event_settle(event=event, now=NOW, actor=TEST_ACTOR, **kw)


def test_reported_kw_drop_with_blanks_settles_on_what_was_reported():
    program = reported_program()
    per_kwh(program)
    event = EventFactory(program=program)
    sp1, p1 = participant(program, event, "SP-1")
    sp2, p2 = participant(program, event, "SP-2")
    _, p3 = participant(program, event, "SP-3")  # nothing reported
    sp4, p4 = participant(program, event, "SP-4")  # every interval blank
    file_load = load([record(event=event, service_point=sp1, values=VALUES),
                      record(event=event, service_point=sp2, values=[1.0] * 12),
                      record(event=event, service_point=sp4, values=[None] * 12)])
    settle(event)

    es = EventSettlement.objects.get(participation=p1)
    assert (es.status, es.measurement_status, es.method) == (ES.CALCULATED, MeasurementStatus.OK,
                                                             "aggregator-reported")
    assert es.kwh_avoided == Decimal("3.5000")  # 2.25 reported hours; the 3 blanks add nothing, never 0 kW
    assert es.kw_drop_avg == Decimal("1.5556")  # 3.5 kWh / 2.25 reported hours, the whole window counted
    assert es.amount == Decimal("4.20")  # 3.5 kWh x $1.20
    assert [(c["kind"], c["rounded"], c["quantity"]) for c in es.components] == [
        ("performance_kwh", "4.20", "3.5000")]
    reported = es.inputs["reported"]
    assert reported == {
        "record_id": reported["record_id"], "record_version": 1, "load_id": file_load.pk, "interval_seconds": 900,
        "actual_start": "2026-07-15T23:00:00+00:00", "actual_end": "2026-07-16T02:00:00+00:00",
        "intervals_reported": 9, "intervals_missing": 3, "hours_reported": 2.25, "hours_not_covered": 0.0,
        "completeness_pct": 75.0, "kw_drop_max": 2.0, "kw_drop_min": 1.0, "kw_drop_avg_reported": 1.555556}
    assert es.inputs["actual_kw"] == [2.0, 1.5, 1.0]  # per event hour: reported kWh / reported hours
    assert es.inputs["reduction_kwh"] == [1.5, 1.5, 0.5]
    assert es.inputs["baseline_kw"] == [0.0, 0.0, 0.0]
    assert es.explanation == (
        f"Aggregator-reported kW drop (no meter, no baseline; record version 1 of load {file_load.pk}): 9 of 12 "
        "intervals of 900 s reported, 3 missing (not counted, never zero); 75% of the counted event time reported; "
        "kW drop max 2 kW, min 1 kW, average 1.5556 kW while reported. 3.50 kWh avoided over 3 intervals of 60 min; "
        "average kW drop 1.56 kW over the event window. performance_kwh: 3.50 kWh avoided x $1.20/kWh -> $4.20. "
        "Total $4.20 (calculated).")

    full = EventSettlement.objects.get(participation=p2)
    assert (full.kwh_avoided, full.kw_drop_avg, full.amount) == (Decimal("3.0000"), Decimal("1.0000"),
                                                                 Decimal("3.60"))
    assert full.inputs["reported"]["intervals_missing"] == 0

    for part, why in ((p3, f"no aggregator-reported kW drop for this service point in event {event.pk}"),
                      (p4, f"the aggregator reported no kW drop in the 3 counted intervals of event {event.pk} "
                           "(12 blank: missing data, not zero)")):
        es = EventSettlement.objects.get(participation=part)
        assert (es.status, es.measurement_status, es.amount, es.components) == (
            ES.PENDING, MeasurementStatus.INSUFFICIENT_DATA, Decimal("0.00"), [])
        assert es.inputs["detail"] == why
        assert f"Pending: {why}." in es.explanation
    assert EventSettlement.objects.get(participation=p3).explanation.startswith(
        "Aggregator-reported kW drop (no meter, no baseline): nothing reported for this service point.")


def test_program_minimum_completeness_is_applied():
    program = reported_program(reported_min_completeness_pct=80)
    per_kwh(program)
    event = EventFactory(program=program)
    sp1, p1 = participant(program, event, "SP-1")
    sp2, p2 = participant(program, event, "SP-2")
    load([record(event=event, service_point=sp1, values=VALUES),
          record(event=event, service_point=sp2, values=[1.0] * 11 + [None])])  # 91.7%
    settle(event)
    short = EventSettlement.objects.get(participation=p1)
    assert (short.status, short.measurement_status, short.amount) == (ES.PENDING, MeasurementStatus.INSUFFICIENT_DATA,
                                                                      Decimal("0.00"))
    assert short.inputs["detail"] == ("the reported kW drop covers 75.0% of the counted event time; the program "
                                      "requires 80%")
    enough = EventSettlement.objects.get(participation=p2)
    assert (enough.status, enough.kwh_avoided, enough.amount) == (ES.CALCULATED, Decimal("2.7500"), Decimal("3.30"))
    assert enough.inputs["reported"]["completeness_pct"] == 91.67


def test_opt_out_counts_only_the_reported_intervals_before_it():
    program = reported_program()
    per_kwh(program)
    event = EventFactory(program=program)
    sp, part = participant(program, event, "SP-1", status=ParticipationStatus.OPTED_OUT,
                           opted_out_at=EVENT_START + dt.timedelta(hours=1))
    load([record(event=event, service_point=sp, values=VALUES)])
    settle(event)
    es = EventSettlement.objects.get(participation=part)
    assert es.kwh_avoided == Decimal("1.5000")  # 2 kW in 3 of the 4 quarter-hours before the opt-out
    assert es.kw_drop_avg == Decimal("0.6667")  # 2 kW while reported x 1 h of the 3 h event
    assert es.participation_fraction == Decimal("0.333333")
    assert es.amount == Decimal("1.80")
    assert (es.inputs["reported"]["intervals_reported"], es.inputs["reported"]["intervals_missing"]) == (3, 1)
    assert es.inputs["participated"] == [0, 1]


def test_reported_intervals_outside_the_event_window_do_not_count():
    program = reported_program()
    per_kwh(program, "2.00")
    event = EventFactory(program=program)
    sp, part = participant(program, event, "SP-1")
    # hourly from 15:00 to 20:00 PDT: the hours before and after the event report 9 kW
    load([record(event=event, service_point=sp, values=[9.0, 1.0, 1.25, 1.5, 9.0], interval_seconds=3600,
                 start=EVENT_START - dt.timedelta(hours=1))])
    settle(event)
    es = EventSettlement.objects.get(participation=part)
    assert (es.kwh_avoided, es.amount) == (Decimal("3.7500"), Decimal("7.50"))
    assert (es.inputs["reported"]["kw_drop_max"], es.inputs["reported"]["kw_drop_min"]) == (1.5, 1.0)
    assert es.inputs["reported"]["intervals_reported"] == 3


def test_report_shorter_than_the_event_counts_the_uncovered_time_as_missing():
    program = reported_program(reported_min_completeness_pct=50)
    per_kwh(program)
    event = EventFactory(program=program)
    sp, part = participant(program, event, "SP-1")
    load([record(event=event, service_point=sp, values=[2.0, 2.0], interval_seconds=1800)])  # 16:00-17:00 only
    settle(event)
    es = EventSettlement.objects.get(participation=part)
    assert es.status == ES.PENDING
    assert es.inputs["reported"]["hours_not_covered"] == 2.0
    assert es.inputs["detail"] == ("the reported kW drop covers 33.3% of the counted event time; the program "
                                   "requires 50%")


def test_price_set_pays_each_reported_interval_and_nothing_for_missing_ones():
    program = reported_program()
    ps = price_set(program=program, prices={EVENT_START: "1.00", EVENT_START + dt.timedelta(hours=1): "2.00",
                                            EVENT_START + dt.timedelta(hours=2): "3.00"})
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PRICE_SET,
                         price_set=ps, amount=0)
    event = EventFactory(program=program)
    sp, part = participant(program, event, "SP-1")
    load([record(event=event, service_point=sp, values=VALUES)])
    settle(event)
    es = EventSettlement.objects.get(participation=part)
    assert es.amount == Decimal("6.00")  # 1.5 kWh x $1 + 1.5 kWh x $2 + 0.5 kWh x $3


def test_corrected_file_changes_the_settlement_on_recalculation():
    program = reported_program()
    per_kwh(program)
    event = EventFactory(program=program)
    sp, part = participant(program, event, "SP-1")
    load([record(event=event, service_point=sp, values=VALUES)])
    settle(event)
    assert EventSettlement.objects.get(participation=part).amount == Decimal("4.20")
    fixed = [2.0, 2.0, 2.0, 2.0, 1.5, 1.5, 1.5, 1.5, 1.0, 1.0, 1.0, 1.0]
    corrected = load([record(event=event, service_point=sp, values=fixed)], now=NOW + dt.timedelta(hours=1))
    assert corrected.summary == "0 new, 0 unchanged, 1 corrected, 0 rejected"
    settle(event, recalculate=True)
    es = EventSettlement.objects.get(participation=part)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("4.5000"), Decimal("1.5000"), Decimal("5.40"))
    assert es.inputs["reported"]["record_version"] == 2 and es.inputs["reported"]["intervals_missing"] == 0
    # the same file again: nothing changes, and a recalculation leaves the settlement as it is
    again = load([record(event=event, service_point=sp, values=fixed)], now=NOW + dt.timedelta(hours=2))
    assert again.summary == "0 new, 1 unchanged, 0 corrected, 0 rejected"
    fingerprint = es.fingerprint
    settle(event, recalculate=True)
    assert EventSettlement.objects.get(participation=part).fingerprint == fingerprint


def test_two_devices_at_one_service_point_are_paid_its_reported_kw_drop_once():
    """A kW-drop report is the service point's (one current record per event and service point): two thermostats of
    one enrollment there, both reserved, and the aggregator reports 1 kW for each of the 12 quarter-hours of the
    16:00-19:00 PDT event: 3 kWh at the service point, 3 kWh x $1.20 = $3.60 once, on the first participation;
    the second gets 0 kWh and $0.00 and names the first (it was paid $3.60 too: $7.20 for one report)."""
    from tests.factories.devices import DeviceFactory, DeviceInstallationFactory
    from tests.factories.enrollments import ProgramSubscriptionFactory

    program = reported_program()
    per_kwh(program)
    event = EventFactory(program=program)
    sp, p1 = participant(program, event, "SP-1")
    second = DeviceFactory()
    DeviceInstallationFactory(device=second, service_point=sp)
    sub2 = ProgramSubscriptionFactory(enrollment=p1.enrollment, device=second, start_date=p1.subscription.start_date)
    p2 = ParticipationFactory(event=event, subscription=sub2)
    load([record(event=event, service_point=sp, values=[1.0] * 12)])
    settle(event)

    rows = list(EventSettlement.objects.filter(event=event).order_by("participation_id")
                .values_list("participation_id", "status", "kwh_avoided", "kw_drop_avg", "amount", "explanation"))
    assert [r[:5] for r in rows] == [
        (p1.pk, ES.CALCULATED, Decimal("3.0000"), Decimal("1.0000"), Decimal("3.60")),
        (p2.pk, ES.CALCULATED, Decimal("0.0000"), Decimal("0.0000"), Decimal("0.00"))]
    assert (f"One report per service point, counted once: the service point's reduction in 3 of the counted "
            f"intervals is on participation {p1.pk}.") in rows[1][5]
    assert "counted once" not in rows[0][5]
    assert EventSettlement.objects.get(participation=p2).inputs["meter_shared"].endswith(f"participation {p1.pk}")
    settle(event)  # a re-run changes nothing
    assert list(EventSettlement.objects.filter(event=event).order_by("participation_id")
                .values_list("participation_id", "status", "kwh_avoided", "kw_drop_avg", "amount")) == [
                    r[:5] for r in rows]
