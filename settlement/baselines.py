"""Baseline engine: parameterised day-matching "X of Y" customer load baselines with a day-of adjustment.

Pure module (numpy + zoneinfo, no Django). It implements the family of methods used by ISOs and utility CPM systems:

- CAISO 10-in-10 and 4-in-4: CAISO *Business Practice Manual for Demand Response*, section "Customer Load Baseline
  Methodology" (10 most recent eligible weekdays within 45 days; 4 most recent weekend/holiday days; day-of
  adjustment over the 3 hours ending 1 hour before the event, multiplicative, capped at +/-20 %).
- PJM "High 4 of 5": PJM *Manual 11: Energy & Ancillary Services Market Operations*, section 10 (Customer Baseline
  Load): 5 most recent eligible weekdays within 45 days, days below 25 % of the average event-period usage screened
  out, the 4 with the highest event-period usage kept, Symmetric Additive Adjustment (3 hours ending 1 hour before
  the event, uncapped).

Vocabulary
    *event window*: the real (UTC) intervals ``[event_start, event_end)``.
    *adjustment window*: the ``adjustment_hours`` hours that end ``adjustment_gap_hours`` before ``event_start``.
    *candidate days*: local calendar days walked back from the day before the event, at most ``lookback_days``.
    *window*: the first Y candidate days that survive every screen; X of them are *selected*.

Alignment: every event or adjustment interval is mapped to its local wall-clock time on the event day; on a candidate
day the baseline reads the interval that starts at the same wall-clock time (never the same row position, since 23-
and 25-hour days occur). A wall-clock time that does not exist on a candidate day (the skipped spring hour) makes that
interval missing, so the day is screened out as ``missing_data``; a wall-clock time that occurs twice (the repeated
autumn hour) reads the mean demand of both occurrences.

Units: input interval energy in kWh per interval; baselines and actuals in kW (average demand over the interval);
reductions in kWh. Gaps are NaN, never zeros.

Two entry points give identical results (tested): ``baseline_for_event`` (one service point, written plainly, day by
day) and ``baseline_batch`` (many service points at once, arrays shaped ``[n_service_points, n_days, n_intervals]``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from programs.baseline_params import (  # noqa: F401  (the engine's parameters: defined by the program)
    ADJUSTMENTS,
    DAY_TYPES,
    PRESETS,
    SELECTIONS,
    BaselineParams,
    resolve_params,
    validate_params,
)

from .meterdata.series import IntervalSeries  # noqa: F401  (the input series: defined by meter data)

UTC = dt.UTC

OK = "OK"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


# Reason codes per candidate day (arrays of the batch result); names are what reports and the CLI show.
R_NOT_REACHED = 0  # after the window was complete: not looked at
R_SELECTED = 1
R_DAY_TYPE = 2
R_HOLIDAY = 3
R_EVENT_DAY = 4
R_ABNORMAL = 5
R_MISSING = 6
R_LOW_USAGE = 7
R_NOT_SELECTED = 8
REASONS = {
    R_NOT_REACHED: "not_reached",
    R_SELECTED: "selected",
    R_DAY_TYPE: "day_type",
    R_HOLIDAY: "holiday",
    R_EVENT_DAY: "event_day",
    R_ABNORMAL: "abnormal",
    R_MISSING: "missing_data",
    R_LOW_USAGE: "low_usage",
    R_NOT_SELECTED: "not_selected",
}

# Flags of the day-of adjustment.
F_ZERO_DENOMINATOR = "adjustment_zero_or_negative_baseline"
F_CAPPED_LOW = "adjustment_capped_low"
F_CAPPED_HIGH = "adjustment_capped_high"
F_ADJ_ACTUAL_MISSING = "adjustment_actual_missing"
F_ACTUAL_MISSING = "event_actual_missing"


# --------------------------------------------------------------------------------------------------- parameters
# ``BaselineParams``, its presets and checks belong to the program (``programs.baseline_params``): a program's
# ``baseline_params`` are checked where the program is written, with the rules the engine applies.


# --------------------------------------------------------------------------------------------------- plan
@dataclass
class BaselinePlan:
    """Calendar part of a baseline, shared by every service point with the same data grid.

    ``cand_days``: candidate local dates, most recent first (all ``lookback_days`` of them); ``cand_reason``: the
    calendar screen per day (``R_SELECTED`` placeholder = passes calendar screens, else ``R_DAY_TYPE``/
    ``R_HOLIDAY``). ``ev_idx0/ev_idx1/ev_valid`` ``[n_cand, n_event]`` index the series for each event interval's
    wall-clock time on each candidate day (idx1 differs from idx0 for the repeated autumn hour); same for ``adj_*``.
    ``ev_actual_idx``/``adj_actual_idx``: real event-day intervals (-1 = outside the series).
    """

    params: BaselineParams
    event_day: dt.date
    weekend_holiday: bool
    event_starts: list[dt.datetime]
    adj_starts: list[dt.datetime]
    interval_hours: float
    cand_days: list[dt.date]
    cand_reason: np.ndarray
    ev_idx0: np.ndarray
    ev_idx1: np.ndarray
    ev_valid: np.ndarray
    adj_idx0: np.ndarray
    adj_idx1: np.ndarray
    adj_valid: np.ndarray
    ev_actual_idx: np.ndarray
    adj_actual_idx: np.ndarray


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def is_weekend_holiday(day: dt.date, holidays: Iterable[dt.date] = ()) -> bool:
    """Saturday, Sunday or a holiday of the program's calendar."""
    return day.weekday() >= 5 or day in set(holidays)


