"""Charts of an event on a DST day are drawn on elapsed time, labelled with the local clock.

The x axis used to be the local wall clock itself. On the 25-hour fall-back day (America/Los_Angeles, 2026-11-01)
the edges of a 00:00 PDT - 04:00 PST event read 00:00, 01:00, 01:00, 02:00, 03:00, 04:00: the interval 01:00-02:00
PDT was drawn from 01:00 to 01:00 (no width: its reading vanished) and the chart showed four hours of a five-hour
event. On the 23-hour spring-forward day (2026-03-08) the interval 01:00 PST - 03:00 PDT, one hour, was drawn two
hours wide. Now each interval is as wide as it lasts and the ticks read the local clock with its abbreviation where
the chart crosses the change ("01:00 PDT", "01:00 PST")."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
from matplotlib.dates import date2num

from cpm.dashboard.charts import fleet_chart_data
from settlement.charts import event_settlement_chart_data, step_chart_figure

LA = ZoneInfo("America/Los_Angeles")
UTC = dt.UTC
HOUR = 1 / 24  # one hour in matplotlib date units (days)


def _chart(start_utc, n, actual):
    inputs = {"method": "caiso-4-in-4", "start": start_utc.isoformat(), "interval_minutes": 60,
              "baseline_kw": [2.0] * n, "adjusted_baseline_kw": [2.0] * n, "actual_kw": actual,
              "participated": [0, n]}
    end = start_utc + dt.timedelta(hours=n)
    settlement = SimpleNamespace(inputs=inputs, program=SimpleNamespace(time_zone="America/Los_Angeles"),
                                 event=SimpleNamespace(name="Night test", start=start_utc, end=end),
                                 event_day=start_utc.astimezone(LA).date())
    return event_settlement_chart_data(settlement)


def _drawn(ax, label):
    line = next(line for line in ax.lines if line.get_label() == label)
    return [date2num(x) for x in line.get_xdata()], list(line.get_ydata())


def _labels(ax):
    ax.figure.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels()]


def test_fall_back_day_draws_each_of_five_hours_one_hour_wide():
    start = dt.datetime(2026, 11, 1, 0, tzinfo=LA).astimezone(UTC)  # 00:00 PDT; the event ends 04:00 PST, 5 h later
    chart = _chart(start, 5, [0.5, 0.6, 0.7, 0.8, 0.9])
    ax = step_chart_figure(chart).axes[0]
    xs, ys = _drawn(ax, "Actual")
    assert ys == [0.5, 0.6, 0.7, 0.8, 0.9, 0.9]
    assert np.allclose(np.diff(xs), HOUR)  # 0.6 kW (01:00-02:00 PDT) drawn one hour wide, not zero
    low, high = ax.get_xlim()
    assert np.isclose(high - low, 5 * HOUR)
    labels = _labels(ax)
    assert "01:00 PDT" in labels and "01:00 PST" in labels and "04:00 PST" in labels
    window = next(p for p in ax.patches if p.get_label() == "Event window")
    x0, x1 = window.get_x(), window.get_x() + window.get_width()
    assert np.isclose(x1 - x0, 5 * HOUR)


def test_spring_forward_day_draws_the_hour_after_01_00_one_hour_wide():
    start = dt.datetime(2026, 3, 8, 0, tzinfo=LA).astimezone(UTC)  # 00:00 PST; 04:00 PDT is 3 h later
    chart = _chart(start, 3, [0.5, 0.6, 0.7])
    ax = step_chart_figure(chart).axes[0]
    xs, _ = _drawn(ax, "Actual")
    assert np.allclose(np.diff(xs), HOUR)  # 01:00 PST - 03:00 PDT lasts one hour
    assert np.isclose(ax.get_xlim()[1] - ax.get_xlim()[0], 3 * HOUR)
    labels = _labels(ax)
    assert "03:00 PDT" in labels and "02:00 PDT" not in labels and "02:00 PST" not in labels


def test_fleet_chart_on_the_fall_back_day_covers_the_repeated_hour():
    starts = [dt.datetime(2026, 11, 1, 7, tzinfo=UTC) + dt.timedelta(hours=i) for i in range(5)]
    chart = fleet_chart_data(starts, {"Actual": [1.0, 2.0, 3.0, 4.0, 5.0]}, tz=LA,
                             window=(starts[0], starts[-1] + dt.timedelta(hours=1)), title="t")
    xs, _ = _drawn(step_chart_figure(chart).axes[0], "Actual")
    assert np.allclose(np.diff(xs), HOUR)
