"""Measurement adapter: what each participation of an event delivered (kWh avoided, kW drop), with its inputs.

This is the one seam between settlement and the baseline engine: ``measure_event`` is all that event settlement
calls. It is a deliberately small, self-contained implementation so that the shared baseline engine
(``settlement/baselines.py`` + ``settlement/meter_selectors.py``) can replace it without touching services.

Methods:
- METER_BASELINE programs: CAISO 10-in-10 (weekday events) / 4-in-4 (weekend and holiday events) with the CAISO
  day-of load point adjustment (CAISO BPM for Demand Response, "Customer Load Baseline"): the baseline of each
  interval is the mean of the X most recent similar non-event days in a 45-day lookback (at least ``min_days``,
  default 5 of 10 / 2 of 4, else INSUFFICIENT_DATA); the adjustment ratio is actual / baseline over the 3 hours
  ending 1 hour before the event start, capped to [0.8, 1.2]. Days are local days in the program's zone, aligned on
  the event's local start time (so DST days compare like with like over the event window). Overrides come from
  ``Program.baseline_params`` (``x``, ``min_days``, ``lookback_days``, ``adjustment_cap``).
- DEVICE_TELEMETRY programs ("no load baseline", e.g. batteries): kWh avoided = the device's metered discharge
  (device-level interval rows on the RECEIVED channel) in the participated part of the event window.

Rules common to both: intervals are UTC-aligned (``IntervalDay``, NaN = missing). Only intervals that end at or
before an opt-out count (the customer's load after opting out is not held against or for them); ``kw_drop_avg`` =
kWh avoided / event hours of the whole window, so a device that ran 1 h of a 3 h event counts a third.
Reads are vectorised over a chunk of service points: a ``[service point, day, interval]`` float64 array.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np

from cpm.timeutils import UTC, local_date, local_day_bounds, local_wall_to_utc, zone

OK = "ok"
INSUFFICIENT_DATA = "insufficient_data"
METHOD_10_IN_10 = "caiso-10-in-10"
METHOD_4_IN_4 = "caiso-4-in-4"
METHOD_DEVICE = "device-telemetry"


@dataclass
class Measurement:
    """The measured result of one participation. Arrays cover the local event day (23, 24 or 25 h), one value per
    interval starting at ``interval_starts[i]`` (UTC); NaN = no data. ``participated`` marks the intervals counted."""

    participation_id: int
    status: str
    method: str
    interval_minutes: int
    interval_starts: list[dt.datetime]
    baseline_kw: np.ndarray
    adjusted_baseline_kw: np.ndarray
    actual_kw: np.ndarray
    reduction_kwh: np.ndarray
    participated: np.ndarray
    kwh_avoided: float = 0.0
    kw_drop_avg: float = 0.0
    selected_days: list[dt.date] = field(default_factory=list)
    excluded_days: list[tuple[dt.date, str]] = field(default_factory=list)
    adjustment: float = 1.0
    detail: str = ""

    def participated_interval_kwh(self) -> list[tuple[dt.datetime, float]]:
        """(UTC start, kWh avoided) of each participated interval."""
        return [(self.interval_starts[i], float(self.reduction_kwh[i])) for i in np.flatnonzero(self.participated)]


def nerc_holidays(year: int) -> set[dt.date]:
    """NERC holidays: New Year's, Memorial Day, Independence Day, Labor Day, Thanksgiving, Christmas; a Sunday
    holiday is observed on Monday, a Saturday one is not moved (NERC off-peak day definition)."""
    def nth_weekday(month: int, weekday: int, n: int) -> dt.date:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))

    last_may = dt.date(year, 5, 31)
    days = {dt.date(year, 1, 1), last_may - dt.timedelta(days=last_may.weekday()), dt.date(year, 7, 4),
            nth_weekday(9, 0, 1), nth_weekday(11, 3, 4), dt.date(year, 12, 25)}
    return {d + dt.timedelta(days=1) if d.weekday() == 6 else d for d in days}


def holiday_set(calendar: str, years: set[int]) -> set[dt.date]:
    """Holidays of a program's calendar (``programs.choices.HolidayCalendar`` value) for the given years."""
    if calendar == "NERC":
        return set().union(*(nerc_holidays(y) for y in years))
    if calendar == "US":
        import holidays

        return set(holidays.US(years=sorted(years)).keys())
    return set()


