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


def a_year_after(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
    """The same date (or instant) a year later, February 28 for February 29: the farthest ahead a person's change
    may take effect (an enrollment, an unenrollment, an account closing, the end of a declared unavailability)."""
    try:
        return value.replace(year=value.year + 1)
    except ValueError:  # February 29
        return value.replace(year=value.year + 1, day=28)


def hours_between(start: dt.datetime, end: dt.datetime) -> float:
    """Real elapsed hours of ``[start, end)`` (aware datetimes; DST-safe)."""
    return (require_aware(end) - require_aware(start)).total_seconds() / 3600.0


def iter_local_days(first: dt.date, last: dt.date):
    """Yield each date from ``first`` to ``last`` inclusive."""
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


def format_local(instant: dt.datetime | None, tz: ZoneInfo | str, *, seconds: bool = False) -> str:
    """A UTC instant as people read it: wall-clock time in ``tz`` with the zone's abbreviation
    ("2026-07-15 15:00 PDT")."""
    if instant is None:
        return ""
    tz = zone(tz) if isinstance(tz, str) else tz
    return require_aware(instant).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def format_local_time(instant: dt.datetime | None, tz: ZoneInfo | str) -> str:
    """The wall-clock time only, with the zone ("15:00 PDT")."""
    if instant is None:
        return ""
    tz = zone(tz) if isinstance(tz, str) else tz
    return require_aware(instant).astimezone(tz).strftime("%H:%M %Z")


def format_local_window(start: dt.datetime, end: dt.datetime, tz: ZoneInfo | str | None = None) -> str:
    """A window ``[start, end)`` as people read it, in ``tz`` (or the instants' own zone): "2026-07-15 16:00 –
    19:00 PDT" within one local day and one zone abbreviation; both dates and abbreviations when it crosses
    midnight or a DST change ("2026-12-07 23:00 PST – 2026-12-08 01:00 PST")."""
    if tz is not None:
        tz = zone(tz) if isinstance(tz, str) else tz
        start, end = require_aware(start).astimezone(tz), require_aware(end).astimezone(tz)
    if start.date() == end.date() and start.tzname() == end.tzname():
        return f"{start:%Y-%m-%d %H:%M} – {end:%H:%M %Z}"
    return f"{start:%Y-%m-%d %H:%M %Z} – {end:%Y-%m-%d %H:%M %Z}"


class WallClockError(ValueError):
    """A local wall-clock time that does not exist (spring-forward gap) or happens twice (the repeated autumn
    hour); ``kind`` is ``"gap"`` or ``"ambiguous"``, the message says so in words. For a repeated time,
    ``problem`` is the message's first sentence (what is wrong) and ``choices`` the two ways to type it with its
    offset (``'"01:30 -07:00" for the first (PDT)'``), so a form whose boxes cannot take an offset can say what to
    do instead."""

    def __init__(self, message: str, kind: str, *, problem: str = "", choices: tuple[str, ...] = ()):
        super().__init__(message)
        self.kind = kind
        self.problem = problem or message
        self.choices = choices


def local_wall_to_utc_strict(wall: dt.datetime, tz: ZoneInfo, *, field: str = "time") -> dt.datetime:
    """UTC instant of a wall-clock time typed by a person in ``tz``.

    ``wall`` is naive (interpreted in ``tz``) or carries a fixed offset the person typed to pick one of the two
    repeated autumn times (``01:30 -07:00``); that offset must be one ``tz`` uses at that wall-clock time.
    Raises ``WallClockError`` naming ``field`` for a time in the spring-forward gap or a repeated time given
    without an offset, or (kind ``"range"``) a time whose UTC instant lies outside the calendar (year 1 to 9999).
    """
    shown = wall.strftime("%Y-%m-%d %H:%M")
    try:
        return _wall_to_utc_strict(wall, tz, field=field, shown=shown)
    except OverflowError:
        raise WallClockError(f"{field}: {shown} is out of range (its UTC time falls outside years 1 to 9999).",
                             "range") from None


def _wall_to_utc_strict(wall: dt.datetime, tz: ZoneInfo, *, field: str, shown: str) -> dt.datetime:
    if wall.tzinfo is not None:
        typed = wall.utcoffset()
        naive = wall.replace(tzinfo=None)
        for fold in (0, 1):
            candidate = naive.replace(tzinfo=tz, fold=fold)
            if candidate.utcoffset() == typed and wall_time_exists(naive.date(), naive.time(), tz):
                return candidate.astimezone(UTC)
        raise WallClockError(f"{field}: {shown} with offset {_offset_text(typed)} is not a time {tz.key} shows "
                             f"(the offset there is {_offset_text(naive.replace(tzinfo=tz).utcoffset())}).", "gap")
    if not wall_time_exists(wall.date(), wall.time(), tz):
        before = wall.replace(tzinfo=tz, fold=0)
        raise WallClockError(
            f"{field}: {shown} does not exist in {tz.key}: the clocks jump forward that night "
            f"({before.tzname()} to {wall.replace(tzinfo=tz, fold=1).tzname()}), skipping this hour. "
            "Type a time before or after the jump.", "gap")
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        problem = f"{field}: {shown} happens twice in {tz.key}: the clocks go back that night and repeat this hour."
        choices = (f"\"{wall:%H:%M} {_offset_text(first.utcoffset())}\" for the first ({first.tzname()})",
                   f"\"{wall:%H:%M} {_offset_text(second.utcoffset())}\" for the second ({second.tzname()})")
        raise WallClockError(f"{problem} Type the offset to pick one: {' or '.join(choices)}.", "ambiguous",
                             problem=problem, choices=choices)
    return first.astimezone(UTC)


def _offset_text(offset: dt.timedelta | None) -> str:
    minutes = int((offset or dt.timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
