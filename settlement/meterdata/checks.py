"""Plausibility rules of interval readings (issue 15), shared by the CSV, Green Button, bulk API and array loads.

Pure module (no Django): vectorised numpy checks that reject rows through a ``reject(row, field, message)`` callback
and clear them in an ``ok`` mask. The loaders take the limits from settings (``settlement.meterdata.loaders``):

=============================== ========= =================================================================
setting                         default   rule
=============================== ========= =================================================================
``CPM_MAX_KWH_PER_HOUR``        200       kWh per hour of interval on a residential or small commercial
                                          service point (delivered, received and the size of a net value):
                                          200 kW held for the interval. A residential service of 400 A at
                                          240 V peaks at 96 kW; 1e308 kWh and 1e28 Wh (Green Button) are
                                          far beyond it. A 15-minute interval allows 50 kWh.
``CPM_MAX_KWH_PER_HOUR_CI``     100000    the same for commercial & industrial service points (100 MW).
``CPM_METER_YEARS``             (1900,    interval starts before 1 January of the first year or after
                                2100)     31 December of the second are rejected (years 0001 and 9999).
=============================== ========= =================================================================

Always rejected: a value that is not a number (``abc``, the text ``NaN``: an empty field is the way to say "not
provided"), an infinity or a number too large for a float, a negative delivered or received value (only the net
channel may be negative), and, in a file, a field with a NUL character or longer than ``MAX_FIELD`` characters.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable

import numpy as np

MAX_KWH_PER_HOUR = 200.0
MAX_KWH_PER_HOUR_CI = 100_000.0
YEARS = (1900, 2100)
MAX_FIELD = 256  # characters in one CSV field (a service point id has at most 64, a device serial 100)
CHANNEL_NAMES = ("delivered", "received")

Reject = Callable[[int, str, str], None]


def epoch_range(years: tuple[int, int] = YEARS) -> tuple[int, int]:
    """UTC epoch seconds [lo, hi): 1 January of the first year to 1 January after the last."""
    return calendar.timegm((years[0], 1, 1, 0, 0, 0)), calendar.timegm((years[1] + 1, 1, 1, 0, 0, 0))


def reject_values(kwh: np.ndarray, start: np.ndarray, channel: np.ndarray, signed: np.ndarray | None,
                  rows: np.ndarray, ok: np.ndarray, reject: Reject, *, years: tuple[int, int] = YEARS,
                  start_text: Callable[[int], str] | None = None) -> None:
    """Reject (and clear in ``ok``) the rows with an infinite kWh, a negative delivered/received kWh (``signed``:
    True where the row is on the net channel, which may be negative; None = no net rows) or an interval start
    outside ``years``. NaN kWh is "not provided" here (a parser rejects the text NaN itself)."""
    inf = ok & np.isinf(kwh)
    for k in np.flatnonzero(inf):
        reject(int(rows[k]), "kwh", "must be finite")
    ok &= ~inf
    neg = ok & (kwh < 0)
    if signed is not None:
        neg &= ~signed
    for k in np.flatnonzero(neg):
        reject(int(rows[k]), "kwh", f"negative {CHANNEL_NAMES[int(channel[k])]} energy ({kwh[k]:g} kWh): only the "
                                    "net channel may be negative")
    ok &= ~neg
    lo, hi = epoch_range(years)
    out = ok & ((start < lo) | (start >= hi))
    for k in np.flatnonzero(out):
        shown = start_text(k) if start_text is not None else str(int(start[k]))
        reject(int(rows[k]), "interval_start", f"{shown} is outside the years {years[0]}-{years[1]}")
    ok &= ~out


def values_plausible(kwh: np.ndarray, start: np.ndarray, channel: np.ndarray, signed: np.ndarray | None, *,
                     years: tuple[int, int] = YEARS) -> bool:
    """True when ``reject_values`` would reject nothing (the fast path's test: no Python per row)."""
    if np.isinf(kwh).any():
        return False
    neg = kwh < 0
    if neg.any() and (signed is None or not signed[neg].all()):
        return False
    lo, hi = epoch_range(years)
    return bool(start.size == 0 or (start.min() >= lo and start.max() < hi))


def reject_over_limit(kwh: np.ndarray, minutes: np.ndarray, limit_per_hour: np.ndarray | float, rows: np.ndarray,
                      ok: np.ndarray, reject: Reject, *, setting: Callable[[int], str] | None = None) -> None:
    """Reject (and clear in ``ok``) the rows whose |kWh| exceeds ``limit_per_hour`` (per row or one number) x the
    interval's hours. ``setting(k)``: the name and value of the limit for the message of row k."""
    limit = np.asarray(limit_per_hour, dtype=np.float64) * (minutes.astype(np.float64) / 60.0)
    with np.errstate(invalid="ignore"):
        over = ok & (np.abs(kwh) > limit)
    for k in np.flatnonzero(over):
        lim = float(limit if limit.ndim == 0 else limit[k])
        why = f" ({setting(k)})" if setting is not None else ""
        reject(int(rows[k]), "kwh", f"{kwh[k]:g} kWh in a {int(minutes[k])}-minute interval is beyond the plausible "
                                    f"{lim:g} kWh{why}")
    ok &= ~over