def _series_index(instant: dt.datetime, start: dt.datetime, step_s: int, n: int) -> int:
    offset = (instant - start).total_seconds()
    if offset < 0 or offset % step_s:
        return -1
    idx = int(offset // step_s)
    return idx if idx < n else -1


def _wall_indices(day: dt.date, wall: dt.time, tz: ZoneInfo, start: dt.datetime, step_s: int, n: int
                  ) -> tuple[int, int, bool]:
    naive = dt.datetime.combine(day, wall)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) != naive:
        return -1, -1, False  # skipped spring wall time: that interval does not exist on this day
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    i0 = _series_index(first, start, step_s, n)
    i1 = _series_index(second, start, step_s, n) if second != first else i0
    return i0, i1, (i0 >= 0 and i1 >= 0)


def build_plan(*, tz: str | ZoneInfo, event_start: dt.datetime, event_end: dt.datetime, params: BaselineParams,
               series_start: dt.datetime, interval_minutes: int, n_intervals: int,
               holidays: Iterable[dt.date] = ()) -> BaselinePlan:
    """Compute the calendar part of a baseline (see ``BaselinePlan``).

    ``event_start``/``event_end``: aware datetimes, aligned to the interval grid of the series. Raises ``ValueError``
    (naming the field) for a naive, misaligned or empty event window.
    """
    tz = _zone(tz)
    for name, value in (("event_start", event_start), ("event_end", event_end), ("series_start", series_start)):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware")
    event_start, event_end = event_start.astimezone(UTC), event_end.astimezone(UTC)
    series_start = series_start.astimezone(UTC)
    if event_end <= event_start:
        raise ValueError("event_end must be after event_start")
    step = dt.timedelta(minutes=interval_minutes)
    step_s = interval_minutes * 60
    for name, value in (("event_start", event_start), ("event_end", event_end)):
        if (value - series_start).total_seconds() % step_s:
            raise ValueError(f"{name} must fall on the {interval_minutes}-minute interval grid")
    holidays = frozenset(holidays)
    event_day = event_start.astimezone(tz).date()
    weekend_holiday = is_weekend_holiday(event_day, holidays)
    p = params.for_day_type(weekend_holiday)

    event_starts = []
    t = event_start
    while t < event_end:
        event_starts.append(t)
        t += step
    adj_starts = []
    if p.adjustment != "none":
        adj_end = event_start - dt.timedelta(hours=float(p.adjustment_gap_hours))
        t = adj_end - dt.timedelta(hours=float(p.adjustment_hours))
        if (t - series_start).total_seconds() % step_s:
            raise ValueError(f"the adjustment window must fall on the {interval_minutes}-minute interval grid")
        while t < adj_end:
            adj_starts.append(t)
            t += step

    cand_days = [event_day - dt.timedelta(days=k) for k in range(1, p.lookback_days + 1)]
    want_weekend = p.day_type == "weekend_holiday"
    reason = np.full(len(cand_days), R_SELECTED, dtype=np.int8)
    for i, day in enumerate(cand_days):
        if want_weekend:
            if not is_weekend_holiday(day, holidays):
                reason[i] = R_DAY_TYPE
        elif day in holidays:
            reason[i] = R_HOLIDAY
        elif day.weekday() >= 5:
            reason[i] = R_DAY_TYPE

    def walls(starts):
        out = []
        for s in starts:
            local = s.astimezone(tz)
            out.append(((local.date() - event_day).days, local.time().replace(tzinfo=None)))
        return out

    def grid(starts):
        w = walls(starts)
        shape = (len(cand_days), len(w))
        i0 = np.full(shape, -1, dtype=np.int64)
        i1 = np.full(shape, -1, dtype=np.int64)
        ok = np.zeros(shape, dtype=bool)
        for d, day in enumerate(cand_days):
            for j, (offset, wall) in enumerate(w):
                i0[d, j], i1[d, j], ok[d, j] = _wall_indices(day + dt.timedelta(days=offset), wall, tz,
                                                              series_start, step_s, n_intervals)
        return i0, i1, ok

    ev_idx0, ev_idx1, ev_valid = grid(event_starts)
    adj_idx0, adj_idx1, adj_valid = grid(adj_starts)
    return BaselinePlan(
        params=p, event_day=event_day, weekend_holiday=weekend_holiday, event_starts=event_starts,
        adj_starts=adj_starts, interval_hours=interval_minutes / 60.0, cand_days=cand_days, cand_reason=reason,
        ev_idx0=ev_idx0, ev_idx1=ev_idx1, ev_valid=ev_valid, adj_idx0=adj_idx0, adj_idx1=adj_idx1,
        adj_valid=adj_valid,
        ev_actual_idx=np.array([_series_index(s, series_start, step_s, n_intervals) for s in event_starts],
                               dtype=np.int64),
        adj_actual_idx=np.array([_series_index(s, series_start, step_s, n_intervals) for s in adj_starts],
                                dtype=np.int64),
    )


