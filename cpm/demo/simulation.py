"""The demo's simulation (pure, no Django): which days are hot, how devices respond, who opts out.

Documented in the README ("The demo"):
- Hot days: for each program, the weekdays (not holidays when the program excludes them) of its 2011 summer season
  ranked by the total load of the real meters (or the synthetic fleet) in the program's event window, in the
  program's zone; each event takes the hours of the window with the highest total load.
- Thermostats shed ``THERMOSTAT_SHED_SHARE`` (30 %) of their service point's recorded load in each event hour, at
  most their capacity (kW x 1 h), in proportion to the part of the hour before an opt-out.
- Batteries discharge at capacity for the part of each event hour before an opt-out (device telemetry, RECEIVED).
- Responses are seeded: ``OPT_OUT_SHARE`` of participants opt out (half before the start through the portal, half
  during the event at the device), ``NON_RESPONSIVE_SHARE`` do not respond (no load change), the others take part.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

THERMOSTAT_SHED_SHARE = 0.30
OPT_OUT_SHARE = 0.12
NON_RESPONSIVE_SHARE = 0.05
HOUR = 3600

PARTICIPATE = "participate"
OPT_OUT_BEFORE = "opt_out_before_start"
OPT_OUT_DURING = "opt_out_during"
NON_RESPONSIVE = "non_responsive"


@dataclass(frozen=True)
class HotDay:
    day: dt.date
    start_hour: int  # local wall-clock hour the event starts
    hours: int
    score_kwh: float  # total load of the reference meters in the chosen hours


def hot_days(total: Mapping[int, float], *, tz: str, first: dt.date, last: dt.date, window: tuple[int, int],
             hours: int, count: int, allowed: Callable[[dt.date], bool]) -> list[HotDay]:
    """The ``count`` days in ``[first, last]`` (local, ``allowed``) with the highest load in the best ``hours``
    consecutive hours of ``window`` (local hours ``[start, end)``); returned in date order.

    ``total``: {UTC epoch hour start: kWh}, the summed load of the reference meters. A day missing any hour of a
    candidate window is skipped.
    """
    zone = ZoneInfo(tz)
    ranked: list[HotDay] = []
    day = first
    while day <= last:
        if allowed(day):
            best: HotDay | None = None
            for start_hour in range(window[0], window[1] - hours + 1):
                start = dt.datetime.combine(day, dt.time(start_hour), tzinfo=zone).astimezone(dt.UTC)
                keys = [int(start.timestamp()) + HOUR * k for k in range(hours)]
                if any(k not in total for k in keys):
                    continue
                score = sum(total[k] for k in keys)
                if best is None or score > best.score_kwh:
                    best = HotDay(day, start_hour, hours, score)
            if best is not None:
                ranked.append(best)
        day += dt.timedelta(days=1)
    ranked.sort(key=lambda h: (-h.score_kwh, h.day))
    return sorted(ranked[:count], key=lambda h: h.day)


def hour_fractions(start: dt.datetime, end: dt.datetime, stop: dt.datetime | None) -> dict[int, float]:
    """{UTC epoch hour start: share of that hour inside ``[start, min(end, stop))``} for the event's hours."""
    until = min(end, stop) if stop is not None else end
    out: dict[int, float] = {}
    hour = int(start.timestamp()) // HOUR * HOUR
    while hour < int(end.timestamp()):
        lo = max(hour, int(start.timestamp()))
        hi = min(hour + HOUR, int(until.timestamp()))
        out[hour] = max(0, hi - lo) / HOUR
        hour += HOUR
    return out


def thermostat_load(kwh: float, *, capacity_kw: float, fraction: float, share: float = THERMOSTAT_SHED_SHARE
                    ) -> float:
    """The hour's kWh after the thermostat shed ``share`` of it (at most ``capacity_kw`` x 1 h) for ``fraction``
    of the hour. Rounded to 0.1 Wh, as a meter reports it."""
    shed = min(share * kwh, capacity_kw) * fraction
    return round(kwh - shed, 4)


def battery_discharge(*, capacity_kw: float, fraction: float) -> float:
    """kWh a battery delivers in an hour discharging at capacity for ``fraction`` of it."""
    return round(capacity_kw * fraction, 4)


@dataclass(frozen=True)
class Response:
    kind: str
    minutes_in: int = 0  # minutes after the start of an opt-out during the event


def plan_responses(keys: Iterable, rng: np.random.Generator, *, duration_minutes: int,
                   opt_out_share: float = OPT_OUT_SHARE, non_responsive_share: float = NON_RESPONSIVE_SHARE,
                   ) -> dict:
    """A seeded response for each participant key (in the given order)."""
    out = {}
    for key in keys:
        draw = float(rng.random())
        if draw < opt_out_share / 2:
            out[key] = Response(OPT_OUT_BEFORE)
        elif draw < opt_out_share:
            # Overrides happen between 20 minutes in and 20 minutes before the end, on 5-minute marks.
            out[key] = Response(OPT_OUT_DURING, int(rng.integers(4, max(5, duration_minutes // 5 - 3))) * 5)
        elif draw < opt_out_share + non_responsive_share:
            out[key] = Response(NON_RESPONSIVE)
        else:
            out[key] = Response(PARTICIPATE)
    return out
