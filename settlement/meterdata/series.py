"""A regular series of interval kWh: what meter data hands to the baseline engine (pure: numpy only)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntervalSeries:
    """A regular series: ``kwh[i]`` is the energy of ``[start + i*interval, start + (i+1)*interval)``; NaN = gap."""

    start: dt.datetime
    interval_minutes: int
    kwh: np.ndarray

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.interval_minutes not in (5, 15, 30, 60):
            raise ValueError(f"interval_minutes must be 5, 15, 30 or 60, not {self.interval_minutes}")