def _gather(kwh: np.ndarray, i0: np.ndarray, i1: np.ndarray, ok: np.ndarray, hours: float) -> np.ndarray:
    """kW at the given indices along the last axis of ``kwh`` (mean of both occurrences; NaN where invalid)."""
    a = np.take(kwh, np.where(ok, i0, 0), axis=-1)
    b = np.take(kwh, np.where(ok, i1, 0), axis=-1)
    return np.where(ok, (a + b) / 2.0, np.nan) / hours


# --------------------------------------------------------------------------------------------------- results
@dataclass
class BaselineResult:
    """Baseline of one service point for one event.

    ``intervals``: one dict per event interval ``{start, baseline_kw, adjusted_baseline_kw, actual_kw,
    reduction_kwh}`` (``reduction_kwh`` = (adjusted baseline - actual) x interval hours; may be negative; ``None``
    where unknown). ``totals``: ``kwh_avoided`` (sum of reductions), ``kw_drop_max/min/avg`` (adjusted baseline -
    actual). ``selected_days`` most recent first; ``excluded_days``: ``[{day, reason}]``. ``adjustment``: ``{kind,
    raw, applied}`` (ratio or kW). ``status`` is ``OK`` or ``INSUFFICIENT_DATA`` (then ``reason`` says why and no
    baseline is given).
    """

    status: str
    reason: str
    params: BaselineParams
    event_day: dt.date
    day_type: str
    selected_days: list[dt.date]
    excluded_days: list[dict]
    adjustment: dict
    flags: list[str]
    intervals: list[dict]
    totals: dict
    baseline_kw: np.ndarray = field(repr=False)
    adjusted_baseline_kw: np.ndarray = field(repr=False)
    actual_kw: np.ndarray = field(repr=False)
    reduction_kwh: np.ndarray = field(repr=False)

    def as_json(self) -> dict:
        def num(v):
            return None if v is None or not np.isfinite(v) else round(float(v), 6)

        return {
            "status": self.status,
            "reason": self.reason,
            "method": self.params.as_dict(),
            "event_day": self.event_day.isoformat(),
            "day_type": self.day_type,
            "selected_days": [d.isoformat() for d in self.selected_days],
            "excluded_days": [{"day": e["day"].isoformat(), "reason": e["reason"]} for e in self.excluded_days],
            "adjustment": {"kind": self.adjustment["kind"], "raw": num(self.adjustment["raw"]),
                           "applied": num(self.adjustment["applied"])},
            "flags": list(self.flags),
            "intervals": [{"start": i["start"].isoformat().replace("+00:00", "Z"),
                           **{k: num(i[k]) for k in ("baseline_kw", "adjusted_baseline_kw", "actual_kw",
                                                     "reduction_kwh")}} for i in self.intervals],
            "totals": {k: num(v) for k, v in self.totals.items()},
        }


