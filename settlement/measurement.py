"""Measurement: what each participation of an event delivered (kWh avoided, kW drop), for a chunk at once.

``measure_event`` is all that event settlement calls. It runs on the same code path as ``manage.py baseline``:

- METER_BASELINE programs: the shared baseline engine. Intervals are read with
  ``settlement.meterdata.selectors.interval_kwh_matrix`` (one query per chunk) over
  ``settlement.meterdata.selectors.baseline_span``; baselines are
  ``baselines.baseline_batch`` with ``baselines.resolve_params(Program.baseline_method, Program.baseline_params)``
  (CAISO 10-in-10 / 4-in-4 / auto, PJM High 4 of 5, custom X of Y: see ``settlement/baselines.py`` for the rules
  and their sources), the holidays of ``Program.holiday_calendar`` (``programs.calendars.holidays_for``) and, per
  service point, the local dates of the other non-cancelled events it took part in, in any program (one query per
  chunk). The engine's per-interval values (baseline, adjusted baseline, actual kW, reduction kWh) are what the
  settlement stores: they equal ``manage.py baseline --json`` on the same readings.
- DEVICE_TELEMETRY programs ("no load baseline", e.g. batteries): kWh avoided = the device's metered discharge
  (device-level interval rows on the RECEIVED channel) in the counted intervals; one query per chunk.

- AGGREGATOR_REPORTED programs (issue 18.5: the device cloud or the utility's DERMS reports the performance, loaded
  from kW-drop files, ``settlement.meterdata.kwdrop``): no meter, no baseline; see ``_measure_reported``.

Rules of settlement on top of the engine: only intervals that end at or before an opt-out count (the customer's load
after opting out is held neither against nor for them), so ``kWh avoided`` = sum of the engine's reductions over the
counted intervals; ``kw_drop_avg`` = kWh avoided / event hours of the whole window (1 h of a 3 h event counts a
third). A participation is INSUFFICIENT_DATA when the engine found too few eligible days (its reason is kept, e.g.
"only 3 eligible weekday days in the 45-day lookback; 10 required") or a counted interval has no actual reading.

Net load (issue 16): the meter read is ``interval_kwh_matrix(net=True)``: delivered and received channels in the same
query; a service point with received (export) readings is measured on delivered - received in every interval,
baseline days and event day alike, never clamped at zero; the others on delivered, as before (no extra query, no
extra array). ``Program.counts_reduction_below_zero_net_load`` off: the actual net load counted in an event interval
is max(actual, min(adjusted baseline, 0)) (``_below_zero_not_counted``), for net readings on one channel too (a
meter reporting net load, Green Button flowDirection 4: delivered with negative values). The settlement's inputs
and explanation show both channels.

One meter, several participations: where two or more participations of the event are at the same service point
(two thermostats of one enrollment), the meter measured the service point once, so each counted interval's
reduction is counted once, on the participation of lowest id that counts it (``_share_meter``), and the others
name it; kWh and money of the service point are those of one meter, rounded once. An aggregator's kW-drop report is
the service point's too (one current record per event and service point), so it is shared the same way; device
telemetry is each device's own and is not.

Abnormal days (issue 16): the days recorded for the service point, its premise's feeder, substation or territory, or
the program (``settlement.models.AbnormalDay``, ``settlement.selectors.recorded_abnormal_days``) and the days whose
readings are all zero (``detect_days``) go to the engine's ``abnormal_days`` (the parameter ``manage.py baseline
--exclude-day`` feeds): they are not similar days, and the X-of-Y selection reaches further back. Days without any
reading are the engine's missing-data days and are named so in the explanation.

The interval grid is the coarsest of 60/30/15/5 minutes on which the event window and the adjustment window fall:
finer readings are summed into it (kWh totals are unchanged; every step of the engine is linear in kWh), and an
opt-out counts the whole intervals before it on that grid.

An opt-out inside an interval of that grid is counted at the data's own resolution (``measure_event``): a
participation whose data is finer than the grid (15-minute meter readings or device telemetry, a 15-minute kW-drop
report) and whose opt-out falls inside a grid interval after a whole interval of its data is measured on its data's
grid, so the quarter-hours before a 14:37 opt-out count (14:00-14:30) instead of nothing before the hour. The rule of
the interval the opt-out cuts is the one above, at every resolution: it ends after the opt-out, so it does not count
(14:30-14:45 here; hourly data drops the cut hour likewise). Every other participation, and every participation with
hourly data, is measured on the event's grid exactly as before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from cpm.base.timeutils import local_date, local_midnight, zone
from programs.baseline_params import baseline_params_errors

from . import baselines as bl

OK = "ok"
INSUFFICIENT_DATA = "insufficient_data"
METHOD_DEVICE = "device-telemetry"
METHOD_REPORTED = "aggregator-reported"
DEVICE_TELEMETRY = "device_telemetry"
AGGREGATOR_REPORTED = "aggregator_reported"
GRIDS = (60, 30, 15, 5)


@dataclass
class ChunkMeasurement:
    """Measured results of ``n`` participations, row ``k`` = ``participation_ids[k]`` (the order given).

    ``starts``: UTC starts of the event-window intervals (``n_ev`` of them, ``interval_minutes`` long).
    ``baseline_kw``, ``adjusted_baseline_kw``, ``actual_kw``, ``reduction_kwh``: float ``[n, n_ev]`` (NaN = unknown;
    for device telemetry the baselines are 0 and the reduction is the discharge). ``counted``: int ``[n]``, the
    intervals from the event start that count (before an opt-out). ``ok``: bool ``[n]``; ``detail[k]``: why not.
    ``kwh_avoided``, ``kw_drop_avg``: float ``[n]`` (0 when not OK). ``adjustment``: applied day-of adjustment
    ``[n]`` (ratio or kW; NaN = none). ``day_reason``: int8 ``[n, n_cand]`` engine reason codes over ``cand_days``
    (most recent first; ``baselines.REASONS``), ``None`` for device telemetry.
    """

    method: str
    params: dict | None
    interval_minutes: int
    starts: list[dt.datetime]
    participation_ids: list[int]
    ok: np.ndarray
    detail: list[str]
    baseline_kw: np.ndarray
    adjusted_baseline_kw: np.ndarray
    actual_kw: np.ndarray
    reduction_kwh: np.ndarray
    counted: np.ndarray
    kwh_avoided: np.ndarray
    kw_drop_avg: np.ndarray
    adjustment: np.ndarray
    cand_days: list[dt.date]
    day_reason: np.ndarray | None
    # Per participation row: ``{local date: reason}`` of the abnormal days fed to the engine (recorded or detected
    # from the data; empty for most rows), the days without any reading, and for net-metered rows the event window's
    # delivered and received kWh per interval (``None`` for delivered-only rows).
    abnormal: list[dict] | None = None
    no_reading_days: list[tuple] | None = None
    net: list[tuple[list, list] | None] | None = None
    net_metered: list[bool] | None = None
    # Aggregator-reported rows: what the report gave (``_measure_reported``), ``None`` for a row without a report.
    reported: list[dict | None] | None = None
    # Meter rows sharing their service point's meter with another participation: why some counted intervals hold 0
    # kWh here (``_share_meter``); ``None`` or "" for the others.
    shared: list[str] | None = None
    # Meter rows whose day-of adjustment could not be measured (the event day's readings are missing in the
    # adjustment hours: the engine's ``adjustment_actual_missing``, baseline not adjusted); ``None`` elsewhere.
    adjustment_missing: list[bool] | None = None

    def counted_mask(self) -> np.ndarray:
        """bool ``[n, n_ev]``: the counted intervals."""
        return np.arange(len(self.starts))[None, :] < self.counted[:, None]


def grid_minutes(event_start: dt.datetime, event_end: dt.datetime, params: bl.BaselineParams | None) -> int:
    """The coarsest interval length (60, 30, 15, 5 minutes) on which the event window and, for a baseline with a
    day-of adjustment, the adjustment window both fall. Raises ``ValueError`` when none does."""
    edges = [event_start, event_end]
    if params is not None and params.adjustment != "none":
        adj_end = event_start - dt.timedelta(hours=float(params.adjustment_gap_hours))
        edges += [adj_end, adj_end - dt.timedelta(hours=float(params.adjustment_hours))]
    for minutes in GRIDS:
        if all(int(e.timestamp()) % (minutes * 60) == 0 for e in edges):
            return minutes
    raise ValueError("event window is not on a 5-minute grid")


NEAR_MARGIN_DAYS = 2


def near_lookback_days(event_day: dt.date, params: bl.BaselineParams, holidays) -> int:
    """Lookback (days) holding the ``y`` most recent days of the event day's type plus ``NEAR_MARGIN_DAYS`` more
    (a few missing or event days), capped at ``params.lookback_days``; ``params`` resolved for the day type."""
    holidays = frozenset(holidays)
    want_weekend = params.day_type == "weekend_holiday"
    found = 0
    for k in range(1, params.lookback_days + 1):
        day = event_day - dt.timedelta(days=k)
        if bl.is_weekend_holiday(day, holidays) == want_weekend:
            found += 1
            if found >= params.y + NEAR_MARGIN_DAYS:
                return k
    return params.lookback_days


def method_label(program, params: bl.BaselineParams) -> str:
    """The baseline method as settled: ``caiso-auto`` resolves to ``caiso-10-in-10`` or ``caiso-4-in-4``."""
    if program.baseline_method == "caiso-auto":
        return "caiso-4-in-4" if params.day_type == "weekend_holiday" else "caiso-10-in-10"
    return program.baseline_method


def refined_minutes(*, event_start: dt.datetime, opted_out_at: dt.datetime, grid: int, data_minutes: int | None
                    ) -> int:
    """The interval length (minutes) a participation opted out at ``opted_out_at`` is measured on: its data's
    (``data_minutes``: the coarsest interval length of the readings it is measured on, None = unknown) when that is
    finer than the event's ``grid`` and counts more of the event before the opt-out (an opt-out at 14:37 on an hourly
    grid: 15-minute data counts 14:00-14:30, the grid nothing), else ``grid``. ``event_start`` is on ``grid``."""
    if data_minutes is None or data_minutes not in GRIDS or data_minutes >= grid or grid % data_minutes:
        return grid
    into = opted_out_at.timestamp() - event_start.timestamp()
    return data_minutes if into > 0 and into % (grid * 60) >= data_minutes * 60 else grid


def _cut_by_opt_out(participations, event, grid: int) -> list[int]:
    """Positions of the participations whose opt-out falls inside an interval of the event's ``grid`` (after the
    start, before the end, not on an interval edge)."""
    step = grid * 60
    t0, t1 = event.start.timestamp(), event.end.timestamp()
    out = []
    for k, p in enumerate(participations):
        if p.opted_out_at is not None:
            t = p.opted_out_at.timestamp()
            if t0 < t < t1 and (t - t0) % step:
                out.append(k)
    return out


def _counted(participations, event, minutes: int, n_ev: int) -> np.ndarray:
    """Intervals of the event window that end at or before the opt-out (or the end), per participation."""
    step = minutes * 60
    start, end = event.start.timestamp(), event.end.timestamp()
    stops = np.array([min(p.opted_out_at.timestamp(), end) if p.opted_out_at else end for p in participations])
    return np.clip(np.floor((stops - start) / step), 0, n_ev).astype(np.int64)


def measure_event(*, event, participations, now: dt.datetime | None = None) -> list[ChunkMeasurement]:
    """Measure each participation of ``event`` (an ``events.Event`` with ``program`` loaded).

    ``participations``: objects with ``pk``, ``service_point_id``, ``device_id``, ``opted_out_at`` (a chunk of the
    event's participations; ``events.Participation`` rows or plain values). Returns one ``ChunkMeasurement`` per
    interval grid, each holding its participations in the order given (``participation_ids``): the event's grid
    (``grid_minutes``) first, then, when some opt-outs fall inside an interval of that grid, one per finer data
    resolution that counts more of the event before them (``refined_minutes``; the data's resolution is the coarsest
    interval length of the readings the measurement reads: the meter's over the baseline's lookback, the device's
    telemetry on the event day, the kW-drop report's intervals). A chunk without such an opt-out gives one
    measurement, as it always did (no extra query). ``now`` is not used (measurement depends on stored data only).
    Raises ``ValueError`` for an invalid ``Program.baseline_params`` (naming the field).
    """
    participations = list(participations)
    kind = event.program.performance_measurement
    if kind == DEVICE_TELEMETRY:
        grid = grid_minutes(event.start, event.end, None)
        measure, resolution = _measure_devices, _device_minutes
    elif kind == AGGREGATOR_REPORTED:
        from .meterdata.selectors import reported_kw_drops

        grid = grid_minutes(event.start, event.end, None)
        records = reported_kw_drops(event_id=event.pk,
                                    service_point_ids={p.service_point_id for p in participations})

        def measure(event, parts, minutes):
            return _measure_reported(event, parts, minutes, records)

        def resolution(event, parts, grid):
            return [_report_minutes(records.get(p.service_point_id)) for p in parts]
    else:
        grid = grid_minutes(event.start, event.end, _meter_day_params(event)[0])
        measure, resolution = _measure_meters, _meter_minutes
    cut = _cut_by_opt_out(participations, event, grid)
    minutes = [grid] * len(participations)
    if cut:
        data = resolution(event, [participations[k] for k in cut], grid)
        for k, data_minutes in zip(cut, data, strict=True):
            minutes[k] = refined_minutes(event_start=event.start, opted_out_at=participations[k].opted_out_at,
                                         grid=grid, data_minutes=data_minutes)
    out = []
    for g in sorted(set(minutes), reverse=True):
        parts = [p for p, m in zip(participations, minutes, strict=True) if m == g]
        out.append(measure(event, parts, g))
    return out


def baseline_problems(program) -> list[str]:
    """Why ``program``'s baseline overrides (``Program.baseline_params``) cannot be used with its method, one
    message per key (``programs.baseline_params.baseline_params_errors``); empty when they can, or when the
    program measures without a meter baseline (device telemetry, aggregator-reported kW drops). Overrides are
    checked where a program is written; this catches ones stored before (or around) that check."""
    if program.performance_measurement in (DEVICE_TELEMETRY, AGGREGATOR_REPORTED):
        return []
    return baseline_params_errors(program.baseline_method, program.baseline_params or {})


def _meter_day_params(event) -> tuple[bl.BaselineParams, bl.BaselineParams, set[dt.date]]:
    """(params for the event day's type, params as configured, holidays) of a METER_BASELINE event."""
    from programs.calendars import holidays_for

    program = event.program
    params = bl.resolve_params(program.baseline_method, program.baseline_params or {})
    event_day = local_date(event.start, zone(program.time_zone))
    holidays = holidays_for(program.holiday_calendar,
                            {event_day.year, (event_day - dt.timedelta(days=params.lookback_days)).year})
    return params.for_day_type(bl.is_weekend_holiday(event_day, holidays)), params, holidays


def _meter_minutes(event, participations, grid: int) -> list[int | None]:
    """Per participation: the coarsest interval length of its service point's meter readings (both channels) over
    the days the baseline reads (the whole lookback), None without any. One query."""
    from .meterdata.selectors import baseline_span, coarsest_interval_minutes

    params = _meter_day_params(event)[1]
    start, end = baseline_span(event_start=event.start, event_end=event.end, tz=event.program.time_zone,
                               lookback_days=params.lookback_days, interval_minutes=grid)
    found = coarsest_interval_minutes(first_day=start.date(), last_day=(end - dt.timedelta(seconds=1)).date(),
                                      service_point_ids=sorted({p.service_point_id for p in participations}))
    return [found.get(p.service_point_id) for p in participations]


def _device_minutes(event, participations, grid: int) -> list[int | None]:
    """Per participation: the coarsest interval length of its device's discharge telemetry (RECEIVED) on the
    event's UTC days, None without a device or any reading. One query."""
    from .meterdata.selectors import coarsest_interval_minutes

    ids = sorted({p.device_id for p in participations if p.device_id})
    found = coarsest_interval_minutes(first_day=event.start.date(),
                                      last_day=(event.end - dt.timedelta(seconds=1)).date(), device_ids=ids,
                                      channels=("received",)) if ids else {}
    return [found.get(p.device_id) for p in participations]


def _report_minutes(record) -> int | None:
    """The interval length (minutes) of a kW-drop report, None without a report or for a length that is not one of
    ``GRIDS``."""
    if record is None or record.interval_seconds % 60:
        return None
    return record.interval_seconds // 60


def other_event_days(*, service_point_ids, event, tz, first_day: dt.date) -> dict[int, set[dt.date]]:
    """``{service point pk: local dates}`` of the other events (not cancelled, any program) the service points took
    part in (participation not cancelled) from local date ``first_day`` to the day before ``event``. One query."""
    from events.choices import COUNTED_EVENT_STATUSES, ParticipationStatus
    from events.models import Participation

    ids = list(service_point_ids)
    out: dict[int, set[dt.date]] = {}
    if not ids:
        return out
    rows = (Participation.objects.filter(service_point_id__gte=ids[0], service_point_id__lte=ids[-1],
                                         event__status__in=COUNTED_EVENT_STATUSES,
                                         event__start__gte=local_midnight(first_day, tz),
                                         event__start__lt=local_midnight(local_date(event.start, tz), tz))
            .exclude(event_id=event.pk).exclude(status=ParticipationStatus.CANCELLED)
            .values_list("service_point_id", "event__start").distinct().order_by())
    wanted = set(ids)
    days: dict[dt.datetime, dt.date] = {}
    for sp, start in rows:
        if sp in wanted:
            day = days.get(start)
            if day is None:
                day = days[start] = local_date(start, tz)
            out.setdefault(sp, set()).add(day)
    return out


DETECTED_ZERO = "all readings zero (detected from the data)"
NO_READINGS = "no readings (detected from the data)"


def detect_days(kwh: np.ndarray, *, start: dt.datetime, interval_minutes: int, tz, days) -> tuple[
        dict[int, set[dt.date]], dict[int, set[dt.date]]]:
    """Abnormal days found in the data among consecutive local ``days``: ``(zero, empty)``, each ``{row: dates}``: a
    day whose readings are all zero (at least one reading, none other than zero), and a day with no reading at all.
    A day not wholly inside the matrix is not looked at. Two passes over the matrix, reduced per day at once."""
    step = interval_minutes * 60
    n_int = kwh.shape[1]
    t0 = start.timestamp()
    spans = []
    for day in sorted(days):
        i0 = int((local_midnight(day, tz).timestamp() - t0) // step)
        i1 = int((local_midnight(day + dt.timedelta(days=1), tz).timestamp() - t0) // step)
        if 0 <= i0 < i1 <= n_int and (not spans or spans[-1][2] == i0):
            spans.append((day, i0, i1))
    zero: dict[int, set[dt.date]] = {}
    empty: dict[int, set[dt.date]] = {}
    if not spans or not kwh.shape[0]:
        return zero, empty
    first, last = spans[0][1], spans[-1][2]
    cols = kwh[:, first:last]
    offsets = [i0 - first for _, i0, _ in spans]
    some_zero = np.logical_or.reduceat(cols == 0, offsets, axis=1)
    nonzero = np.logical_or.reduceat((cols > 0) | (cols < 0), offsets, axis=1)  # NaN is neither
    for mask, out in ((some_zero & ~nonzero, zero), (~some_zero & ~nonzero, empty)):
        rows, cols_ = np.nonzero(mask)
        for k, d in zip(rows.tolist(), cols_.tolist(), strict=True):
            out.setdefault(k, set()).add(spans[d][0])
    return zero, empty


def _below_zero_not_counted(result: bl.BatchBaselineResult, rows: np.ndarray, minutes: int) -> None:
    """``Program.counts_reduction_below_zero_net_load`` off: in the event intervals of ``rows`` (net-metered: net
    load on two channels, or net readings on one, e.g. Green Button flowDirection 4 stored on the delivered channel
    with negative values), the actual net load counted is never below the lower of zero and the adjusted baseline,
    so only the reduction down to zero net load (or down to a baseline already below zero) counts: reduction =
    adjusted baseline - max(actual, min(adjusted baseline, 0)). A row whose actuals are never below zero is
    unchanged by it."""
    adj, actual = result.adjusted_baseline_kw[rows], result.actual_kw[rows]
    floor = np.minimum(adj, 0.0)
    counted = np.where(actual < floor, floor, actual)
    result.reduction_kwh[rows] = (adj - counted) * (minutes / 60.0)


def _share_meter(reduction: np.ndarray, rows: np.ndarray, mask: np.ndarray, pks: list[int], *,
                 what: str = "one meter") -> tuple[np.ndarray, list[str]]:
    """The meter's reduction ``[n, n_ev]`` (kWh, one row per participation; ``rows``: its service point's row,
    ``mask``: its counted intervals, ``pks``: participation ids) with each counted interval's kWh counted once per
    service point: on the participation of lowest id that counts it, 0 on the others. Returns the reduction and,
    per row, a note naming the participations that hold the intervals it does not ("" for the others).

    One meter measures the service point once, whatever the number of devices taking part behind it (two
    thermostats of one enrollment): 4.5 kWh avoided at the meter is 4.5 kWh (and its money, rounded once) for the
    service point, not 4.5 kWh per device. An interval counted by one participation only (the other opted out
    before it) is that participation's. Returned unchanged (the same array) when no service point has more than
    one participation in the measurement. ``what`` names the one measurement in the note ("one meter"; "one
    report per service point" for an aggregator's kW-drop report, ``_measure_reported``)."""
    n = rows.size
    notes = [""] * n
    if n < 2 or np.unique(rows).size == n:
        return reduction, notes
    order = sorted(range(n), key=lambda k: pks[k])
    owner = np.full((int(rows.max()) + 1, mask.shape[1]), -1, dtype=np.int64)
    for k in reversed(order):  # the lowest id written last: it owns the intervals it counts
        owner[rows[k], mask[k]] = k
    held = owner[rows]
    mine = held == np.arange(n)[:, None]
    out = np.where(mask & ~mine, 0.0, reduction)
    for k in range(n):
        others = sorted({pks[int(j)] for j in held[k][mask[k] & ~mine[k]].tolist()})
        if others:
            notes[k] = (f"{what}, counted once: the service point's reduction in "
                        f"{int((mask[k] & ~mine[k]).sum())} of the counted intervals is on participation "
                        + ", ".join(map(str, others)))
    return out, notes


def _measure_meters(event, participations, minutes: int) -> ChunkMeasurement:
    from .meterdata.selectors import baseline_span, interval_kwh_matrix
    from .selectors import net_metered_ids, recorded_abnormal_days

    program = event.program
    tz = zone(program.time_zone)
    concrete, params, holidays = _meter_day_params(event)
    event_day = local_date(event.start, tz)
    sp_ids = sorted({p.service_point_id for p in participations})
    by_sp = other_event_days(service_point_ids=sp_ids, event=event, tz=tz,
                             first_day=event_day - dt.timedelta(days=params.lookback_days))
    row_of = {sp: k for k, sp in enumerate(sp_ids)}
    event_days = {row_of[sp]: days for sp, days in by_sp.items()}
    flagged = net_metered_ids(sp_ids)
    recorded = {row_of[sp]: days for sp, days in recorded_abnormal_days(
        program=program, service_point_ids=sp_ids, first_day=event_day - dt.timedelta(days=params.lookback_days),
        last_day=event_day - dt.timedelta(days=1)).items()}
    abnormal: dict[int, dict[dt.date, str]] = {k: dict(days) for k, days in recorded.items()}
    empty_days: dict[int, set[dt.date]] = {}
    n_sp = len(sp_ids)
    net_rows = np.zeros(n_sp, dtype=bool)
    delivered = received = None  # event-window kWh per interval of the net rows ([n_sp, n_ev], NaN elsewhere)

    def run(ks: list[int], lookback_days: int) -> bl.BatchBaselineResult:
        nonlocal delivered, received
        ids = [sp_ids[k] for k in ks]
        start, end = baseline_span(event_start=event.start, event_end=event.end, tz=tz, lookback_days=lookback_days,
                                   interval_minutes=minutes)
        matrix = interval_kwh_matrix(service_point_ids=ids, start=start, end=end, interval_minutes=minutes,
                                     chunk_size=max(1, len(ids)), net=True)
        days = [event_day - dt.timedelta(days=i) for i in range(1, lookback_days + 1)]
        zero, empty = detect_days(matrix.kwh, start=matrix.start, interval_minutes=minutes, tz=tz, days=days)
        for j, found in zero.items():
            for day in found:
                abnormal.setdefault(ks[j], {}).setdefault(day, DETECTED_ZERO)
        for j, found in empty.items():
            empty_days.setdefault(ks[j], set()).update(found)
        if matrix.net_rows is not None and matrix.net_rows.any():
            i0 = int((event.start - matrix.start).total_seconds()) // (minutes * 60)
            i1 = int((event.end - matrix.start).total_seconds()) // (minutes * 60)
            if delivered is None:
                delivered, received = np.full((n_sp, i1 - i0), np.nan), np.full((n_sp, i1 - i0), np.nan)
            for j in np.flatnonzero(matrix.net_rows).tolist():
                net_rows[ks[j]] = True
                delivered[ks[j]] = matrix.delivered_kwh[j, i0:i1]
                received[ks[j]] = matrix.received_kwh[j, i0:i1]
        return bl.baseline_batch(start=matrix.start, interval_minutes=minutes, kwh=matrix.kwh, tz=tz,
                                 event_start=event.start, event_end=event.end, params=params, holidays=holidays,
                                 event_days={j: event_days[k] for j, k in enumerate(ks) if k in event_days},
                                 abnormal_days={j: abnormal[k] for j, k in enumerate(ks) if k in abnormal})

    # Read the recent days a complete window needs first; only service points whose window is not complete there
    # (missing data, their own event or abnormal days, low usage) are read over the whole lookback and computed
    # again. A complete window gives the same result whatever older days hold (they are "not reached").
    near = near_lookback_days(event_day, concrete, holidays)
    result = run(list(range(n_sp)), near)
    redo = np.flatnonzero(result.insufficient_days) if near < params.lookback_days else np.zeros(0, dtype=np.int64)
    if redo.size:
        again = run(redo.tolist(), params.lookback_days)
        for name, value in vars(again).items():
            if isinstance(value, np.ndarray):
                getattr(result, name)[redo] = value
    if not program.counts_reduction_below_zero_net_load:
        below = net_rows | (result.actual_kw < 0).any(axis=1)  # net on two channels, or net read on one
        if below.any():
            _below_zero_not_counted(result, np.flatnonzero(below), minutes)
    rows = np.array([row_of[p.service_point_id] for p in participations], dtype=np.int64)
    n_ev = len(result.event_starts)
    counted = _counted(participations, event, minutes, n_ev)
    mask = np.arange(n_ev)[None, :] < counted[:, None]
    reduction, shared = _share_meter(result.reduction_kwh[rows], rows, mask, [p.pk for p in participations])
    actual = result.actual_kw[rows]
    enough = ~result.insufficient_days[rows]
    actual_missing = (np.isnan(actual) & mask).sum(axis=1)
    ok = enough & (actual_missing == 0)
    kwh = np.where(ok, np.where(mask, reduction, 0.0).sum(axis=1), 0.0)
    hours = (event.end - event.start).total_seconds() / 3600.0
    detail = [""] * len(participations)
    for k in np.flatnonzero(~ok).tolist():
        if not enough[k]:
            detail[k] = bl._insufficient_reason(result.params, int(result.n_eligible[rows[k]]),
                                                result.params.lookback_days)
        else:
            detail[k] = (f"event-day meter data missing for {int(actual_missing[k])} of {int(counted[k])} "
                         f"counted intervals")
    return ChunkMeasurement(
        method=method_label(program, result.params), params=result.params.as_dict(), interval_minutes=minutes,
        starts=result.event_starts, participation_ids=[p.pk for p in participations], ok=ok, detail=detail,
        baseline_kw=result.baseline_kw[rows], adjusted_baseline_kw=result.adjusted_baseline_kw[rows],
        actual_kw=actual, reduction_kwh=reduction, counted=counted, kwh_avoided=kwh,
        kw_drop_avg=kwh / hours if hours else np.zeros_like(kwh), adjustment=result.adjustment_applied[rows],
        cand_days=result.cand_days, day_reason=result.day_reason[rows],
        abnormal=[abnormal.get(r, {}) for r in rows.tolist()],
        no_reading_days=[tuple(sorted(empty_days.get(r, ()), reverse=True)) for r in rows.tolist()],
        net=[(delivered[r].tolist(), received[r].tolist()) if net_rows[r] else None for r in rows.tolist()],
        net_metered=[p.service_point_id in flagged for p in participations], shared=shared,
        adjustment_missing=result.flag_adjustment_actual_missing[rows].tolist())


def device_kwh_matrix(*, device_ids, start: dt.datetime, end: dt.datetime, channel: str = "received",
                      interval_minutes: int = 60) -> np.ndarray:
    """kWh ``[len(device_ids), (end - start) / interval_minutes]`` of the devices' own current readings (device-level
    ``IntervalDay`` rows), NaN = no reading; finer rows are summed into the grid, coarser ones stay NaN. One query
    (device ids as a range; rows of other devices in the range are dropped)."""
    from .models import IntervalDay

    ids = np.asarray(sorted(device_ids), dtype=np.int64)
    step = interval_minutes * 60
    first_day, last_day = start.astimezone(dt.UTC).date(), (end - dt.timedelta(seconds=1)).astimezone(dt.UTC).date()
    n_days = (last_day - first_day).days + 1
    per_day = 1440 // interval_minutes
    grid = np.full((ids.size, n_days, per_day), np.nan)
    if ids.size:
        rows = list(IntervalDay.objects.filter(
            device_id__gte=int(ids[0]), device_id__lte=int(ids[-1]), channel=channel, is_current=True,
            day__gte=first_day, day__lte=last_day).values_list("device_id", "day", "interval_minutes", "values")
            .order_by())
        ordinal0 = first_day.toordinal()
        wanted = set(ids.tolist())
        for row_min in {r[2] for r in rows}:
            if row_min > interval_minutes:
                continue
            sel = [r for r in rows if r[2] == row_min and r[0] in wanted]
            if not sel:
                continue
            values = np.frombuffer(b"".join(bytes(r[3]) for r in sel), dtype="<f8").reshape(len(sel), -1)
            if row_min < interval_minutes:
                values = values.reshape(len(sel), per_day, interval_minutes // row_min).sum(axis=2)
            grid[np.searchsorted(ids, [r[0] for r in sel]), [r[1].toordinal() - ordinal0 for r in sel]] = values
    offset = int((start - dt.datetime.combine(first_day, dt.time(0), tzinfo=dt.UTC)).total_seconds()) // step
    count = int((end - start).total_seconds()) // step
    return grid.reshape(ids.size, n_days * per_day)[:, offset:offset + count]


def _measure_devices(event, participations, minutes: int) -> ChunkMeasurement:
    step = dt.timedelta(minutes=minutes)
    n_ev = int((event.end - event.start) / step)
    starts = [event.start + i * step for i in range(n_ev)]
    device_ids = sorted({p.device_id for p in participations if p.device_id})
    discharge = device_kwh_matrix(device_ids=device_ids, start=event.start, end=event.end, interval_minutes=minutes)
    pos = {d: k for k, d in enumerate(device_ids)}
    n = len(participations)
    values = np.full((n, n_ev), np.nan)
    has = [k for k, p in enumerate(participations) if p.device_id in pos]
    if has:
        values[has] = discharge[[pos[participations[k].device_id] for k in has]]
    counted = _counted(participations, event, minutes, n_ev)
    mask = np.arange(n_ev)[None, :] < counted[:, None]
    missing = (np.isnan(values) & mask).any(axis=1) | np.array([p.device_id is None for p in participations],
                                                              dtype=bool)
    ok = ~missing
    kwh = np.where(ok, np.where(mask, values, 0.0).sum(axis=1), 0.0)
    hours = (event.end - event.start).total_seconds() / 3600.0
    zeros = np.zeros((n, n_ev))
    return ChunkMeasurement(
        method=METHOD_DEVICE, params=None, interval_minutes=minutes, starts=starts,
        participation_ids=[p.pk for p in participations], ok=ok,
        detail=["" if good else "no device discharge telemetry for the counted intervals" for good in ok.tolist()],
        baseline_kw=zeros, adjusted_baseline_kw=zeros, actual_kw=values * (60.0 / minutes), reduction_kwh=values,
        counted=counted, kwh_avoided=kwh, kw_drop_avg=kwh / hours if hours else np.zeros(n),
        adjustment=np.full(n, np.nan), cand_days=[], day_reason=None)


def _measure_reported(event, participations, minutes: int, records: dict) -> ChunkMeasurement:
    """Measurement of an AGGREGATOR_REPORTED program from the current ``ReportedKwDrop`` of each service point
    (``records``: ``settlement.meterdata.selectors.reported_kw_drops``, one query), on the ``minutes`` grid.

    Rules (issue 18.5; a blank KwDrop is missing data, never zero):

    - The counted window is the event window up to the opt-out, on the event's grid (``grid_minutes``, as for the
      other measurements; the report's own intervals when they are finer and the opt-out cuts a grid interval:
      ``measure_event``): ``[event start, event start + counted intervals)``. A reported interval counts for the
      part of it inside that window (an interval reported before the event start, after the end or after the opt-out
      counts for nothing there).
    - kWh avoided = sum over the reported (non-blank) intervals of kW x hours inside the counted window. Missing
      intervals add nothing and are counted (``intervals_missing``), as is the counted time the report does not span
      at all (``hours_not_covered``).
    - kW drop max / min: of the reported values of the intervals inside the counted window; ``kw_drop_avg_reported``
      = kWh avoided / reported hours (the average while reported). The settlement's ``kw_drop_avg`` is that average
      x counted hours / event hours: the whole window's average, as for the other measurements (1 h of a 3 h event
      counts a third), without reading missing intervals as zero.
    - Completeness = reported hours / counted hours. ``Program.reported_min_completeness_pct`` (0 = none): below it
      the participation is INSUFFICIENT_DATA (pending, no money), as is one with no report, or with no reported
      value in the counted window. A participation that opted out before its first interval ended is measured at
      0 kWh, as elsewhere.

    ``actual_kw`` per grid interval = reported kWh / reported hours in it (NaN where nothing was reported),
    ``reduction_kwh`` = reported kWh in it (NaN where nothing); baselines are 0.
    """
    program = event.program
    step = minutes * 60
    t0, t_end = event.start.timestamp(), event.end.timestamp()
    n_ev = int((t_end - t0) // step)
    starts = [event.start + dt.timedelta(seconds=i * step) for i in range(n_ev)]
    n = len(participations)
    counted = _counted(participations, event, minutes, n_ev)
    cell_kwh = np.full((n, n_ev), np.nan)
    cell_hours = np.zeros((n, n_ev))
    kwh = np.zeros(n)
    kw_avg = np.zeros(n)
    ok = np.zeros(n, dtype=bool)
    detail = [""] * n
    info: list[dict | None] = [None] * n
    event_hours = (t_end - t0) / 3600.0
    need = float(program.reported_min_completeness_pct or 0)
    for k, p in enumerate(participations):
        r = records.get(p.service_point_id)
        if r is None:
            detail[k] = f"no aggregator-reported kW drop for this service point in event {event.pk}"
            continue
        stop = t0 + int(counted[k]) * step
        first, size = r.actual_start.timestamp(), r.interval_seconds
        reported_h, total, reported_n, missing_n = 0.0, 0.0, 0, 0
        values: list[float] = []
        for i, v in enumerate(r.kw_drop):
            lo, hi = max(first + i * size, t0), min(first + (i + 1) * size, stop)
            if hi <= lo:
                continue
            if v is None:
                missing_n += 1
                continue
            reported_n += 1
            values.append(v)
            reported_h += (hi - lo) / 3600.0
            total += v * (hi - lo) / 3600.0
            for c in range(int((lo - t0) // step), min(n_ev, -int(-(hi - t0) // step))):
                c_lo, c_hi = max(lo, t0 + c * step), min(hi, t0 + (c + 1) * step)
                if c_hi > c_lo:
                    hours = (c_hi - c_lo) / 3600.0
                    cell_kwh[k, c] = (0.0 if np.isnan(cell_kwh[k, c]) else cell_kwh[k, c]) + v * hours
                    cell_hours[k, c] += hours
        counted_h = (stop - t0) / 3600.0
        spanned = max(0.0, min(r.actual_end.timestamp(), stop) - max(first, t0)) / 3600.0
        completeness = 100.0 * reported_h / counted_h if counted_h else 100.0
        info[k] = {"record_id": r.pk, "record_version": r.version, "load_id": r.load_id,
                   "interval_seconds": size, "actual_start": r.actual_start.isoformat(),
                   "actual_end": r.actual_end.isoformat(), "intervals_reported": reported_n,
                   "intervals_missing": missing_n, "hours_reported": round(reported_h, 6),
                   "hours_not_covered": round(max(0.0, counted_h - spanned), 6),
                   "completeness_pct": round(completeness, 2),
                   "kw_drop_max": max(values) if values else None, "kw_drop_min": min(values) if values else None,
                   "kw_drop_avg_reported": round(total / reported_h, 6) if reported_h else None}
        if counted_h and not reported_n:
            detail[k] = (f"the aggregator reported no kW drop in the {int(counted[k])} counted intervals of event "
                         f"{event.pk} ({missing_n} blank: missing data, not zero)")
        elif counted_h and completeness + 1e-9 < need:
            detail[k] = (f"the reported kW drop covers {completeness:.1f}% of the counted event time; the program "
                         f"requires {need:g}%")
        else:
            ok[k] = True
            kwh[k] = total
            kw_avg[k] = (total / reported_h) * (counted_h / event_hours) if reported_h and event_hours else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        actual_kw = np.where(cell_hours > 0, cell_kwh / np.where(cell_hours > 0, cell_hours, 1.0), np.nan)
    # One report per service point: two participations there (two devices of one enrollment) share its kWh, counted
    # once (``_share_meter``); a participation left with none of it is worth 0 kWh and 0 kW.
    rows = np.unique([p.service_point_id for p in participations], return_inverse=True)[1].reshape(-1)
    mask = np.arange(n_ev)[None, :] < counted[:, None]
    cell_kwh, shared = _share_meter(cell_kwh, rows, mask, [p.pk for p in participations],
                                    what="one report per service point")
    for k in (k for k in range(n) if shared[k] and ok[k]):
        kwh[k] = float(np.nansum(np.where(mask[k], cell_kwh[k], np.nan)))
        kw_avg[k] = kwh[k] / event_hours if event_hours else 0.0
    zeros = np.zeros((n, n_ev))
    return ChunkMeasurement(
        method=METHOD_REPORTED, params=None, interval_minutes=minutes, starts=starts,
        participation_ids=[p.pk for p in participations], ok=ok, detail=detail, baseline_kw=zeros,
        adjusted_baseline_kw=zeros, actual_kw=actual_kw, reduction_kwh=cell_kwh, counted=counted,
        kwh_avoided=kwh, kw_drop_avg=kw_avg, adjustment=np.full(n, np.nan), cand_days=[], day_reason=None,
        reported=info, shared=shared)
