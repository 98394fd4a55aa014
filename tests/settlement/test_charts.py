"""Issue 17: what the event charts draw. Half-open intervals are drawn up to the end edge (the chart covers the full
event window, not one interval short); device telemetry (batteries) is drawn as the device's output against its own
baseline, discharge below it, never as load above a zero baseline."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from matplotlib.dates import date2num

from cpm.dashboard.charts import fleet_chart_data, fleet_chart_svg
from settlement.charts import (
    DEVICE_BASELINE,
    DEVICE_OUTPUT,
    event_settlement_chart_data,
    event_settlement_chart_svg,
    step_chart_figure,
)

LA = ZoneInfo("America/Los_Angeles")
START = dt.datetime(2026, 7, 15, 23, 0, tzinfo=dt.UTC)  # 16:00 PDT
END = dt.datetime(2026, 7, 16, 2, 0, tzinfo=dt.UTC)  # 19:00 PDT


def _settlement(inputs, *, start=START, end=END):
    program = SimpleNamespace(time_zone="America/Los_Angeles")
    event = SimpleNamespace(name="Heat wave", start=start, end=end)
    return SimpleNamespace(inputs=inputs, program=program, event=event, event_day=dt.date(2026, 7, 15))


def _meter_inputs(**extra):
    return {"method": "caiso-10-in-10", "start": START.isoformat(), "interval_minutes": 60,
            "baseline_kw": [2.0, 2.2, 2.4], "adjusted_baseline_kw": [2.1, 2.3, 2.5], "actual_kw": [0.5, 0.6, 0.7],
            "participated": [0, 3], **extra}


def test_meter_chart_covers_the_whole_event_window():
    chart = event_settlement_chart_data(_settlement(_meter_inputs()))
    # 3 hourly intervals [16:00, 17:00), [17:00, 18:00), [18:00, 19:00): 4 edges, the last one the event's end
    assert chart.edges == [dt.datetime(2026, 7, 15, h) for h in (16, 17, 18, 19)]
    assert chart.x_range == chart.window == (dt.datetime(2026, 7, 15, 16), dt.datetime(2026, 7, 15, 19))
    assert chart.counted == (dt.datetime(2026, 7, 15, 16), dt.datetime(2026, 7, 15, 19))
    assert chart.series["Actual"] == [0.5, 0.6, 0.7] and chart.series["Baseline"] == [2.0, 2.2, 2.4]
    ax = step_chart_figure(chart).axes[0]
    lines = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(lines) == {"Baseline", "Adjusted baseline", "Actual"}
    for line in lines.values():  # every series is drawn to 19:00, the last value held over the last interval
        assert line.get_xdata()[-1] == dt.datetime(2026, 7, 15, 19)
    assert list(lines["Actual"].get_ydata()) == [0.5, 0.6, 0.7, 0.7]
    assert ax.get_xlim() == (date2num(dt.datetime(2026, 7, 15, 16)), date2num(dt.datetime(2026, 7, 15, 19)))


def test_counted_intervals_end_at_the_opt_out_edge():
    chart = event_settlement_chart_data(_settlement(_meter_inputs(participated=[0, 2])))
    assert chart.counted == (dt.datetime(2026, 7, 15, 16), dt.datetime(2026, 7, 15, 18))


def test_battery_telemetry_is_discharge_below_its_own_baseline():
    inputs = {"method": "device-telemetry", "start": START.isoformat(), "interval_minutes": 60,
              "baseline_kw": [0.0, 0.0, 0.0], "adjusted_baseline_kw": [0.0, 0.0, 0.0], "actual_kw": [5.0, 5.0, 2.5],
              "participated": [0, 3]}
    chart = event_settlement_chart_data(_settlement(inputs))
    assert set(chart.series) == {DEVICE_BASELINE, DEVICE_OUTPUT}
    assert chart.series[DEVICE_BASELINE] == [0.0, 0.0, 0.0]
    assert chart.series[DEVICE_OUTPUT] == [-5.0, -5.0, -2.5]  # discharge below the baseline
    drop = [b - o for b, o in zip(chart.series[DEVICE_BASELINE], chart.series[DEVICE_OUTPUT], strict=True)]
    assert drop == [5.0, 5.0, 2.5]  # the kW delivered, as for a meter's load drop
    assert "discharge < 0" in chart.ylabel
    ax = step_chart_figure(chart).axes[0]
    low, high = ax.get_ylim()
    assert low < -5.0 and high >= 0
    output = next(line for line in ax.lines if line.get_label() == DEVICE_OUTPUT)
    assert max(output.get_ydata()) <= 0 and output.get_xdata()[-1] == dt.datetime(2026, 7, 15, 19)
    assert {line.get_label() for line in ax.lines if not line.get_label().startswith("_")} == {
        DEVICE_BASELINE, DEVICE_OUTPUT}
    assert event_settlement_chart_svg(_settlement(inputs)).startswith("<svg")


def test_no_inputs_no_chart():
    assert event_settlement_chart_data(_settlement({})) is None
    assert event_settlement_chart_svg(_settlement({})) == ""


@pytest.mark.parametrize("n", [1, 2])
def test_fleet_chart_reaches_the_event_end(n):
    starts = [START + dt.timedelta(hours=i) for i in range(n)]
    series = {"Baseline": [8.0] * n, "Adjusted baseline": [8.0] * n, "Actual": [4.5] * n}
    chart = fleet_chart_data(starts, series, tz=LA, window=(START, END), title="t")
    assert chart.edges[0] == dt.datetime(2026, 7, 15, 16) and chart.edges[-1] == dt.datetime(2026, 7, 15, 19)
    assert len(chart.edges) == n + 1
    ax = step_chart_figure(chart).axes[0]
    assert all(line.get_xdata()[-1] == dt.datetime(2026, 7, 15, 19) for line in ax.lines
               if line.get_label() in series)


def test_fleet_chart_of_batteries_draws_discharge_below_zero():
    starts = [START, START + dt.timedelta(hours=1)]
    chart = fleet_chart_data(starts, {"Baseline": [0.0, 0.0], "Adjusted baseline": [0.0, 0.0],
                                      "Actual": [9.5, 7.0]}, tz=LA, window=(START, START + dt.timedelta(hours=2)),
                             title="t", device_telemetry=True)
    assert chart.series == {DEVICE_BASELINE: [0.0, 0.0], DEVICE_OUTPUT: [-9.5, -7.0]}
    assert chart.edges[-1] == dt.datetime(2026, 7, 15, 18)
    assert fleet_chart_svg(starts, {"Actual": [9.5, 7.0]}, tz=LA, window=(START, START + dt.timedelta(hours=2)),
                           title="t", device_telemetry=True).startswith("<svg")