def _insufficient_reason(p: BaselineParams, n: int, lookback: int) -> str:
    kind = "weekend/holiday" if p.day_type == "weekend_holiday" else "weekday"
    return (f"only {n} eligible {kind} day{'s' if n != 1 else ''} in the {lookback}-day lookback; "
            f"{p.y} required")


def _apply_cap(value: float, cap) -> tuple[float, str | None]:
    if cap is None:
        return value, None
    low, high = cap
    if low is not None and value < low:
        return float(low), F_CAPPED_LOW
    if high is not None and value > high:
        return float(high), F_CAPPED_HIGH
    return value, None


def _totals(adjusted: np.ndarray, actual: np.ndarray, hours: float) -> dict:
    drop = adjusted - actual
    if drop.size == 0 or np.isnan(drop).any():
        nan = float("nan")
        return {"kwh_avoided": nan, "kw_drop_max": nan, "kw_drop_min": nan, "kw_drop_avg": nan}
    return {"kwh_avoided": float(np.sum(drop) * hours), "kw_drop_max": float(np.max(drop)),
            "kw_drop_min": float(np.min(drop)), "kw_drop_avg": float(np.mean(drop))}


# --------------------------------------------------------------------------------------------------- single point
def baseline_for_event(*, series: IntervalSeries, tz: str | ZoneInfo, event_start: dt.datetime,
                       event_end: dt.datetime, params: BaselineParams, holidays: Iterable[dt.date] = (),
                       event_days: Iterable[dt.date] = (), abnormal_days: Iterable[dt.date] = ()) -> BaselineResult:
    """Baseline of one service point for one event (see the module docstring for the rules and sources).

    series: the service point's kWh per interval (UTC, regular, NaN = gap) covering the lookback and the event day.
    tz: the program's IANA zone (local days, day types, wall-clock alignment).
    event_start, event_end: aware datetimes, the event window ``[start, end)`` on the series' interval grid.
    params: ``BaselineParams`` (``resolve_params(method, overrides)``).
    holidays: the program calendar's holidays (local dates). event_days: local dates with another event for this
    service point (any program, not cancelled). abnormal_days: days flagged abnormal or outage.

    Returns a ``BaselineResult``; never raises for missing data (``INSUFFICIENT_DATA`` instead). Raises
    ``ValueError`` for a naive or misaligned event window or invalid params.
    """
    kwh = np.asarray(series.kwh, dtype=np.float64)
    plan = build_plan(tz=tz, event_start=event_start, event_end=event_end, params=params, series_start=series.start,
                      interval_minutes=series.interval_minutes, n_intervals=kwh.shape[-1], holidays=holidays)
    p, hours = plan.params, plan.interval_hours
    event_days, abnormal_days = frozenset(event_days), frozenset(abnormal_days)
    n_ev = len(plan.event_starts)

    ev_actual = np.array([kwh[i] / hours if i >= 0 else np.nan for i in plan.ev_actual_idx], dtype=np.float64)
    adj_actual = np.array([kwh[i] / hours if i >= 0 else np.nan for i in plan.adj_actual_idx], dtype=np.float64)

    # Walk back day by day, screening; keep every eligible day with its event/adjustment-window kW.
    reasons: list[int] = []
    eligible: list[tuple[int, np.ndarray, np.ndarray]] = []
    for d, day in enumerate(plan.cand_days):
        r = int(plan.cand_reason[d])
        ev = _gather(kwh, plan.ev_idx0[d], plan.ev_idx1[d], plan.ev_valid[d], hours)
        adj = _gather(kwh, plan.adj_idx0[d], plan.adj_idx1[d], plan.adj_valid[d], hours)
        if r == R_SELECTED:
            if day in event_days:
                r = R_EVENT_DAY
            elif day in abnormal_days:
                r = R_ABNORMAL
            elif np.isnan(ev).any() or np.isnan(adj).any():
                r = R_MISSING
        reasons.append(r)
        if r == R_SELECTED:
            eligible.append((d, ev, adj))

    # Low-usage screen (PJM): reference = mean event-window kW of the first Y eligible days before the screen.
    if p.low_usage_threshold is not None and eligible:
        first = eligible[: p.y]
        reference = float(np.mean([ev.mean() for _, ev, _ in first]))
        kept = []
        for d, ev, adj in eligible:
            if ev.mean() < p.low_usage_threshold * reference:
                reasons[d] = R_LOW_USAGE
            else:
                kept.append((d, ev, adj))
        eligible = kept

    nan_ev = np.full(n_ev, np.nan)
    day_type = "weekend_holiday" if p.day_type == "weekend_holiday" else "weekday"
    if len(eligible) < p.y:
        for d, _, _ in eligible:
            reasons[d] = R_NOT_SELECTED  # too few days: none is used, never a silent average of fewer
        return _result(plan, reasons, last=len(plan.cand_days) - 1, status=INSUFFICIENT_DATA,
                       reason=_insufficient_reason(p, len(eligible), p.lookback_days), day_type=day_type,
                       selected=[], adjustment={"kind": p.adjustment, "raw": None, "applied": None}, flags=[],
                       baseline=nan_ev, adjusted=nan_ev, actual=ev_actual)

    window = eligible[: p.y]
    last = window[-1][0]
    if p.selection == "most_recent":
        chosen = window[: p.x]
    else:
        # highest mean event-window load; ties -> the more recent day (smaller index)
        chosen = sorted(window, key=lambda w: (-w[1].mean(), w[0]))[: p.x]
    chosen_ids = {d for d, _, _ in chosen}
    for d, _, _ in window:
        reasons[d] = R_SELECTED if d in chosen_ids else R_NOT_SELECTED
    chosen = sorted(chosen, key=lambda w: w[0])
    baseline = np.mean(np.stack([ev for _, ev, _ in chosen]), axis=0)
    base_adj = np.mean(np.stack([adj for _, _, adj in chosen]), axis=0) if plan.adj_starts else np.zeros(0)

    flags: list[str] = []
    raw = applied = None
    adjusted = baseline
    if p.adjustment != "none":
        if np.isnan(adj_actual).any():
            flags.append(F_ADJ_ACTUAL_MISSING)
            raw = None
            applied = 1.0 if p.adjustment == "multiplicative" else 0.0
        elif p.adjustment == "multiplicative":
            denominator = float(np.sum(base_adj))
            if denominator <= 0:
                raw, applied = None, 1.0
                flags.append(F_ZERO_DENOMINATOR)
            else:
                raw = float(np.sum(adj_actual)) / denominator
                applied, flag = _apply_cap(raw, p.adjustment_cap)
                if flag:
                    flags.append(flag)
        else:
            raw = float(np.mean(adj_actual)) - float(np.mean(base_adj))
            applied, flag = _apply_cap(raw, p.adjustment_cap)
            if flag:
                flags.append(flag)
        adjusted = baseline * applied if p.adjustment == "multiplicative" else baseline + applied
    status, reason = OK, ""
    if np.isnan(ev_actual).any():
        status, reason = INSUFFICIENT_DATA, f"event-day meter data missing for {int(np.isnan(ev_actual).sum())} " \
                                            f"of {n_ev} event intervals"
        flags.append(F_ACTUAL_MISSING)
    return _result(plan, reasons, last=last, status=status, reason=reason, day_type=day_type,
                   selected=[plan.cand_days[d] for d, _, _ in chosen],
                   adjustment={"kind": p.adjustment, "raw": raw, "applied": applied}, flags=flags,
                   baseline=baseline, adjusted=adjusted, actual=ev_actual)


