"""Baseline engine: hand-computed X-of-Y baselines for every preset and custom values.

Series are hourly in America/Los_Angeles unless said otherwise, so kWh per interval == kW. Levels per day are chosen
so that the expected baseline can be computed by hand in the comments.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from settlement.baselines import (
    INSUFFICIENT_DATA,
    OK,
    PRESETS,
    BaselineParams,
    IntervalSeries,
    baseline_batch,
    baseline_for_event,
    resolve_params,
)

LA = ZoneInfo("America/Los_Angeles")
D = dt.date


def make_series(first: dt.date, last: dt.date, kw, *, tz=LA, minutes=60) -> IntervalSeries:
    """Regular series from local midnight of ``first`` to local midnight after ``last``; kw(local_dt) -> kW."""
    start = dt.datetime.combine(first, dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=tz).astimezone(dt.UTC)
    step = dt.timedelta(minutes=minutes)
    values = []
    t = start
    while t < end:
        values.append(kw(t.astimezone(tz)) * minutes / 60)
        t += step
    return IntervalSeries(start=start, interval_minutes=minutes, kwh=np.array(values, dtype=float))


def event(day: dt.date, h0: int, h1: int, tz=LA) -> tuple[dt.datetime, dt.datetime]:
    return (dt.datetime.combine(day, dt.time(h0), tzinfo=tz), dt.datetime.combine(day, dt.time(h1), tzinfo=tz))


def profile(levels: dict, *, default=2.0, event_day=None, adj_kw=None, event_kw=None):
    """kW = levels[day] all day; on ``event_day``: ``adj_kw`` in 12:00-15:00 and ``event_kw`` from 16:00."""

    def kw(t: dt.datetime) -> float:
        if t.date() == event_day:
            if adj_kw is not None and 12 <= t.hour < 15:
                return adj_kw
            if event_kw is not None and t.hour >= 16:
                return event_kw
        return levels.get(t.date(), default)

    return kw


def weekend_default(level_weekday=2.0, level_weekend=10.0):
    return lambda day: level_weekend if day.weekday() >= 5 else level_weekday


def run(series, ev, method="caiso-10-in-10", overrides=None, **kw):
    return baseline_for_event(series=series, tz=LA, event_start=ev[0], event_end=ev[1],
                              params=resolve_params(method, overrides), **kw)


# ------------------------------------------------------------------------------------------------ CAISO 10-in-10
def caiso_weekday_series(adj_kw, event_kw=1.0, extra=None):
    # Event Wed 2026-07-15 16:00-18:00 PDT. Weekdays at 2 kW except Jul 14 = 3 and Jul 13 = 1; weekends 10 kW;
    # Jul 3 (observed Independence Day, a holiday) 100 kW and Jul 29.. not used; Jun 29 (11th weekday) 50 kW.
    levels = {D(2026, 7, 14): 3.0, D(2026, 7, 13): 1.0, D(2026, 7, 3): 100.0, D(2026, 6, 29): 50.0}
    for k in range(60):
        day = D(2026, 5, 20) + dt.timedelta(days=k)
        if day.weekday() >= 5:
            levels[day] = 10.0
    levels.update(extra or {})
    return make_series(D(2026, 5, 20), D(2026, 7, 15),
                       profile(levels, event_day=D(2026, 7, 15), adj_kw=adj_kw, event_kw=event_kw))


def test_caiso_10_in_10_hand_computed():
    series = caiso_weekday_series(adj_kw=2.2)
    r = run(series, event(D(2026, 7, 15), 16, 18), holidays={D(2026, 7, 3)})
    assert r.status == OK
    # 10 most recent weekdays, skipping the Jul 3 holiday and weekends:
    assert r.selected_days == [D(2026, 7, 14), D(2026, 7, 13), D(2026, 7, 10), D(2026, 7, 9), D(2026, 7, 8),
                               D(2026, 7, 7), D(2026, 7, 6), D(2026, 7, 2), D(2026, 7, 1), D(2026, 6, 30)]
    excluded = {e["day"]: e["reason"] for e in r.excluded_days}
    assert excluded[D(2026, 7, 3)] == "holiday"
    assert excluded[D(2026, 7, 12)] == "day_type" and excluded[D(2026, 7, 4)] == "day_type"
    assert D(2026, 6, 29) not in excluded  # walk stopped after the 10th day
    # unadjusted = (3 + 1 + 8 x 2) / 10 = 2.0 kW; adjustment window 12:00-15:00 (3 h ending 1 h before 16:00):
    # ratio = (3 x 2.2) / (3 x 2.0) = 1.1 (inside the 0.8-1.2 cap) -> adjusted 2.2 kW; actual 1.0 kW
    assert r.adjustment == {"kind": "multiplicative", "raw": pytest.approx(1.1), "applied": pytest.approx(1.1)}
    assert [i["baseline_kw"] for i in r.intervals] == pytest.approx([2.0, 2.0])
    assert [i["adjusted_baseline_kw"] for i in r.intervals] == pytest.approx([2.2, 2.2])
    assert [i["actual_kw"] for i in r.intervals] == pytest.approx([1.0, 1.0])
    assert [i["reduction_kwh"] for i in r.intervals] == pytest.approx([1.2, 1.2])
    assert r.intervals[0]["start"] == dt.datetime(2026, 7, 15, 23, 0, tzinfo=dt.UTC)
    assert r.totals == pytest.approx({"kwh_avoided": 2.4, "kw_drop_max": 1.2, "kw_drop_min": 1.2,
                                      "kw_drop_avg": 1.2})
    assert r.flags == []


def test_caiso_without_the_holiday_uses_jul_3():
    # Not passing the holiday: Jul 3 (100 kW) is a plain weekday and displaces Jun 30:
    # unadjusted = (3 + 1 + 100 + 7 x 2) / 10 = 11.8 kW
    series = caiso_weekday_series(adj_kw=11.8)
    r = run(series, event(D(2026, 7, 15), 16, 18))
    assert D(2026, 7, 3) in r.selected_days and D(2026, 6, 30) not in r.selected_days
    assert r.intervals[0]["baseline_kw"] == pytest.approx(11.8)


def test_multiplicative_cap_high_and_low():
    # ratio 3.0 / 2.0 = 1.5 -> capped at 1.2: adjusted 2.4 kW
    high = run(caiso_weekday_series(adj_kw=3.0), event(D(2026, 7, 15), 16, 18), holidays={D(2026, 7, 3)})
    assert high.adjustment["raw"] == pytest.approx(1.5) and high.adjustment["applied"] == pytest.approx(1.2)
    assert high.flags == ["adjustment_capped_high"]
    assert high.intervals[0]["adjusted_baseline_kw"] == pytest.approx(2.4)
    assert high.totals["kwh_avoided"] == pytest.approx(2 * (2.4 - 1.0))
    # ratio 1.0 / 2.0 = 0.5 -> capped at 0.8: adjusted 1.6 kW
    low = run(caiso_weekday_series(adj_kw=1.0), event(D(2026, 7, 15), 16, 18), holidays={D(2026, 7, 3)})
    assert low.adjustment["raw"] == pytest.approx(0.5) and low.adjustment["applied"] == pytest.approx(0.8)
    assert low.flags == ["adjustment_capped_low"]
    assert low.intervals[1]["adjusted_baseline_kw"] == pytest.approx(1.6)


def test_zero_denominator_gives_ratio_one_and_a_flag():
    # every weekday at 0 kW: the baseline over the adjustment window sums to 0 -> ratio 1, flagged
    zero = {D(2026, 5, 20) + dt.timedelta(days=k): 0.0 for k in range(57)
            if (D(2026, 5, 20) + dt.timedelta(days=k)).weekday() < 5}
    r = run(caiso_weekday_series(adj_kw=2.0, extra=zero), event(D(2026, 7, 15), 16, 18), holidays={D(2026, 7, 3)})
    assert r.adjustment["applied"] == 1.0 and r.adjustment["raw"] is None
    assert "adjustment_zero_or_negative_baseline" in r.flags
    assert r.intervals[0]["reduction_kwh"] == pytest.approx(-1.0)  # baseline 0, actual 1: negative kept


def test_negative_net_load_kept_in_baseline():
    # A net-metered day at -1 kW on Jul 14: baseline (-1 + 1 + 8 x 2) / 10 = 1.6 kW (unadjusted, method none)
    series = caiso_weekday_series(adj_kw=2.0, extra={D(2026, 7, 14): -1.0})
    r = run(series, event(D(2026, 7, 15), 16, 18), overrides={"adjustment": "none"}, holidays={D(2026, 7, 3)})
    assert r.intervals[0]["baseline_kw"] == pytest.approx(1.6)
    assert r.adjustment == {"kind": "none", "raw": None, "applied": None}


def test_missing_intervals_exclude_the_day_only_in_windows():
    series = caiso_weekday_series(adj_kw=2.0)
    kwh = series.kwh.copy()
    start = series.start

    def idx(day, hour):
        return int((dt.datetime.combine(day, dt.time(hour), tzinfo=LA) - start).total_seconds() // 3600)

    kwh[idx(D(2026, 7, 13), 16)] = np.nan  # event window -> Jul 13 excluded
    kwh[idx(D(2026, 7, 10), 13)] = np.nan  # adjustment window -> Jul 10 excluded
    kwh[idx(D(2026, 7, 9), 3)] = np.nan  # outside both windows -> Jul 9 kept
    series = IntervalSeries(start=start, interval_minutes=60, kwh=kwh)
    r = run(series, event(D(2026, 7, 15), 16, 18), holidays={D(2026, 7, 3)})
    excluded = {e["day"]: e["reason"] for e in r.excluded_days}
    assert excluded[D(2026, 7, 13)] == "missing_data" and excluded[D(2026, 7, 10)] == "missing_data"
    assert D(2026, 7, 9) in r.selected_days
    # Jul 13 (1 kW) and Jul 10 out; Jun 29 (50 kW) and Jun 26 (2 kW) in:
    # unadjusted = (3 + 50 + 8 x 2) / 10 = 6.9 kW
    assert D(2026, 6, 29) in r.selected_days and len(r.selected_days) == 10
    assert r.intervals[0]["baseline_kw"] == pytest.approx(6.9)


def test_insufficient_days_is_explicit():
    # data only from Jul 1: weekdays Jul 1-14 minus the Jul 3 holiday = 9 < 10
    series = caiso_weekday_series(adj_kw=2.0)
    first = int((dt.datetime(2026, 7, 1, tzinfo=LA) - series.start).total_seconds() // 3600)
    kwh = series.kwh.copy()
    kwh[:first] = np.nan
    r = run(IntervalSeries(start=series.start, interval_minutes=60, kwh=kwh), event(D(2026, 7, 15), 16, 18),
            holidays={D(2026, 7, 3)})
    assert r.status == INSUFFICIENT_DATA
    assert r.reason == "only 9 eligible weekday days in the 45-day lookback; 10 required"
    assert r.selected_days == []
    assert np.isnan(r.baseline_kw).all() and np.isnan(r.totals["kwh_avoided"])
    reasons = {e["day"]: e["reason"] for e in r.excluded_days}
    assert reasons[D(2026, 7, 14)] == "not_selected" and reasons[D(2026, 6, 30)] == "missing_data"
    assert len(r.excluded_days) == 45


def test_event_days_and_abnormal_days_are_skipped():
    series = caiso_weekday_series(adj_kw=2.0)
    r = run(series, event(D(2026, 7, 15), 16, 18), holidays={D(2026, 7, 3)}, event_days={D(2026, 7, 14)},
            abnormal_days={D(2026, 7, 13)})
    excluded = {e["day"]: e["reason"] for e in r.excluded_days}
    assert excluded[D(2026, 7, 14)] == "event_day" and excluded[D(2026, 7, 13)] == "abnormal"
    # two 2 kW days replace them: Jun 29 (50) and Jun 26 (2): (50 + 9 x 2) / 10 = 6.8
    assert r.intervals[0]["baseline_kw"] == pytest.approx(6.8)


# ------------------------------------------------------------------------------------------------ CAISO 4-in-4
def weekend_series(event_day, extra, adj_kw, event_kw):
    levels = {}
    for k in range(60):
        day = event_day - dt.timedelta(days=k)
        levels[day] = 9.0 if day.weekday() < 5 else 2.0
    levels.update(extra)
    return make_series(event_day - dt.timedelta(days=50), event_day,
                       profile(levels, event_day=event_day, adj_kw=adj_kw, event_kw=event_kw))


def test_caiso_4_in_4_weekend_with_holiday_and_event_day():
    # Event Sat 2026-07-18. Weekend/holiday days walking back: Jul 12 (4 kW), Jul 11 (had an event: skipped),
    # Jul 5 (2), Jul 4 (2), Jul 3 (holiday, 4 kW). Unadjusted = (4 + 2 + 2 + 4) / 4 = 3.0 kW.
    # Adjustment: actual 3.3 / 3.0 = 1.1 -> 3.3 kW; actual 1.5 -> reduction 1.8 kWh per hour.
    day = D(2026, 7, 18)
    series = weekend_series(day, {D(2026, 7, 12): 4.0, D(2026, 7, 11): 100.0, D(2026, 7, 3): 4.0},
                            adj_kw=3.3, event_kw=1.5)
    r = run(series, event(day, 16, 18), method="caiso-4-in-4", holidays={D(2026, 7, 3)},
            event_days={D(2026, 7, 11)})
    assert r.status == OK and r.day_type == "weekend_holiday"
    assert r.selected_days == [D(2026, 7, 12), D(2026, 7, 5), D(2026, 7, 4), D(2026, 7, 3)]
    assert [i["baseline_kw"] for i in r.intervals] == pytest.approx([3.0, 3.0])
    assert r.adjustment["applied"] == pytest.approx(1.1)
    assert r.totals["kwh_avoided"] == pytest.approx(3.6)
    reasons = {e["day"]: e["reason"] for e in r.excluded_days}
    assert reasons[D(2026, 7, 11)] == "event_day" and reasons[D(2026, 7, 17)] == "day_type"


def test_caiso_auto_picks_by_event_day_type():
    day = D(2026, 7, 18)
    series = weekend_series(day, {D(2026, 7, 12): 4.0, D(2026, 7, 3): 4.0}, adj_kw=None, event_kw=1.0)
    r = run(series, event(day, 16, 18), method="caiso-auto", holidays={D(2026, 7, 3)})
    # weekend event: 4-in-4 = Jul 12 (4), 11 (2), 5 (2), 4 (2) -> 2.5 kW; adjustment 2.0 / 2.5 = 0.8 (at the cap)
    assert r.params.x == 4 and r.day_type == "weekend_holiday"
    assert r.intervals[0]["baseline_kw"] == pytest.approx(2.5)
    assert r.adjustment["raw"] == pytest.approx(0.8)
    # weekday event (Wed Jul 15) on the same data: 10 weekdays at 9 kW
    r2 = run(series, event(D(2026, 7, 15), 16, 18), method="caiso-auto", holidays={D(2026, 7, 3)})
    assert r2.params.x == 10 and r2.day_type == "weekday" and r2.intervals[0]["baseline_kw"] == pytest.approx(9.0)
    # an event on a holiday uses weekend_holiday days
    r3 = run(series, event(D(2026, 7, 3), 16, 18), method="caiso-auto", holidays={D(2026, 7, 3)})
    assert r3.day_type == "weekend_holiday" and r3.selected_days[0] == D(2026, 6, 28)


# ------------------------------------------------------------------------------------------------ PJM
def test_pjm_high_4_of_5_low_usage_tie_and_additive():
    # Event Wed 2026-07-15. Weekdays walking back: Jul 14 = 0.2, 13 = 4, 10 = 3, 9 = 5, 8 = 3.5, 7 = 3, 6 = 2.
    # Low-usage screen: mean of the first 5 = (0.2 + 4 + 3 + 5 + 3.5) / 5 = 3.14; 25 % = 0.785 > 0.2 -> Jul 14 out.
    # Window (first 5 remaining) = 13, 10, 9, 8, 7. Highest 4 = 9 (5), 13 (4), 8 (3.5), and the tie 10 (3) vs
    # 7 (3) goes to the more recent Jul 10. Baseline = (5 + 4 + 3.5 + 3) / 4 = 3.875 kW.
    # Additive: mean actual 4.0 - mean baseline 3.875 = +0.125 kW -> adjusted 4.0; actual 1.0 -> 3 kWh per hour.
    levels = {D(2026, 7, 14): 0.2, D(2026, 7, 13): 4.0, D(2026, 7, 10): 3.0, D(2026, 7, 9): 5.0,
              D(2026, 7, 8): 3.5, D(2026, 7, 7): 3.0, D(2026, 7, 6): 2.0}
    series = make_series(D(2026, 5, 25), D(2026, 7, 15),
                         profile(levels, event_day=D(2026, 7, 15), adj_kw=4.0, event_kw=1.0))
    r = run(series, event(D(2026, 7, 15), 16, 19), method="pjm-high-4-of-5")
    assert r.status == OK
    assert r.selected_days == [D(2026, 7, 13), D(2026, 7, 10), D(2026, 7, 9), D(2026, 7, 8)]
    reasons = {e["day"]: e["reason"] for e in r.excluded_days}
    assert reasons[D(2026, 7, 14)] == "low_usage" and reasons[D(2026, 7, 7)] == "not_selected"
    assert D(2026, 7, 6) not in reasons
    assert [i["baseline_kw"] for i in r.intervals] == pytest.approx([3.875] * 3)
    assert r.adjustment == {"kind": "additive", "raw": pytest.approx(0.125), "applied": pytest.approx(0.125)}
    assert [i["adjusted_baseline_kw"] for i in r.intervals] == pytest.approx([4.0] * 3)
    assert r.totals["kwh_avoided"] == pytest.approx(9.0)


def test_additive_with_cap():
    levels = {D(2026, 7, 14): 2.0}
    series = make_series(D(2026, 5, 25), D(2026, 7, 15),
                         profile(levels, event_day=D(2026, 7, 15), adj_kw=5.0, event_kw=1.0))
    # all weekdays 2 kW, actual 5 kW: raw +3.0 kW, capped to +1.0 -> adjusted 3.0
    r = run(series, event(D(2026, 7, 15), 16, 18), method="pjm-high-4-of-5", overrides={"adjustment_cap": [-1, 1]})
    assert r.adjustment["raw"] == pytest.approx(3.0) and r.adjustment["applied"] == pytest.approx(1.0)
    assert r.intervals[0]["adjusted_baseline_kw"] == pytest.approx(3.0)
    assert r.flags == ["adjustment_capped_high"]


def test_custom_values_and_15_minute_data():
    # custom: X = 2 of Y = 3 most recent weekdays in a 10-day lookback, no adjustment, 15-minute data.
    # Weekdays before Wed Jul 15: Jul 14 (2 kW), Jul 13 (4 kW), Jul 10 (9 kW: in the window, not selected).
    # Baseline = (2 + 4) / 2 = 3 kW per 15-min interval; actual 1 kW -> reduction (3 - 1) x 0.25 h = 0.5 kWh each.
    levels = {D(2026, 7, 14): 2.0, D(2026, 7, 13): 4.0, D(2026, 7, 10): 9.0}
    series = make_series(D(2026, 7, 1), D(2026, 7, 15), profile(levels, event_day=D(2026, 7, 15), event_kw=1.0),
                         minutes=15)
    r = run(series, event(D(2026, 7, 15), 16, 17), method="custom",
            overrides={"x": 2, "y": 3, "lookback_days": 10, "adjustment": "none"})
    assert len(r.intervals) == 4
    assert [i["baseline_kw"] for i in r.intervals] == pytest.approx([3.0] * 4)
    assert [i["reduction_kwh"] for i in r.intervals] == pytest.approx([0.5] * 4)
    assert r.totals["kwh_avoided"] == pytest.approx(2.0)
    assert {e["day"]: e["reason"] for e in r.excluded_days}[D(2026, 7, 10)] == "not_selected"


def test_params_validation():
    with pytest.raises(ValueError, match="x: must not exceed y"):
        resolve_params("custom", {"x": 5, "y": 3})
    with pytest.raises(ValueError, match="selection"):
        resolve_params("custom", {"selection": "median"})
    with pytest.raises(ValueError, match="unknown baseline method"):
        resolve_params("nyiso-x")
    with pytest.raises(ValueError, match="bogus: unknown baseline parameter"):
        resolve_params("caiso-10-in-10", {"bogus": 1})
    assert PRESETS["pjm-high-4-of-5"].adjustment_cap is None
    assert BaselineParams().adjustment_cap == (0.8, 1.2)


# ------------------------------------------------------------------------------------------------ DST
def wall_profile(t: dt.datetime) -> float:
    """kW depends only on the local wall-clock hour: 1 + hour / 10."""
    return 1.0 + t.hour / 10


def test_event_on_spring_dst_day_aligns_by_wall_clock():
    # Sun 2026-03-08 (23 h). 4-in-4: Mar 7, 1, Feb 28, 22. Baseline at 16:00 = 2.6, 17:00 = 2.7 on every day;
    # by row position the event day would be off by one hour (2.7, 2.8). Adjustment window 12-15: ratio 1.
    day = D(2026, 3, 8)
    series = make_series(D(2026, 1, 20), day, lambda t: 1.0 if t.date() == day and t.hour >= 16 else wall_profile(t))
    r = run(series, event(day, 16, 18), method="caiso-4-in-4")
    assert r.selected_days == [D(2026, 3, 7), D(2026, 3, 1), D(2026, 2, 28), D(2026, 2, 22)]
    assert [i["baseline_kw"] for i in r.intervals] == pytest.approx([2.6, 2.7])
    assert r.adjustment["raw"] == pytest.approx(1.0)
    assert r.intervals[0]["start"] == dt.datetime(2026, 3, 8, 23, 0, tzinfo=dt.UTC)  # 16:00 PDT
    assert r.totals["kwh_avoided"] == pytest.approx(1.6 + 1.7)


def test_spring_dst_day_in_window():
    # Event Sat 2026-03-14 16-18: window includes Sun Mar 8 (23 h). Wall-clock alignment gives 2.6 / 2.7 again.
    day = D(2026, 3, 14)
    series = make_series(D(2026, 1, 20), day, lambda t: 1.0 if t.date() == day and t.hour >= 16 else wall_profile(t))
    r = run(series, event(day, 16, 18), method="caiso-4-in-4")
    assert D(2026, 3, 8) in r.selected_days
    assert [i["baseline_kw"] for i in r.intervals] == pytest.approx([2.6, 2.7])
    # an event at 02:00 wall time: that hour does not exist on Mar 8, so the day is screened out (missing_data)
    r2 = run(series, event(day, 2, 3), method="caiso-4-in-4", overrides={"adjustment": "none"})
    assert {e["day"]: e["reason"] for e in r2.excluded_days}[D(2026, 3, 8)] == "missing_data"
    assert r2.intervals[0]["baseline_kw"] == pytest.approx(1.2)


def test_event_on_autumn_dst_day_and_in_window():
    # Sun 2026-11-01 (25 h): 16:00 PST is row 17 from local midnight; the baseline must still be the 16:00 value.
    day = D(2026, 11, 1)
    series = make_series(D(2026, 9, 1), D(2026, 11, 7), wall_profile)
    r = run(series, event(day, 16, 18), method="caiso-4-in-4")
    assert [i["baseline_kw"] for i in r.intervals] == pytest.approx([2.6, 2.7])
    assert r.intervals[0]["start"] == dt.datetime(2026, 11, 2, 0, 0, tzinfo=dt.UTC)  # 16:00 PST
    # Event Sat Nov 7 with Nov 1 in the window:
    r2 = run(series, event(D(2026, 11, 7), 16, 18), method="caiso-4-in-4")
    assert r2.selected_days[0] == day
    assert [i["baseline_kw"] for i in r2.intervals] == pytest.approx([2.6, 2.7])


def test_repeated_autumn_hour_reads_mean_of_both():
    # 01:00 occurs twice on Nov 1: 3 kW (PDT) then 5 kW (PST): mean 4. Other days 2 kW at 01:00.
    # Event Sat Nov 7 01:00-02:00, 4-in-4 (Nov 1, Oct 31, 25, 24), no adjustment: (4 + 2 + 2 + 2) / 4 = 2.5 kW.
    def kw(t):
        if t.hour == 1 and t.date() == D(2026, 11, 1):
            return 3.0 if t.utcoffset() == dt.timedelta(hours=-7) else 5.0
        return 2.0

    series = make_series(D(2026, 9, 1), D(2026, 11, 7), kw)
    r = run(series, event(D(2026, 11, 7), 1, 2), method="caiso-4-in-4", overrides={"adjustment": "none"})
    assert r.selected_days == [D(2026, 11, 1), D(2026, 10, 31), D(2026, 10, 25), D(2026, 10, 24)]
    assert r.intervals[0]["baseline_kw"] == pytest.approx(2.5)


def test_misaligned_event_is_an_error():
    series = make_series(D(2026, 7, 1), D(2026, 7, 15), lambda t: 1.0)
    with pytest.raises(ValueError, match="event_start must fall on the 60-minute interval grid"):
        baseline_for_event(series=series, tz=LA, event_start=dt.datetime(2026, 7, 15, 16, 30, tzinfo=LA),
                           event_end=dt.datetime(2026, 7, 15, 18, tzinfo=LA), params=PRESETS["caiso-10-in-10"])


def test_missing_event_day_actuals_is_insufficient():
    series = caiso_weekday_series(adj_kw=2.0)
    kwh = series.kwh.copy()
    kwh[-1] = np.nan  # 23:00 on the event day: outside the window, fine
    idx = int((dt.datetime(2026, 7, 15, 17, tzinfo=LA) - series.start).total_seconds() // 3600)
    kwh[idx] = np.nan
    r = run(IntervalSeries(start=series.start, interval_minutes=60, kwh=kwh), event(D(2026, 7, 15), 16, 18),
            holidays={D(2026, 7, 3)})
    assert r.status == INSUFFICIENT_DATA
    assert r.reason == "event-day meter data missing for 1 of 2 event intervals"
    assert r.intervals[0]["baseline_kw"] == pytest.approx(2.0)  # the baseline itself is still known


# ------------------------------------------------------------------------------------------------ batch == single
@pytest.mark.parametrize("method,day", [("caiso-10-in-10", D(2026, 7, 15)), ("pjm-high-4-of-5", D(2026, 7, 15)),
                                        ("caiso-auto", D(2026, 11, 7)), ("caiso-auto", D(2026, 3, 8))])
def test_batch_equals_single(method, day):
    rng = np.random.default_rng(7)
    first = day - dt.timedelta(days=50)
    base = make_series(first, day, wall_profile)
    n = 40
    kwh = rng.gamma(2.0, 1.0, size=(n, base.kwh.size))
    kwh[rng.random(kwh.shape) < 0.004] = np.nan  # scattered gaps
    kwh[3, :] = np.nan  # no data at all
    kwh[5, : kwh.shape[1] - 24 * 12] = np.nan  # too few days
    kwh[7] = np.round(kwh[7])  # ties for "highest"
    kwh[9] *= 0.01
    kwh[9, :: 24 * 3] = 50  # low-usage screen work
    kwh[11] = -kwh[11]  # net export: zero/negative denominator
    event_days = {k: {day - dt.timedelta(days=int(rng.integers(1, 20)))} for k in range(0, n, 3)}
    abnormal = [{day - dt.timedelta(days=int(rng.integers(1, 20)))} if k % 4 == 0 else set() for k in range(n)]
    holidays = {D(2026, 7, 3), D(2026, 10, 12)}
    ev = event(day, 16, 19)
    params = resolve_params(method, {"adjustment_cap": [0.9, 1.1]} if method == "caiso-auto" else None)
    batch = baseline_batch(start=base.start, interval_minutes=60, kwh=kwh, tz=LA, event_start=ev[0],
                           event_end=ev[1], params=params, holidays=holidays, event_days=event_days,
                           abnormal_days=abnormal, chunk_size=16)
    statuses = set()
    for k in range(n):
        single = baseline_for_event(series=IntervalSeries(start=base.start, interval_minutes=60, kwh=kwh[k]),
                                    tz=LA, event_start=ev[0], event_end=ev[1], params=params, holidays=holidays,
                                    event_days=event_days.get(k, ()), abnormal_days=abnormal[k])
        statuses.add(single.status)
        assert (single.status == OK) == bool(batch.ok[k]), k
        assert single.selected_days == batch.selected_days(k), k
        assert single.excluded_days == batch.excluded_days(k), k
        for name in ("baseline_kw", "adjusted_baseline_kw", "actual_kw", "reduction_kwh"):
            np.testing.assert_allclose(getattr(batch, name)[k], getattr(single, name), rtol=1e-12, atol=1e-12,
                                       equal_nan=True, err_msg=f"{name} row {k}")
        applied = single.adjustment["applied"]
        np.testing.assert_allclose(batch.adjustment_applied[k], np.nan if applied is None else applied, rtol=1e-12)
        for key, value in single.totals.items():
            np.testing.assert_allclose(getattr(batch, key)[k], value, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert statuses == {OK, INSUFFICIENT_DATA}