def _read_interval_rows(*, key_field: str, keys: list[int], channel: str, device_rows: bool,
                        first_day: dt.date, last_day: dt.date):
    """Current ``IntervalDay`` rows as ``(key, day, interval_minutes, values bytes)`` through one plain SQL query
    (the ORM builds the SQL; rows are not turned into model instances). Keys are selected by their id range (one
    index range scan, no list of thousands of parameters); rows of keys outside ``keys`` are dropped later."""
    from django.db import connection

    from .models import IntervalDay

    qs = IntervalDay.objects.filter(is_current=True, channel=channel, day__gte=first_day, day__lte=last_day,
                                    **{f"{key_field}__gte": keys[0], f"{key_field}__lte": keys[-1],
                                       "device__isnull": not device_rows})
    sql, params = qs.values_list(key_field, "day", "interval_minutes", "values").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _to_array(rows, keys: list[int], first_day: dt.date, n_days: int) -> tuple[np.ndarray, int]:
    """Rows -> ``[key, n_days * intervals]`` float64 kWh at the coarsest interval length present (finer rows are
    summed into it; a missing sub-interval makes the coarse interval missing). Vectorised: one pass in C over the
    rows' bytes; key and day positions by ``searchsorted`` on arrays."""
    minutes = max((r[2] for r in rows), default=60)
    ipd = 1440 // minutes
    flat = np.full((len(keys), n_days, ipd), np.nan)
    if not rows:
        return flat.reshape(len(keys), n_days * ipd), minutes
    keys_arr = np.asarray(keys, dtype=np.int64)
    col_keys, col_days, col_minutes, col_values = zip(*rows, strict=True)  # transpose in C
    row_keys = np.array(col_keys, dtype=np.int64)
    if isinstance(col_days[0], str):
        col_days = [dt.date.fromisoformat(d) for d in col_days]
    row_days = np.array([d.toordinal() for d in col_days], dtype=np.int64) - first_day.toordinal()
    row_minutes = np.array(col_minutes, dtype=np.int64)
    pos = np.minimum(np.searchsorted(keys_arr, row_keys), len(keys_arr) - 1)
    wanted = (keys_arr[pos] == row_keys) & (row_days >= 0) & (row_days < n_days)
    for row_min in np.unique(row_minutes):
        sel = np.flatnonzero(wanted & (row_minutes == row_min))
        if not len(sel):
            continue
        row_ipd = 1440 // int(row_min)
        blobs = col_values if len(sel) == len(rows) else [col_values[i] for i in sel.tolist()]
        values = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(len(sel), row_ipd)
        if row_ipd != ipd:
            values = values.reshape(len(sel), ipd, row_ipd // ipd).sum(axis=2)
        flat[pos[sel], row_days[sel]] = values
    return flat.reshape(len(keys), n_days * ipd), minutes


def measure_event(*, event, participations, now: dt.datetime) -> dict[int, Measurement]:
    """Measure each participation of ``event`` (an ``events.Event`` with ``program`` loaded).

    ``participations``: ``events.Participation`` rows of the event (a chunk of service points). Returns
    ``{participation_id: Measurement}``; a participation without enough data gets status INSUFFICIENT_DATA and a
    ``detail`` that says what is missing. ``now`` is unused by this adapter (kept for the engine's interface).
    """
    participations = list(participations)
    if not participations:
        return {}
    if event.program.performance_measurement == "device_telemetry":
        return _measure_devices(event, participations)
    return _measure_meters(event, participations)


@dataclass
class _Day:
    tz: object
    day: dt.date
    day_start: dt.datetime
    minutes: int
    n: int
    offset: int
    event_len: int

    @property
    def starts(self) -> list[dt.datetime]:
        return [self.day_start + dt.timedelta(minutes=self.minutes * i) for i in range(self.n)]


def _event_day(event, minutes: int) -> _Day:
    tz = zone(event.program.time_zone)
    day = local_date(event.start, tz)
    day_start, day_end = local_day_bounds(day, tz)
    step = dt.timedelta(minutes=minutes)
    return _Day(tz, day, day_start, minutes, int((day_end - day_start) / step), int((event.start - day_start) / step),
                max(1, math.ceil((event.end - event.start) / step)))


def _participated_mask(participations, ev: _Day, event) -> np.ndarray:
    """``[participation, interval]``: intervals of the window that end at or before the opt-out (or the end)."""
    step = dt.timedelta(minutes=ev.minutes)
    mask = np.zeros((len(participations), ev.n), dtype=bool)
    for i, p in enumerate(participations):
        stop = min(p.opted_out_at, event.end) if p.opted_out_at else event.end
        count = max(0, min(ev.event_len, int((stop - event.start) / step)))
        mask[i, ev.offset:ev.offset + count] = True
    return mask


def _measure_meters(event, participations) -> dict[int, Measurement]:
    from events.choices import COUNTED_EVENT_STATUSES
    from events.models import Event, Participation

    program = event.program
    params = program.baseline_params or {}
    tz = zone(program.time_zone)
    event_day = local_date(event.start, tz)
    lookback = int(params.get("lookback_days", 45))
    first_candidate = event_day - dt.timedelta(days=lookback)
    years = {first_candidate.year, event_day.year}
    holidays_ = holiday_set(program.holiday_calendar, years)
    weekend_event = event_day.weekday() >= 5 or event_day in holidays_
    method = program.baseline_method
    if method == "caiso-auto":
        method = METHOD_4_IN_4 if weekend_event else METHOD_10_IN_10
    x = int(params.get("x", 4 if method == METHOD_4_IN_4 else 10))
    min_days = int(params.get("min_days", 2 if method == METHOD_4_IN_4 else 5))
    cap = float(params.get("adjustment_cap", 0.2))

    candidates = [event_day - dt.timedelta(days=k) for k in range(1, lookback + 1)]  # most recent first
    range_start = local_day_bounds(first_candidate, tz)[0]
    program_event_days = {
        local_date(s, tz) for s in Event.objects.filter(
            program_id=program.id, status__in=COUNTED_EVENT_STATUSES, start__gte=range_start,
            start__lt=event.start).exclude(pk=event.pk).values_list("start", flat=True)}
    excluded_global: list[tuple[dt.date, str]] = []  # sorted by date at the end
    global_ok = np.ones(len(candidates), dtype=bool)
    for c, day in enumerate(candidates):
        reason = ""
        is_weekend_like = day.weekday() >= 5 or day in holidays_
        if is_weekend_like != weekend_event:
            reason = "holiday" if day in holidays_ else ("weekend" if day.weekday() >= 5 else "weekday")
        elif day in program_event_days:
            reason = "event day"
        if reason:
            global_ok[c] = False
            excluded_global.append((day, reason))
    excluded_global.sort()

    sp_ids = sorted({p.service_point_id for p in participations})
    sp_index = {sp: i for i, sp in enumerate(sp_ids)}
    # The service point's own events in other programs are not "similar days" either.
    sp_event = np.zeros((len(sp_ids), len(candidates)), dtype=bool)
    day_pos = {d: c for c, d in enumerate(candidates)}
    for sp, start in Participation.objects.filter(
            service_point_id__in=sp_ids, start__gte=range_start, start__lt=event.start).exclude(
            event_id=event.pk).values_list("service_point_id", "start"):
        c = day_pos.get(local_date(start, tz))
        if c is not None:
            sp_event[sp_index[sp], c] = True

    first_utc = (range_start - dt.timedelta(hours=26)).date()
    last_utc = (local_day_bounds(event_day, tz)[1] + dt.timedelta(hours=26)).date()
    n_days = (last_utc - first_utc).days + 1
    rows = _read_interval_rows(key_field="service_point_id", keys=sp_ids, channel="delivered", device_rows=False,
                               first_day=first_utc, last_day=last_utc)
    flat, minutes = _to_array(rows, sp_ids, first_utc, n_days)
    del rows
    ev = _event_day(event, minutes)
    step = dt.timedelta(minutes=minutes)
    base_utc = dt.datetime.combine(first_utc, dt.time(0), tzinfo=UTC)
    start_wall = event.start.astimezone(tz).time()
    # Day windows aligned on the event's local start time: row 0 = event day, rows 1.. = candidates.
    window_starts = [event.start - ev.offset * step] + [
        local_wall_to_utc(d, start_wall, tz) - ev.offset * step for d in candidates]
    idx = np.array([int((w - base_utc) / step) for w in window_starts], dtype=np.int64)[:, None] + np.arange(ev.n)
    windows = flat[:, idx]  # [sp, 1 + candidates, interval]
    del flat
    hour = max(1, 60 // minutes)
    adj_lo, adj_hi = max(0, ev.offset - 4 * hour), max(0, ev.offset - hour)
    need_lo, need_hi = adj_lo, min(ev.n, ev.offset + ev.event_len)
    actual = windows[:, 0, :]
    cand = windows[:, 1:, :]
    complete = ~np.isnan(cand[:, :, need_lo:need_hi]).any(axis=2)
    eligible = complete & global_ok[None, :] & ~sp_event
    selected = eligible & (np.cumsum(eligible, axis=1) <= x)
    n_selected = selected.sum(axis=1)
    valid = selected[:, :, None] & ~np.isnan(cand)
    counts = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        baseline = np.where(valid, cand, 0.0).sum(axis=1) / counts  # NaN where no selected day has data
        base_adj = baseline[:, adj_lo:adj_hi].sum(axis=1)
        act_adj = actual[:, adj_lo:adj_hi].sum(axis=1)
        ratio = np.where((base_adj > 0) & ~np.isnan(act_adj) & ~np.isnan(base_adj), act_adj / base_adj, 1.0)
    if adj_hi <= adj_lo:
        ratio = np.ones(len(sp_ids))
    ratio = np.clip(ratio, 1.0 - cap, 1.0 + cap)
    adjusted = baseline * ratio[:, None]
    reduction = adjusted - actual
    participated = _participated_mask(participations, ev, event)
    to_kw = 60.0 / minutes
    hours = (event.end - event.start).total_seconds() / 3600.0
    starts = ev.starts
    out: dict[int, Measurement] = {}
    for i, p in enumerate(participations):
        s = sp_index[p.service_point_id]
        mask = participated[i]
        red = reduction[s]
        sel_days = [candidates[c] for c in np.flatnonzero(selected[s])]
        excluded = excluded_global  # shared, not copied: most service points add nothing of their own
        own = sp_event[s] & global_ok
        missing = ~complete[s] & global_ok & ~sp_event[s]
        if own.any() or missing.any():
            excluded = sorted([*excluded_global, *((candidates[c], "own event day") for c in np.flatnonzero(own)),
                               *((candidates[c], "missing data") for c in np.flatnonzero(missing))])
        status, detail = OK, ""
        if n_selected[s] < min_days:
            status = INSUFFICIENT_DATA
            detail = f"{n_selected[s]} similar days with data in {lookback} days; {min_days} needed"
        elif np.isnan(actual[s][mask]).any():
            status = INSUFFICIENT_DATA
            detail = "event-day interval data missing in the event window"
        kwh = float(np.nansum(red[mask])) if status == OK else 0.0
        out[p.pk] = Measurement(
            participation_id=p.pk, status=status, method=method, interval_minutes=minutes, interval_starts=starts,
            baseline_kw=baseline[s] * to_kw, adjusted_baseline_kw=adjusted[s] * to_kw, actual_kw=actual[s] * to_kw,
            reduction_kwh=red, participated=mask, kwh_avoided=kwh, kw_drop_avg=kwh / hours if hours else 0.0,
            selected_days=sel_days, excluded_days=excluded, adjustment=float(ratio[s]), detail=detail)
    return out


def _measure_devices(event, participations) -> dict[int, Measurement]:
    tz = zone(event.program.time_zone)
    day_start, day_end = local_day_bounds(local_date(event.start, tz), tz)
    device_ids = sorted({p.device_id for p in participations if p.device_id})
    first_utc, last_utc = day_start.date(), (day_end - dt.timedelta(microseconds=1)).date()
    n_days = (last_utc - first_utc).days + 1
    rows = _read_interval_rows(key_field="device_id", keys=device_ids, channel="received", device_rows=True,
                               first_day=first_utc, last_day=last_utc) if device_ids else []
    flat, minutes = _to_array(rows, device_ids, first_utc, n_days)
    ev = _event_day(event, minutes)
    offset0 = int((day_start - dt.datetime.combine(first_utc, dt.time(0), tzinfo=UTC)) / dt.timedelta(minutes=minutes))
    discharge = flat[:, offset0:offset0 + ev.n]
    participated = _participated_mask(participations, ev, event)
    index = {d: i for i, d in enumerate(device_ids)}
    hours = (event.end - event.start).total_seconds() / 3600.0
    to_kw = 60.0 / minutes
    zeros = np.zeros(ev.n)
    starts = ev.starts
    out: dict[int, Measurement] = {}
    for i, p in enumerate(participations):
        mask = participated[i]
        if p.device_id is None or p.device_id not in index:
            values = np.full(ev.n, np.nan)
        else:
            values = discharge[index[p.device_id]]
        status, detail = OK, ""
        if np.isnan(values[mask]).any() or (not mask.any() and p.device_id is None):
            status, detail = INSUFFICIENT_DATA, "no device discharge telemetry for the event window"
        kwh = float(np.nansum(values[mask])) if status == OK else 0.0
        out[p.pk] = Measurement(
            participation_id=p.pk, status=status, method=METHOD_DEVICE, interval_minutes=minutes,
            interval_starts=starts, baseline_kw=zeros, adjusted_baseline_kw=zeros, actual_kw=values * to_kw,
            reduction_kwh=values, participated=mask, kwh_avoided=kwh, kw_drop_avg=kwh / hours if hours else 0.0,
            detail=detail)
    return out