def _result(plan: BaselinePlan, reasons, *, last, status, reason, day_type, selected, adjustment, flags, baseline,
            adjusted, actual) -> BaselineResult:
    hours = plan.interval_hours
    reduction = (adjusted - actual) * hours
    excluded = [{"day": plan.cand_days[d], "reason": REASONS[r]} for d, r in enumerate(reasons[: last + 1])
                if r != R_SELECTED]
    intervals = [{"start": s, "baseline_kw": float(baseline[i]), "adjusted_baseline_kw": float(adjusted[i]),
                  "actual_kw": float(actual[i]), "reduction_kwh": float(reduction[i])}
                 for i, s in enumerate(plan.event_starts)]
    return BaselineResult(status=status, reason=reason, params=plan.params, event_day=plan.event_day,
                          day_type=day_type, selected_days=selected, excluded_days=excluded, adjustment=adjustment,
                          flags=flags, intervals=intervals, totals=_totals(adjusted, actual, hours),
                          baseline_kw=baseline, adjusted_baseline_kw=adjusted, actual_kw=actual,
                          reduction_kwh=reduction)


# --------------------------------------------------------------------------------------------------- batch
@dataclass
class BatchBaselineResult:
    """Baselines of ``n`` service points for one event; row ``k`` matches ``baseline_for_event`` on row ``k``.

    Arrays: ``ok`` bool ``[n]`` (status OK); ``insufficient_days`` bool ``[n]`` (too few eligible days; else a
    not-OK row lacks event-day actuals); ``n_eligible`` int ``[n]``; ``day_reason`` int8 ``[n, n_cand]`` (``REASONS``
    codes, ``R_SELECTED`` for selected days, ``R_NOT_REACHED`` past the window) over ``cand_days`` (most recent
    first); ``baseline_kw``, ``adjusted_baseline_kw``, ``actual_kw``, ``reduction_kwh`` ``[n, n_event]`` (NaN when
    insufficient); ``adjustment_raw``, ``adjustment_applied`` ``[n]`` (NaN when none/unknown); ``flag_*`` bool ``[n]``;
    totals ``kwh_avoided``, ``kw_drop_max``, ``kw_drop_min``, ``kw_drop_avg`` ``[n]``.
    """

    params: BaselineParams
    event_day: dt.date
    day_type: str
    event_starts: list[dt.datetime]
    cand_days: list[dt.date]
    ok: np.ndarray
    insufficient_days: np.ndarray
    n_eligible: np.ndarray
    day_reason: np.ndarray
    baseline_kw: np.ndarray
    adjusted_baseline_kw: np.ndarray
    actual_kw: np.ndarray
    reduction_kwh: np.ndarray
    adjustment_raw: np.ndarray
    adjustment_applied: np.ndarray
    flag_zero_denominator: np.ndarray
    flag_capped_low: np.ndarray
    flag_capped_high: np.ndarray
    flag_adjustment_actual_missing: np.ndarray
    kwh_avoided: np.ndarray
    kw_drop_max: np.ndarray
    kw_drop_min: np.ndarray
    kw_drop_avg: np.ndarray

    def selected_days(self, k: int) -> list[dt.date]:
        return [self.cand_days[d] for d in np.flatnonzero(self.day_reason[k] == R_SELECTED)]

    def excluded_days(self, k: int) -> list[dict]:
        return [{"day": self.cand_days[d], "reason": REASONS[int(r)]} for d, r in enumerate(self.day_reason[k])
                if r not in (R_SELECTED, R_NOT_REACHED)]


