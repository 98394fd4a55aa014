"""Read path of interval data: regular kWh matrices and series for settlement and baselines.

Everything here reads current versions only (``IntervalDay.is_current``), one query per chunk of service points, and
assembles arrays with numpy (no per-interval Python). Gaps are NaN, never zeros.

Typical use by settlement (one event, many service points)::

    start, end = baseline_span(event_start=ev.start, event_end=ev.end, tz=program.time_zone, lookback_days=45)
    m = interval_kwh_matrix(service_point_ids=sp_ids, start=start, end=end)
    result = baselines.baseline_batch(start=m.start, interval_minutes=m.interval_minutes, kwh=m.kwh,
                                      tz=program.time_zone, event_start=ev.start, event_end=ev.end, params=params,
                                      holidays=..., event_days={row: dates}, abnormal_days=...)
    # row k of result == m.service_point_ids[k]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from django.db.models import Max

from .models import IntervalDay, ReportedKwDrop
from .series import IntervalSeries

UTC = dt.UTC
_DAY = dt.timedelta(days=1)


@dataclass
class IntervalMatrix:
    """``kwh[k, i]`` = energy (kWh) of service point ``service_point_ids[k]`` in the interval starting
    ``start + i * interval_minutes`` (UTC); NaN = no reading. Rows follow the order of the ids asked for."""

    service_point_ids: np.ndarray
    start: dt.datetime
    interval_minutes: int
    kwh: np.ndarray
    # Net reads (``net=True``): rows with received-channel readings in the span (``kwh`` = delivered - received
    # there), and both channels as read (``None`` when no row has received readings).
    net_rows: np.ndarray | None = None
    delivered_kwh: np.ndarray | None = None
    received_kwh: np.ndarray | None = None

    @property
    def kw(self) -> np.ndarray:
        """Average demand per interval (kW)."""
        return self.kwh * (60.0 / self.interval_minutes)

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.interval_minutes * self.kwh.shape[1])

    def series(self, k: int) -> IntervalSeries:
        return IntervalSeries(start=self.start, interval_minutes=self.interval_minutes, kwh=self.kwh[k])


def _utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def interval_kwh_matrix(*, service_point_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
                        channel: str = "delivered", device_id: int | None = None, interval_minutes: int = 60,
                        chunk_size: int = 5000, net: bool = False) -> IntervalMatrix:
    """kWh matrix ``[len(service_point_ids), (end - start) / interval_minutes]`` of current readings.

    net: read the delivered and the received channels in the same query (``channel`` ignored); a service point with
    received readings in the span gets ``kwh`` = delivered - received (never clamped at zero; NaN where either is
    missing), the others their delivered readings as they are. A service point without received readings costs the
    same as a delivered-only read (no received grid is built unless a received row comes back).

    service_point_ids: ServicePoint pks (rows keep this order; unknown ids give NaN rows).
    start, end: aware datetimes on the ``interval_minutes`` grid; ``[start, end)``.
    channel: ``delivered`` or ``received``. device_id: ``None`` = service-point meter data (no device), else that
    device's readings. interval_minutes: the grid of the result; days stored at a finer resolution are summed into
    it (NaN if any part is missing); days stored coarser than the grid are NaN (cannot be split).
    One query per ``chunk_size`` service points.
    """
    start, end = _utc(start, "start"), _utc(end, "end")
    step = interval_minutes * 60
    if interval_minutes not in (5, 15, 30, 60):
        raise ValueError(f"interval_minutes must be 5, 15, 30 or 60, not {interval_minutes}")
    if end <= start or int(start.timestamp()) % step or int(end.timestamp()) % step:
        raise ValueError(f"[start, end) must be a non-empty span on the {interval_minutes}-minute grid")
    ids = np.asarray(list(service_point_ids), dtype=np.int64)
    first_day, last_day = start.date(), (end - dt.timedelta(seconds=1)).date()
    n_days = (last_day - first_day).days + 1
    per_day = 1440 // interval_minutes
    grid = np.full((ids.size, n_days, per_day), np.nan)
    received = None  # built at the first received row (net reads)
    # Row of each id: searchsorted on the sorted ids (rows keep the order asked for).
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    ordinal0 = first_day.toordinal()
    for lo in range(0, ids.size, chunk_size):
        chunk = ids[lo:lo + chunk_size].tolist()
        qs = IntervalDay.objects.filter(service_point_id__in=chunk, is_current=True,
                                        day__gte=first_day, day__lte=last_day)
        qs = qs.filter(channel__in=("delivered", "received")) if net else qs.filter(channel=channel)
        qs = qs.filter(device__isnull=True) if device_id is None else qs.filter(device_id=device_id)
        fields = ("service_point_id", "day", "interval_minutes", "values") + (("channel",) if net else ())
        fetched = _fetch_rows(qs.values_list(*fields).order_by())
        if not fetched:
            continue
        columns = list(zip(*fetched, strict=True))  # columns in C (zip)
        del fetched
        if net:
            channels = columns.pop()
            if "received" in set(channels):
                is_recv = np.array([c == "received" for c in channels], dtype=bool)
                if received is None:
                    received = np.full((ids.size, n_days, per_day), np.nan)
                pick = np.flatnonzero(is_recv).tolist()
                _fill(received, [[col[i] for i in pick] for col in columns], order, sorted_ids, ordinal0,
                      interval_minutes, per_day)
                pick = np.flatnonzero(~is_recv).tolist()
                columns = [[col[i] for i in pick] for col in columns]
                if not pick:
                    continue
        _fill(grid, columns, order, sorted_ids, ordinal0, interval_minutes, per_day)
    flat = grid.reshape(ids.size, n_days * per_day)
    offset = int((start - dt.datetime.combine(first_day, dt.time(0), tzinfo=UTC)).total_seconds()) // step
    count = int((end - start).total_seconds()) // step
    kwh = flat[:, offset:offset + count]
    if not net:
        return IntervalMatrix(service_point_ids=ids, start=start, interval_minutes=interval_minutes, kwh=kwh)
    if received is None:
        return IntervalMatrix(service_point_ids=ids, start=start, interval_minutes=interval_minutes, kwh=kwh,
                              net_rows=np.zeros(ids.size, dtype=bool))
    recv_kwh = received.reshape(ids.size, n_days * per_day)[:, offset:offset + count]
    net_rows = ~np.isnan(recv_kwh).all(axis=1)
    delivered = kwh.copy()
    kwh[net_rows] = delivered[net_rows] - recv_kwh[net_rows]
    return IntervalMatrix(service_point_ids=ids, start=start, interval_minutes=interval_minutes, kwh=kwh,
                          net_rows=net_rows, delivered_kwh=delivered, received_kwh=recv_kwh)


def _fill(grid: np.ndarray, columns, order: np.ndarray, sorted_ids: np.ndarray, ordinal0: int,
          interval_minutes: int, per_day: int) -> None:
    """Write fetched rows, as columns ``(service points, days, minutes, values)``, into ``grid[row, day, interval]``
    (positions with numpy: no per-row Python beyond the date ordinals)."""
    col_sp, col_day, col_min, col_blob = columns
    rows = order[np.searchsorted(sorted_ids, np.fromiter(col_sp, dtype=np.int64, count=len(col_sp)))]
    if isinstance(col_day[0], str):  # raw SQLite rows
        col_day = [dt.date.fromisoformat(d) for d in col_day]
    days = np.fromiter(map(dt.date.toordinal, col_day), dtype=np.int64, count=len(col_day)) - ordinal0
    minutes_col = np.fromiter(col_min, dtype=np.int64, count=len(col_min))
    for minutes in np.unique(minutes_col).tolist():
        if minutes > interval_minutes:
            continue  # coarser than the grid: stays NaN
        sel = np.flatnonzero(minutes_col == minutes)
        blobs = col_blob if sel.size == len(col_blob) else [col_blob[i] for i in sel.tolist()]
        values = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(sel.size, 1440 // minutes)
        if minutes < interval_minutes:
            values = values.reshape(sel.size, per_day, interval_minutes // minutes).sum(axis=2)
        grid[rows[sel], days[sel]] = values


def coarsest_interval_minutes(*, first_day: dt.date, last_day: dt.date, service_point_ids: Sequence[int] = (),
                              device_ids: Sequence[int] = (), channels: Sequence[str] = ("delivered", "received")
                              ) -> dict[int, int]:
    """The coarsest interval length (minutes) of the current readings stored for UTC days ``first_day..last_day``:
    ``{service point pk: minutes}`` of the service points' own meter data (``service_point_ids``, no device), or
    ``{device pk: minutes}`` of the devices' readings (``device_ids``; give one or the other). ``channels``: the
    channels looked at. An id without any reading there is absent. One query.

    The grid a finer settlement can read every one of those days on (``interval_kwh_matrix`` leaves a day stored
    coarser than its grid as NaN)."""
    qs = IntervalDay.objects.filter(is_current=True, day__gte=first_day, day__lte=last_day, channel__in=channels)
    if device_ids:
        qs, key = qs.filter(device_id__in=list(device_ids)), "device_id"
    else:
        qs, key = qs.filter(service_point_id__in=list(service_point_ids), device__isnull=True), "service_point_id"
    return dict(qs.values(key).annotate(m=Max("interval_minutes")).values_list(key, "m").order_by())


def _fetch_rows(values_qs) -> list[tuple]:
    """All rows of a ``values_list`` queryset through one cursor ``fetchall`` (the SQL is the ORM's; rows are not
    passed through the ORM's per-row iterator, which costs more than the read itself at millions of rows)."""
    from django.db import connections

    sql, params = values_qs.query.sql_with_params()
    with connections[values_qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def load_series(*, service_point_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
                channel: str = "delivered", device_id: int | None = None,
                interval_minutes: int = 60) -> dict[int, IntervalSeries]:
    """``{service point pk: IntervalSeries(start, interval_minutes, kwh)}`` over ``[start, end)``.

    Every series shares ``start`` and ``interval_minutes``; ``kwh`` is a float64 array (NaN = no reading) of
    ``(end - start) / interval_minutes`` values. Same arguments as ``interval_kwh_matrix`` (which it wraps: the arrays
    are views of one matrix).
    """
    m = interval_kwh_matrix(service_point_ids=service_point_ids, start=start, end=end, channel=channel,
                            device_id=device_id, interval_minutes=interval_minutes)
    return {int(pk): m.series(k) for k, pk in enumerate(m.service_point_ids)}


def baseline_span(*, event_start: dt.datetime, event_end: dt.datetime, tz: str | ZoneInfo,
                  lookback_days: int = 45, interval_minutes: int = 60) -> tuple[dt.datetime, dt.datetime]:
    """UTC ``[start, end)`` covering the ``lookback_days`` local days before the event's local day through the end
    of the event's local day (what a baseline reads), aligned to the interval grid."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    event_day = _utc(event_start, "event_start").astimezone(zone).date()
    last_day = _utc(event_end - dt.timedelta(seconds=1), "event_end").astimezone(zone).date()
    first = dt.datetime.combine(event_day - lookback_days * _DAY, dt.time(0), tzinfo=zone).astimezone(UTC)
    # one extra day before: an adjustment window may reach back across local midnight
    first -= _DAY
    end = dt.datetime.combine(last_day + _DAY, dt.time(0), tzinfo=zone).astimezone(UTC)
    step = interval_minutes * 60
    first = dt.datetime.fromtimestamp(int(first.timestamp()) // step * step, UTC)
    end = dt.datetime.fromtimestamp(-(-int(end.timestamp()) // step) * step, UTC)
    return first, end


def interval_kw_frame(*, service_point_ids: Sequence[int], tz: str | ZoneInfo, first_day: dt.date,
                      last_day: dt.date, channel: str = "delivered", device_id: int | None = None,
                      interval_minutes: int = 60) -> IntervalMatrix:
    """Interval matrix over the program's local days ``[first_day, last_day]`` (inclusive) in zone ``tz``.

    ``.kwh`` feeds ``baselines.baseline_batch`` directly; ``.kw`` gives average demand. The span is the UTC instants
    from local midnight of ``first_day`` to local midnight after ``last_day`` (23/24/25-hour days included).
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    start = dt.datetime.combine(first_day, dt.time(0), tzinfo=zone).astimezone(UTC)
    end = dt.datetime.combine(last_day + _DAY, dt.time(0), tzinfo=zone).astimezone(UTC)
    return interval_kwh_matrix(service_point_ids=service_point_ids, start=start, end=end, channel=channel,
                               device_id=device_id, interval_minutes=interval_minutes)


def reported_kw_drops(*, event_id: int, service_point_ids: Sequence[int]) -> dict[int, ReportedKwDrop]:
    """``{service point pk: current ReportedKwDrop}`` of one event for the service points asked for (ids as a range,
    one query; the others in the range are dropped). A service point without a report is absent."""
    ids = sorted(service_point_ids)
    if not ids:
        return {}
    wanted = set(ids)
    return {r.service_point_id: r for r in ReportedKwDrop.objects.filter(
        event_id=event_id, is_current=True, service_point_id__gte=ids[0], service_point_id__lte=ids[-1]).order_by()
        if r.service_point_id in wanted}
