"""Issue 16 point 4: abnormal days (outages, abnormal operation) recorded per service point, feeder, substation,
territory or program, or detected from the data (a day whose readings are all zero), are left out of baseline day
selection like event days; the baseline reaches further back; the explanation lists each excluded day and why.

Readings: the default participant (2.0 kWh every hour; 0.5 kWh in the three event hours of Wednesday 2026-07-15,
16:00-19:00 PDT = 23:00Z-02:00Z); CAISO 10-in-10 with the day-of adjustment at $1.25/kWh. The ten most recent
weekdays before the event are 07-14, 07-13, 07-10, 07-09, 07-08, 07-07, 07-06, 07-03, 07-02, 07-01; the next one
back is 06-30.
"""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from cpm.base.capabilities import USE_CASES
from cpm.base.errors import PermissionDenied
from cpm.models import AuditEntry
from devices.imports import ImportFailed
from settlement import services
from settlement.choices import AbnormalDayScope
from settlement.models import AbnormalDay, EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
FIRST, LAST = dt.date(2026, 5, 25), dt.date(2026, 7, 16)
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
OUTAGE_DAY = dt.date(2026, 7, 13)  # a Monday, among the ten most recent weekdays
# The event hours of 07-13 (16:00-19:00 PDT): an outage in the afternoon, load 0.
OUTAGE_HOURS = event_hours(dt.datetime(2026, 7, 13, 23, tzinfo=dt.UTC))
# The whole local day 07-13 (00:00 PDT = 07:00Z): all readings zero.
WHOLE_DAY = [dt.datetime(2026, 7, 13, 7, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in range(24)]


def _participant(program, zero_hours=()):
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    sp.premise.feeder, sp.premise.substation, sp.premise.service_territory = "F-12", "SUB-3", "NORTH"
    sp.premise.save()
    write_hourly(service_point=sp, first=FIRST, last=LAST,
                 overrides={h: 0.5 for h in event_hours()} | {h: 0.0 for h in zero_hours})
    return sub


def _program():
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind="performance_kwh", basis="per_kwh", amount=Decimal("1.25"))
    return program


def _settle(program, sub):
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    return EventSettlement.objects.get(event=event)


def test_an_afternoon_outage_day_pulls_the_baseline_down_unless_it_is_recorded():
    """Not recorded: 07-13 is a similar day; its event hours read 0 (an outage), so the baseline of each event hour is
    (9 x 2.0 + 0) / 10 = 1.8 kW; the adjustment hours read 2.0 on every day: ratio 1.0; 1.8 - 0.5 = 1.3 kWh per hour
    x 3 = 3.9 kWh x $1.25 = $4.875 -> $4.88. (The day's average, 21 x 2.0 / 24 = 1.75 kW, is not low usage.)"""
    program = _program()
    es = _settle(program, _participant(program, OUTAGE_HOURS))
    assert (es.kwh_avoided, es.amount) == (Decimal("3.9000"), Decimal("4.88"))
    assert "2026-07-13" in es.inputs["selected_days"]


@pytest.mark.parametrize("scope,target", [
    (AbnormalDayScope.FEEDER, {"network_id": "F-12"}), (AbnormalDayScope.SUBSTATION, {"network_id": "SUB-3"}),
    (AbnormalDayScope.TERRITORY, {"network_id": "NORTH"}), (AbnormalDayScope.SERVICE_POINT, "sp"),
    (AbnormalDayScope.PROGRAM, "program")])
def test_a_recorded_outage_day_is_left_out_and_the_baseline_reaches_further_back(scope, target):
    """Recorded for the service point's feeder / substation / territory, the service point, or the program: 07-13
    is left out; the ten days reach back to 06-30, all 2.0 kWh: baseline 2.0 kW, 1.5 kWh avoided per hour x 3 =
    4.5 kWh x $1.25 = $5.625 -> $5.63. The explanation lists 07-13 with the recorded reason."""
    program = _program()
    sub = _participant(program, OUTAGE_HOURS)
    if target == "sp":
        target = {"service_point": sub.enrollment.service_point}
    elif target == "program":
        target = {"program": program}
    record = services.abnormal_day_create(data={"day": OUTAGE_DAY, "scope": scope, "reason": "storm", **target},
                                          now=NOW, actor=TEST_ACTOR)
    es = _settle(program, sub)
    assert (es.kwh_avoided, es.amount) == (Decimal("4.5000"), Decimal("5.63"))
    assert "2026-07-13" not in es.inputs["selected_days"] and es.inputs["selected_days"][-1] == "2026-06-30"
    label = {"feeder": "feeder F-12", "substation": "substation SUB-3", "territory": "territory NORTH",
             "service_point": "service point", "program": "program"}[scope]
    reason = f"outage ({label}): storm"
    assert es.inputs["abnormal_days"] == [{"day": "2026-07-13", "reason": reason}]
    # 07-04 (a Saturday) is named too: the NERC calendar's holiday.
    assert f"Days left out: 2026-07-13 {reason}; 2026-07-04 holiday." in es.explanation
    assert AuditEntry.objects.filter(code="abnormal_day.created", object_id=str(record.pk)).count() == 1


