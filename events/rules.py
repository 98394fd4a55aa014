"""Pure rule checks for events: program participation rules, NERC holidays, elapsed-time arithmetic.

No Django imports: the functions read plain attributes of the rule and season objects they are given (a
``programs.models.ParticipationRule`` / ``Season`` or any object with the same attribute names), and aware
datetimes. The lead may later replace this with ``programs.rules.check_event_against_rule``.

Rule names reported in violations (``RuleViolation.rule``) are the ``ParticipationRule`` field names (``season``,
``weekdays_allowed``, ``weekends_allowed``, ``holidays_allowed``, ``window_start``, ``window_end``,
``min_duration_minutes``, ``max_duration_minutes``, ``min_notice_minutes``) so an operator can find the setting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays as holidays_lib

UTC = dt.UTC

# NERC "additional off-peak days": New Year's Day, Memorial Day, Independence Day, Labor Day, Thanksgiving Day and
# Christmas Day. A holiday falling on a Sunday moves to the Monday; one falling on a Saturday is not moved.
# Source: NERC Operating Manual / NAESB WEQ Business Practice Standards, "NERC holidays".
_NERC_NAMES = ("New Year's Day", "Memorial Day", "Independence Day", "Labor Day", "Thanksgiving Day",
               "Christmas Day")


@lru_cache(maxsize=64)
def nerc_holidays(year: int) -> frozenset[dt.date]:
    """The NERC holidays of ``year`` (local dates), Sunday holidays observed on the Monday."""
    days: set[dt.date] = set()
    for day, name in holidays_lib.US(years=[year], observed=False).items():
        if any(name.startswith(n) for n in _NERC_NAMES):
            days.add(day + dt.timedelta(days=1) if day.weekday() == 6 else day)
    return frozenset(days)


@lru_cache(maxsize=64)
def us_federal_holidays(year: int) -> frozenset[dt.date]:
    """US federal holidays of ``year`` as observed (the ``holidays`` package's calendar)."""
    return frozenset(holidays_lib.US(years=[year], observed=True).keys())


def is_holiday(day: dt.date, calendar: str) -> bool:
    """True if ``day`` is a holiday in ``calendar`` (``NERC``, ``US`` or ``NONE``, see ``HolidayCalendar``)."""
    if calendar == "NERC":
        return day in nerc_holidays(day.year)
    if calendar == "US":
        return day in us_federal_holidays(day.year)
    return False


def elapsed_minutes(start: dt.datetime, end: dt.datetime) -> float:
    """Real elapsed minutes of ``[start, end)`` (aware datetimes; DST nights last 23 or 25 hours)."""
    return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 60.0


def interval_count(start: dt.datetime, end: dt.datetime, interval_minutes: int = 15) -> int:
    """Number of whole intervals in ``[start, end)`` by elapsed time: 00:00-03:00 local on the autumn DST night is
    4 hours = 16 quarter-hours; on the spring night 2 hours = 8."""
    return int(elapsed_minutes(start, end) // interval_minutes)


@dataclass(frozen=True)
class RuleViolation:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


def rule_in_effect(rules: Iterable, day: dt.date):
    """The rule with the latest ``effective_from`` on or before ``day`` (None if none is in effect)."""
    best = None
    for rule in rules:
        if rule.effective_from <= day and (best is None or rule.effective_from > best.effective_from):
            best = rule
    return best


def season_of(seasons: Iterable, day: dt.date):
    """The season containing local ``day`` (inclusive dates), or None."""
    for season in seasons:
        if season.start_date <= day <= season.end_date:
            return season
    return None


def _fmt(t: dt.time) -> str:
    return t.strftime("%H:%M")


def check_event_window(
    *,
    rule,
    seasons: Sequence,
    start: dt.datetime,
    end: dt.datetime,
    notification_at: dt.datetime,
    tz: ZoneInfo,
    holiday_calendar: str,
    now: dt.datetime,
) -> list[RuleViolation]:
    """Check an event window against a participation rule; return every violation (empty list = allowed).

    ``start``/``end``/``notification_at``/``now`` are aware instants; local days and wall-clock windows are in
    ``tz``. An event may cross local midnight: the day checks apply to the local start day, and the window check
    accepts an end on the next local day only when ``window_end`` is 00:00 (midnight) or the rule has no window end.
    ``seasons`` empty means the program has no seasons (any date allowed). ``rule`` None means no limits.
    Durations are real elapsed time. Notice is measured from ``max(now, notification_at)`` to ``start``.
    """
    out: list[RuleViolation] = []
    local_start = start.astimezone(tz)
    local_end = end.astimezone(tz)
    day = local_start.date()
    if seasons and season_of(seasons, day) is None:
        names = ", ".join(f"{s.name} {s.start_date}..{s.end_date}" for s in seasons)
        out.append(RuleViolation("season", f"{day} is outside every season of the program ({names})."))
    if rule is None:
        return out
    holiday = is_holiday(day, holiday_calendar)
    weekend = day.weekday() >= 5
    if holiday and not rule.holidays_allowed:
        out.append(RuleViolation("holidays_allowed", f"{day} is a {holiday_calendar} holiday; events are not "
                                                     "allowed on holidays."))
    elif weekend and not rule.weekends_allowed and not (holiday and rule.holidays_allowed):
        out.append(RuleViolation("weekends_allowed", f"{day} is a {local_start:%A}; events are not allowed on "
                                                     "weekends."))
    elif not weekend and not holiday and not rule.weekdays_allowed:
        out.append(RuleViolation("weekdays_allowed", f"{day} is a weekday; events are not allowed on weekdays."))
    if rule.window_start is not None and local_start.time() < rule.window_start:
        out.append(RuleViolation("window_start", f"starts at {local_start:%H:%M} local, before the window opens at "
                                                 f"{_fmt(rule.window_start)}."))
    if rule.window_end is not None:
        end_day_offset = (local_end.date() - day).days
        midnight_end = rule.window_end == dt.time(0)
        if midnight_end:
            ok = end_day_offset == 0 or (end_day_offset == 1 and local_end.time() == dt.time(0))
        else:
            ok = end_day_offset == 0 and local_end.time() <= rule.window_end
        if not ok:
            out.append(RuleViolation("window_end", f"ends at {local_end:%Y-%m-%d %H:%M} local, after the window "
                                                   f"closes at {_fmt(rule.window_end)} on {day}."))
    minutes = elapsed_minutes(start, end)
    if rule.min_duration_minutes is not None and minutes < rule.min_duration_minutes:
        out.append(RuleViolation("min_duration_minutes", f"lasts {minutes:g} minutes, less than the minimum "
                                                         f"{rule.min_duration_minutes}."))
    if rule.max_duration_minutes is not None and minutes > rule.max_duration_minutes:
        out.append(RuleViolation("max_duration_minutes", f"lasts {minutes:g} minutes, more than the maximum "
                                                         f"{rule.max_duration_minutes}."))
    if rule.min_notice_minutes is not None:
        notice = elapsed_minutes(max(now, notification_at), start)
        if notice < rule.min_notice_minutes:
            out.append(RuleViolation("min_notice_minutes", f"gives {max(notice, 0):g} minutes of notice, less than "
                                                           f"the minimum {rule.min_notice_minutes}."))
    return out


def opt_out_allowance(rule) -> tuple[str, float | None]:
    """``(kind, allowance)`` of a rule: ``("count", n)``, ``("percent_hours", p)``, ``("none", 0)`` or
    ``("unlimited", None)``. A rule of kind count/percent without a number is unlimited."""
    if rule is None:
        return "unlimited", None
    kind = rule.opt_out_allowance_kind
    if kind == "count" and rule.opt_out_allowance_count is not None:
        return kind, float(rule.opt_out_allowance_count)
    if kind == "percent_hours" and rule.opt_out_allowance_percent is not None:
        return kind, float(rule.opt_out_allowance_percent)
    if kind == "none":
        return kind, 0.0
    return "unlimited", None