def baseline_batch(*, start: dt.datetime, interval_minutes: int, kwh: np.ndarray, tz: str | ZoneInfo,
                   event_start: dt.datetime, event_end: dt.datetime, params: BaselineParams,
                   holidays: Iterable[dt.date] = (),
                   event_days: Sequence[Iterable[dt.date]] | Mapping[int, Iterable[dt.date]] | None = None,
                   abnormal_days: Sequence[Iterable[dt.date]] | Mapping[int, Iterable[dt.date]] | None = None,
                   chunk_size: int = 20_000) -> BatchBaselineResult:
    """Vectorised ``baseline_for_event`` for many service points sharing one interval grid.

    kwh: float64 ``[n_service_points, n_intervals]``, row k = service point k, column i = interval starting
    ``start + i * interval_minutes`` (UTC), NaN = gap (``meter_selectors.interval_kwh_matrix`` returns this shape).
    event_days / abnormal_days: per row, as a sequence of date sets or a mapping ``row -> dates`` (rows absent have
    none). Other arguments as ``baseline_for_event``. Rows are processed in chunks of ``chunk_size`` to bound memory
    (the gathered arrays are ``[chunk, n_days, n_event_intervals]``).
    """
    kwh = np.asarray(kwh, dtype=np.float64)
    if kwh.ndim != 2:
        raise ValueError("kwh must be shaped [n_service_points, n_intervals]")
    n, n_int = kwh.shape
    plan = build_plan(tz=tz, event_start=event_start, event_end=event_end, params=params, series_start=start,
                      interval_minutes=interval_minutes, n_intervals=n_int, holidays=holidays)
    p, hours = plan.params, plan.interval_hours
    n_cand, n_ev, n_adj = len(plan.cand_days), len(plan.event_starts), len(plan.adj_starts)
    day_index = {d: i for i, d in enumerate(plan.cand_days)}

    def per_row_mask(spec) -> np.ndarray:
        mask = np.zeros((n, n_cand), dtype=bool)
        if not spec:
            return mask
        items = spec.items() if isinstance(spec, Mapping) else enumerate(spec)
        for k, days in items:
            for day in days or ():
                i = day_index.get(day)
                if i is not None:
                    mask[k, i] = True
        return mask

    ev_mask, ab_mask = per_row_mask(event_days), per_row_mask(abnormal_days)
    out = {
        "ok": np.zeros(n, dtype=bool), "insufficient_days": np.zeros(n, dtype=bool),
        "n_eligible": np.zeros(n, dtype=np.int64), "day_reason": np.zeros((n, n_cand), dtype=np.int8),
        **{k: np.full((n, n_ev), np.nan) for k in ("baseline_kw", "adjusted_baseline_kw", "actual_kw",
                                                    "reduction_kwh")},
        **{k: np.full(n, np.nan) for k in ("adjustment_raw", "adjustment_applied", "kwh_avoided", "kw_drop_max",
                                           "kw_drop_min", "kw_drop_avg")},
        **{k: np.zeros(n, dtype=bool) for k in ("flag_zero_denominator", "flag_capped_low", "flag_capped_high",
                                                "flag_adjustment_actual_missing")},
    }
    for lo in range(0, n, chunk_size):
        hi = min(n, lo + chunk_size)
        _batch_chunk(plan, kwh[lo:hi], ev_mask[lo:hi], ab_mask[lo:hi], {k: v[lo:hi] for k, v in out.items()},
                     n_ev, n_adj, hours, p)
    day_type = "weekend_holiday" if p.day_type == "weekend_holiday" else "weekday"
    return BatchBaselineResult(params=p, event_day=plan.event_day, day_type=day_type,
                               event_starts=plan.event_starts, cand_days=plan.cand_days, **out)