def test_an_outage_on_another_feeder_or_program_changes_nothing():
    """Another feeder, another program: 07-13 stays a similar day: $4.88 as unrecorded."""
    program = _program()
    sub = _participant(program, OUTAGE_HOURS)
    services.abnormal_day_create(data={"day": OUTAGE_DAY, "scope": "feeder", "network_id": "F-99", "reason": "x"},
                                 now=NOW, actor=TEST_ACTOR)
    services.abnormal_day_create(data={"day": OUTAGE_DAY, "scope": "program", "program": _program(), "reason": "x"},
                                 now=NOW, actor=TEST_ACTOR)
    assert _settle(program, sub).amount == Decimal("4.88")


def test_a_day_whose_readings_are_all_zero_is_detected_as_abnormal():
    """07-13 reads 0 in all 24 local hours: detected and left out (named so), baseline from 07-14 .. 06-30 = 2.0 kW:
    4.5 kWh, $5.63."""
    program = _program()
    es = _settle(program, _participant(program, WHOLE_DAY))
    assert (es.kwh_avoided, es.amount) == (Decimal("4.5000"), Decimal("5.63"))
    assert es.inputs["abnormal_days"] == [{"day": "2026-07-13", "reason": "all readings zero (detected from the data)"}]
    assert "Days left out: 2026-07-13 all readings zero (detected from the data); 2026-07-04 holiday." in es.explanation


def test_a_day_without_readings_is_named_in_the_explanation():
    """UTC days 07-10 and 07-11 have no rows: the local day 07-10 (07:00Z 07-10 to 07:00Z 07-11) has no reading at
    all (named "no readings"), local 07-09 loses its hours from 00:00Z 07-10 (missing data). The ten days are 07-14,
    07-13, 07-08, 07-07, 07-06, 07-03, 07-02, 07-01, 06-30, 06-29, all 2.0 kWh: 4.5 kWh, $5.63."""
    program = _program()
    sub = active_participant(program=program)
    write_hourly(service_point=sub.enrollment.service_point, first=FIRST, last=LAST,
                 overrides={h: 0.5 for h in event_hours()}, missing_days={dt.date(2026, 7, 10), dt.date(2026, 7, 11)})
    es = _settle(program, sub)
    assert es.amount == Decimal("5.63")
    assert "2026-07-10 no readings (detected from the data)" in es.explanation
    assert "2026-07-09 missing data" in es.explanation


def test_abnormal_day_services_are_use_cases_of_settlement_analysts(django_user_model):
    assert {"abnormal_day.create", "abnormal_day.delete", "abnormal_days.import"} <= set(USE_CASES)
    user = django_user_model.objects.create_user("nobody")
    with pytest.raises(PermissionDenied):
        services.abnormal_day_create(data={"day": OUTAGE_DAY, "scope": "feeder", "network_id": "F", "reason": "x"},
                                     now=NOW, actor=user)
    record = services.abnormal_day_create(
        data={"day": OUTAGE_DAY, "scope": "feeder", "network_id": "F", "reason": "x"}, now=NOW, actor=TEST_ACTOR)
    again = services.abnormal_day_create(
        data={"day": OUTAGE_DAY, "scope": "feeder", "network_id": "F", "reason": "x"}, now=NOW, actor=TEST_ACTOR)
    assert again.pk == record.pk  # idempotent
    services.abnormal_day_delete(abnormal_day=record, now=NOW, actor=TEST_ACTOR, reason="entered by mistake")
    assert not AbnormalDay.objects.exists()
    assert AuditEntry.objects.filter(code="abnormal_day.deleted", reason="entered by mistake").count() == 1


def test_csv_import_all_or_nothing_with_row_errors():
    """Line 2 fine, line 3 an unknown service point, line 4 a bad scope, line 5 no reason: nothing is written; then
    the good rows alone: 2 new; the same file again: 2 unchanged."""
    program = _program()
    sub = _participant(program)
    sp_id = sub.enrollment.service_point.service_point_id
    bad = ("day,scope,target,kind,reason\n"
           f"2026-07-13,service_point,{sp_id},outage,storm\n"
           "2026-07-13,service_point,NOPE,outage,storm\n"
           "2026-07-13,street,F-12,outage,storm\n"
           "2026-07-14,feeder,F-12,abnormal,\n")
    with pytest.raises(ImportFailed) as failed:
        services.abnormal_days_import(io.StringIO(bad), now=NOW, actor=TEST_ACTOR)
    lines = failed.value.report.error_lines()
    assert lines[0] == "line 3: target: Unknown service point 'NOPE'."
    assert lines[1].startswith("line 4: scope: Choose one of")
    assert lines[2] == "line 5: reason: This value is required."
    assert not AbnormalDay.objects.exists()
    good = ("day,scope,target,kind,reason\n"
            f"2026-07-13,service_point,{sp_id},outage,storm\n"
            f"2026-07-14,program,{program.code},abnormal,heat wave test\n")
    report = services.abnormal_days_import(io.StringIO(good), now=NOW, actor=TEST_ACTOR)
    assert report.counts["abnormal_day"]["new"] == 2
    report = services.abnormal_days_import(io.StringIO(good), now=NOW, actor=TEST_ACTOR)
    assert report.counts["abnormal_day"]["unchanged"] == 2
    assert AbnormalDay.objects.count() == 2
