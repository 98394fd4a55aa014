"""Settlement measurement runs on the baseline engine: same numbers as ``manage.py baseline --json`` on the same
readings, the service point's other events excluded as event days, device telemetry, constant queries per chunk."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events.choices import EventStatus, ParticipationStatus
from programs.calendars import holidays_for
from programs.choices import IncentiveBasis, IncentiveKind
from settlement import measurement, services
from settlement.meterdata import intervals
from settlement.models import EventSettlement, IntervalDay
from settlement.selectors import event_settlement_days
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import (
    EVENT_END,
    EVENT_START,
    RECEIVED_AT,
    EventFactory,
    ParticipationFactory,
    run_on_commit,
)

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
FIRST, LAST = dt.date(2026, 5, 25), dt.date(2026, 7, 16)


def noisy_readings(service_point, seed=3, missing=()):
    """Hourly kWh with a daily shape and noise, lower in the event window: every interval differs. ``missing``: UTC
    days without readings."""
    rng = np.random.default_rng(seed)
    rows, day = [], FIRST
    shape = 1.0 + 0.5 * np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))
    while day <= LAST:
        if day in missing:
            day += dt.timedelta(days=1)
            continue
        values = rng.uniform(1.5, 2.5) * shape * rng.normal(1.0, 0.08, 24)
        for h in range(24):
            t = dt.datetime.combine(day, dt.time(h), tzinfo=dt.UTC)
            if EVENT_START <= t < EVENT_END:
                values[h] *= 0.4
        rows.append(IntervalDay(service_point=service_point, day=day, interval_minutes=60,
                                values=intervals.encode(values), received_at=RECEIVED_AT))
        day += dt.timedelta(days=1)
    IntervalDay.objects.bulk_create(rows)


def export_csv(service_point, path):
    lines = ["timestamp,kwh"]
    for row in IntervalDay.objects.filter(service_point=service_point, is_current=True).order_by("day"):
        for i, v in enumerate(intervals.decode(row.values)):
            t = dt.datetime.combine(row.day, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(minutes=60 * i)
            lines.append(f"{t.isoformat()},{float(v)!r}")
    path.write_text("\n".join(lines) + "\n")


def settle(event, now=NOW):
    with run_on_commit():
        return services.event_settle(event=event, now=now, actor=TEST_ACTOR)


@pytest.mark.parametrize("missing", [(), (dt.date(2026, 7, 14), dt.date(2026, 7, 10), dt.date(2026, 7, 7))],
                         ids=["recent-days-complete", "gaps-read-whole-lookback"])
def test_stored_interval_values_equal_the_baseline_cli_on_the_same_readings(tmp_path, missing):
    # US federal calendar: Friday July 3 2026 is the observed Independence Day (a holiday, not a similar day).
    program = ProgramFactory(holiday_calendar="US", baseline_method="caiso-10-in-10",
                             baseline_params={"adjustment_cap": [0.5, 1.5]})
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    noisy_readings(sp, missing=missing)
    # The service point took part in another program's event on Wednesday July 8: an event day, not a similar day.
    other = ProgramFactory(allows_co_enrollment=True)
    other_event = EventFactory(program=other, start=dt.datetime(2026, 7, 8, 22, tzinfo=dt.UTC),
                               end=dt.datetime(2026, 7, 9, 0, tzinfo=dt.UTC))
    ParticipationFactory(event=other_event, subscription=active_participant(
        program=other, service_point=sp, account=sub.enrollment.account, device_kwargs=False))
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    settle(event)
    es = EventSettlement.objects.get(event=event)

    export_csv(sp, tmp_path / "meter.csv")
    holidays = sorted(holidays_for("US", {2026}))
    out = StringIO()
    call_command("baseline", "--csv", str(tmp_path / "meter.csv"), "--tz", program.time_zone,
                 "--event-start", EVENT_START.isoformat(), "--event-end", EVENT_END.isoformat(),
                 "--method", "caiso-10-in-10", "--adjustment-cap", "0.5,1.5",
                 *[a for d in holidays for a in ("--holiday", d.isoformat())],
                 "--event-day", "2026-07-08", "--json", stdout=out)
    cli = json.loads(out.getvalue())

    assert cli["status"] == "OK" and es.measurement_status == "ok"
    assert es.inputs["selected_days"] == cli["selected_days"]
    assert "2026-07-08" not in cli["selected_days"] and "2026-07-03" not in cli["selected_days"]
    days = dict(event_settlement_days(es.inputs))
    assert (days["2026-07-08"], days["2026-07-03"], days["2026-07-12"]) == ("event_day", "holiday", "day_type")
    # A missing UTC day removes two local days (the evening event window crosses UTC midnight).
    assert len([d for d, r in days.items() if r == "missing_data"]) == 2 * len(missing)
    assert {e["day"]: e["reason"] for e in cli["excluded_days"]} == {d: r for d, r in days.items() if r != "selected"}
    assert es.inputs["adjustment"] == pytest.approx(cli["adjustment"]["applied"], abs=1e-6)
    assert 0.5 < es.inputs["adjustment"] < 1.5 and es.inputs["adjustment"] != 1.0  # a real, uncapped adjustment
    for key in ("baseline_kw", "adjusted_baseline_kw", "actual_kw", "reduction_kwh"):
        assert es.inputs[key] == [round(i[key], 4) for i in cli["intervals"]], key
    assert es.inputs["start"] == EVENT_START.isoformat()
    # Stored with 4 decimals; the CLI prints 6 (rounding the same float sum).
    assert float(es.kwh_avoided) == pytest.approx(cli["totals"]["kwh_avoided"], abs=5.1e-5)
    assert es.amount == (es.kwh_avoided * Decimal("1.25")).quantize(Decimal("0.01"))


def test_cancelled_events_and_participations_are_not_event_days():
    program = ProgramFactory()
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    other = ProgramFactory(allows_co_enrollment=True)
    other_sub = active_participant(program=other, service_point=sp, account=sub.enrollment.account,
                                   device_kwargs=False)
    for day, status, p_status in ((7, EventStatus.CANCELLED, ParticipationStatus.PARTICIPATED),
                                  (8, EventStatus.COMPLETED, ParticipationStatus.CANCELLED),
                                  (9, EventStatus.COMPLETED, ParticipationStatus.OPTED_OUT)):
        ev = EventFactory(program=other, status=status, start=dt.datetime(2026, 7, day, 22, tzinfo=dt.UTC),
                          end=dt.datetime(2026, 7, day, 23, tzinfo=dt.UTC))
        ParticipationFactory(event=ev, subscription=other_sub, status=p_status)
    event = EventFactory(program=program)
    from zoneinfo import ZoneInfo

    days = measurement.other_event_days(service_point_ids=[sp.pk], event=event,
                                        tz=ZoneInfo(program.time_zone), first_day=dt.date(2026, 6, 1))
    assert days == {sp.pk: {dt.date(2026, 7, 9)}}


def test_event_window_off_the_hour_uses_a_finer_grid():
    from settlement.baselines import resolve_params

    params = resolve_params("caiso-10-in-10")
    start = dt.datetime(2026, 7, 15, 23, 30, tzinfo=dt.UTC)
    assert measurement.grid_minutes(start, start + dt.timedelta(hours=2), params) == 30
    assert measurement.grid_minutes(EVENT_START, EVENT_END, params) == 60
    assert measurement.grid_minutes(start + dt.timedelta(minutes=15), EVENT_END, None) == 15


@pytest.mark.parametrize(("data_minutes", "opted_out", "expected"), [
    (15, (0, 37), 15),    # 14:00-14:30 count at 15 minutes; the hourly grid counted nothing
    (5, (0, 37), 5),      # 14:00-14:35
    (30, (0, 37), 30),    # 14:00-14:30
    (30, (0, 17), 60),    # no whole half-hour before 14:17: nothing more to count, the event's grid
    (15, (0, 7), 60),     # no whole quarter-hour before 14:07: the event's grid
    (15, (1, 52), 15),    # 14:00-15:45
    (60, (0, 37), 60),    # hourly data: as before
    (None, (0, 37), 60),  # no readings: as before
])
def test_a_participation_is_measured_on_its_finer_data_when_that_counts_more_before_its_opt_out(
        data_minutes, opted_out, expected):
    start = dt.datetime(2026, 7, 15, 21, tzinfo=dt.UTC)  # 14:00 PDT
    at = start + dt.timedelta(hours=opted_out[0], minutes=opted_out[1])
    assert measurement.refined_minutes(event_start=start, opted_out_at=at, grid=60, data_minutes=data_minutes) == (
        expected)


def test_settling_a_chunk_runs_the_same_queries_for_one_or_many_participations(settings):
    def chunk_queries(n):
        program = ProgramFactory()
        IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.25"))
        event = EventFactory(program=program)
        for _ in range(n):
            sub = active_participant(program=program)
            noisy_readings(sub.enrollment.service_point)
            ParticipationFactory(event=event, subscription=sub)
        with CaptureQueriesContext(connection) as ctx:
            settle(event)
        assert EventSettlement.objects.filter(event=event, status="calculated").count() == n
        return len(ctx.captured_queries)

    assert chunk_queries(1) == chunk_queries(6)