def _batch_chunk(plan: BaselinePlan, kwh, ev_mask, ab_mask, out, n_ev, n_adj, hours, p: BaselineParams) -> None:
    m, n_cand = kwh.shape[0], len(plan.cand_days)
    ev = _gather(kwh, plan.ev_idx0, plan.ev_idx1, plan.ev_valid, hours)  # [m, n_cand, n_ev]
    adj = _gather(kwh, plan.adj_idx0, plan.adj_idx1, plan.adj_valid, hours)  # [m, n_cand, n_adj]
    ev_actual = np.where(plan.ev_actual_idx >= 0, np.take(kwh, np.maximum(plan.ev_actual_idx, 0), axis=1), np.nan)
    ev_actual = ev_actual / hours
    adj_actual = np.where(plan.adj_actual_idx >= 0, np.take(kwh, np.maximum(plan.adj_actual_idx, 0), axis=1),
                          np.nan) / hours

    reason = np.broadcast_to(plan.cand_reason, (m, n_cand)).copy()
    cal_ok = reason == R_SELECTED
    reason[cal_ok & ev_mask] = R_EVENT_DAY
    reason[cal_ok & ~ev_mask & ab_mask] = R_ABNORMAL
    missing = np.isnan(ev).any(axis=2) | np.isnan(adj).any(axis=2)
    reason[(reason == R_SELECTED) & missing] = R_MISSING
    eligible = reason == R_SELECTED
    ev_mean = ev.mean(axis=2)  # [m, n_cand] (NaN on missing days: never eligible)

    if p.low_usage_threshold is not None:
        rank = np.cumsum(eligible, axis=1)
        first_y = eligible & (rank <= p.y)
        count = first_y.sum(axis=1)
        reference = np.where(first_y, ev_mean, 0.0).sum(axis=1) / np.maximum(count, 1)
        low = eligible & (ev_mean < p.low_usage_threshold * reference[:, None])
        reason[low] = R_LOW_USAGE
        eligible &= ~low

    rank = np.cumsum(eligible, axis=1)
    n_elig = eligible.sum(axis=1)
    out["n_eligible"][:] = n_elig
    enough = n_elig >= p.y
    window = eligible & (rank <= p.y) & enough[:, None]
    if p.selection == "most_recent":
        chosen = window & (rank <= p.x)
    else:
        score = np.where(window, ev_mean, -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")  # stable: ties keep the more recent day first
        top = order[:, : p.x]
        chosen = np.zeros_like(window)
        np.put_along_axis(chosen, top, True, axis=1)
        chosen &= window
    reason[window & ~chosen] = R_NOT_SELECTED
    reason[eligible & ~enough[:, None]] = R_NOT_SELECTED  # too few days: none is used
    # Days after the last window day were not reached (only for rows with a full window).
    last = np.where(enough, np.argmax(np.where(window, np.arange(n_cand), -1), axis=1), n_cand - 1)
    reason[np.arange(n_cand)[None, :] > last[:, None]] = R_NOT_REACHED
    out["day_reason"][:] = reason
    out["insufficient_days"][:] = ~enough

    k = max(p.x, 1)
    w = chosen[:, :, None]
    baseline = np.where(w, ev, 0.0).sum(axis=1) / k
    base_adj = np.where(w, adj, 0.0).sum(axis=1) / k if n_adj else np.zeros((m, 0))
    hours_arr = hours

    raw = np.full(m, np.nan)
    applied = np.full(m, np.nan)
    adjusted = baseline.copy()
    if p.adjustment != "none":
        adj_missing = np.isnan(adj_actual).any(axis=1)
        out["flag_adjustment_actual_missing"][:] = adj_missing & enough
        if p.adjustment == "multiplicative":
            denominator = base_adj.sum(axis=1)
            zero = denominator <= 0
            with np.errstate(divide="ignore", invalid="ignore"):
                raw = np.where(zero | adj_missing, np.nan, adj_actual.sum(axis=1) / np.where(zero, 1.0, denominator))
            out["flag_zero_denominator"][:] = zero & ~adj_missing & enough
        else:
            raw = np.where(adj_missing, np.nan, adj_actual.mean(axis=1) - base_adj.mean(axis=1))
        applied = raw.copy()
        cap = p.adjustment_cap
        if cap is not None:
            low_b, high_b = cap
            if low_b is not None:
                hit = applied < low_b
                out["flag_capped_low"][:] = hit & enough
                applied = np.where(hit, float(low_b), applied)
            if high_b is not None:
                hit = applied > high_b
                out["flag_capped_high"][:] = hit & enough
                applied = np.where(hit, float(high_b), applied)
        neutral = 1.0 if p.adjustment == "multiplicative" else 0.0
        applied = np.where(np.isnan(applied), neutral, applied)
        adjusted = baseline * applied[:, None] if p.adjustment == "multiplicative" else baseline + applied[:, None]

    ok = enough & ~np.isnan(ev_actual).any(axis=1)
    out["ok"][:] = ok
    e = enough[:, None]
    out["baseline_kw"][:] = np.where(e, baseline, np.nan)
    out["adjusted_baseline_kw"][:] = np.where(e, adjusted, np.nan)
    out["actual_kw"][:] = ev_actual
    out["reduction_kwh"][:] = np.where(e, (adjusted - ev_actual) * hours_arr, np.nan)
    if p.adjustment != "none":
        out["adjustment_raw"][:] = np.where(enough, raw, np.nan)
        out["adjustment_applied"][:] = np.where(enough, applied, np.nan)
    drop = np.where(e, adjusted - ev_actual, np.nan)
    if n_ev:
        out["kwh_avoided"][:] = drop.sum(axis=1) * hours_arr
        out["kw_drop_max"][:] = drop.max(axis=1)
        out["kw_drop_min"][:] = drop.min(axis=1)
        out["kw_drop_avg"][:] = drop.mean(axis=1)


def series_from_points(starts: Sequence[dt.datetime], kwh: Sequence[float],
                       interval_minutes: int | None = None) -> IntervalSeries:
    """A regular ``IntervalSeries`` from (interval start, kWh) points in any order; absent intervals become NaN.

    ``interval_minutes`` defaults to the smallest gap between consecutive starts. Raises ``ValueError`` for naive
    times, duplicates, an interval that is not 5/15/30/60 minutes, or a start off the grid.
    """
    if not starts:
        raise ValueError("no readings")
    if any(s.tzinfo is None for s in starts):
        raise ValueError("timestamps must include a UTC offset")
    epoch = np.array([int(s.timestamp()) for s in starts], dtype=np.int64)
    order = np.argsort(epoch, kind="stable")
    epoch, values = epoch[order], np.asarray(kwh, dtype=np.float64)[order]
    diffs = np.diff(epoch)
    if (diffs == 0).any():
        dup = dt.datetime.fromtimestamp(int(epoch[1:][diffs == 0][0]), UTC)
        raise ValueError(f"duplicate interval start {dup.isoformat()}")
    if interval_minutes is None:
        interval_minutes = int(diffs.min() // 60) if diffs.size else 60
    step = interval_minutes * 60
    if interval_minutes not in (5, 15, 30, 60) or ((epoch - epoch[0]) % step).any():
        raise ValueError(f"readings are not on a regular 5/15/30/60-minute grid (found {interval_minutes} min)")
    out = np.full(int((epoch[-1] - epoch[0]) // step) + 1, np.nan)
    out[(epoch - epoch[0]) // step] = values
    return IntervalSeries(start=dt.datetime.fromtimestamp(int(epoch[0]), UTC), interval_minutes=interval_minutes,
                          kwh=out)
