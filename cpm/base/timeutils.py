"""Time helpers: UTC in the database, the program's IANA zone only at the edges.

Periods are half-open ``[start, end)``. A local day is the span from local midnight to the next local midnight,
which lasts 23, 24 or 25 hours of real elapsed time.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC = dt.UTC


def zone(name: str) -> ZoneInfo:
    """Return the ``ZoneInfo`` for an IANA name; raises ``ValueError`` naming it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"Unknown IANA time zone {name!r}") from exc


def is_valid_zone(name: str) -> bool:
    return name in available_timezones()


def require_aware(value: dt.datetime, *, field: str = "datetime") -> dt.datetime:
    """Return ``value`` in UTC; raises ``ValueError`` naming ``field`` for a naive datetime."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must include a time zone offset")
    return value.astimezone(UTC)


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant of local midnight starting ``day`` in ``tz``.

    Midnight always exists in the zones cpm serves (DST changes happen at 01:00-03:00 local).
    """
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(UTC)


def local_day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of a local day in UTC; 23, 24 or 25 hours long."""
    return local_midnight(day, tz), local_midnight(day + dt.timedelta(days=1), tz)


def local_date(instant: dt.datetime, tz: ZoneInfo) -> dt.date:
    """The local calendar date of a UTC instant in ``tz``."""
    return require_aware(instant).astimezone(tz).date()


def local_wall_to_utc(day: dt.date, time: dt.time, tz: ZoneInfo, *, fold: int = 0) -> dt.datetime:
    """UTC instant of a local wall-clock time (``fold`` picks the first or second 01:30 on the autumn night)."""
    return dt.datetime.combine(day, time, tzinfo=tz).replace(fold=fold).astimezone(UTC)


def wall_time_exists(day: dt.date, time: dt.time, tz: ZoneInfo) -> bool:
    """False for the skipped wall-clock times of the spring DST change (e.g. 02:30 in America/New_York)."""
    local = dt.datetime.combine(day, time, tzinfo=tz)
    round_trip = local.astimezone(UTC).astimezone(tz)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)


def hours_between(start: dt.datetime, end: dt.datetime) -> float:
    """Real elapsed hours of ``[start, end)`` (aware datetimes; DST-safe)."""
    return (require_aware(end) - require_aware(start)).total_seconds() / 3600.0


def iter_local_days(first: dt.date, last: dt.date):
    """Yield each date from ``first`` to ``last`` inclusive."""
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)
