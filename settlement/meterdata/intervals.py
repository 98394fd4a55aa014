"""Codec for a day of interval values: little-endian float64 kWh per interval, NaN for a missing interval.

A UTC day always has ``1440 / interval_minutes`` intervals (no DST in UTC), so position ``i`` is the interval
starting at ``day 00:00Z + i * interval_minutes``. Gaps stay gaps (NaN), never zeros. Pure module: no Django.
"""

from __future__ import annotations

import numpy as np

DTYPE = np.dtype("<f8")


def intervals_per_day(interval_minutes: int) -> int:
    if interval_minutes not in (5, 15, 30, 60):
        raise ValueError(f"interval_minutes must be 5, 15, 30 or 60, not {interval_minutes}")
    return 1440 // interval_minutes


def encode(values: np.ndarray) -> bytes:
    """float64 array (NaN = missing) -> bytes."""
    return np.asarray(values, dtype=DTYPE).tobytes()


def decode(blob: bytes | memoryview) -> np.ndarray:
    """bytes -> read-only float64 array (NaN = missing)."""
    return np.frombuffer(bytes(blob) if isinstance(blob, memoryview) else blob, dtype=DTYPE)


def empty_day(interval_minutes: int) -> np.ndarray:
    return np.full(intervals_per_day(interval_minutes), np.nan, dtype=DTYPE)
