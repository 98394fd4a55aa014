"""Pure rule checks of the programs app (no Django imports): value validation of participation rules, incentive
rules and seasons, qualification answers, and the check of one event against a participation rule.

Objects passed in are read by attribute or, for mappings, by key (``_get``), so model instances, dataclasses and
plain dicts all work. Validators return ``{field: [message, ...]}`` (empty when valid); services turn a non-empty
result into ``cpm.base.errors.DomainValidationError``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from cpm.base.numbers import to_decimal  # Django-free, as this module

MIDNIGHT = dt.time(0)

# Choice values (mirrors programs.choices, kept as plain strings so this module stays Django-free).
OPT_OUT_UNLIMITED, OPT_OUT_COUNT, OPT_OUT_PERCENT, OPT_OUT_NONE = "unlimited", "count", "percent_hours", "none"
BOOLEAN, CHOICE, NUMBER, TEXT = "boolean", "choice", "number", "text"

# Which ``basis`` each incentive ``kind`` may use (what ``amount`` is multiplied by).
INCENTIVE_BASES: dict[str, frozenset[str]] = {
    "enrollment_bonus": frozenset({"flat", "per_kw_enrolled", "per_kwh_enrolled", "per_device"}),
    "seasonal": frozenset({"flat", "per_device", "per_kw_enrolled"}),
    "monthly": frozenset({"flat", "per_device", "per_kw_enrolled"}),
    "per_event": frozenset({"flat", "per_device"}),
    "performance_kwh": frozenset({"per_kwh", "price_set"}),
    "performance_kw": frozenset({"per_kw"}),
    "opt_out_penalty": frozenset({"flat"}),
    "season_cap": frozenset({"flat"}),
}
FORFEIT_CONSEQUENCES = frozenset({"forfeit_event", "forfeit_month", "forfeit_season"})


class Violation(NamedTuple):
    """One broken rule: ``code`` (machine), ``field`` (the rule field that refuses it), ``message`` (a sentence)."""

    code: str
    field: str
    message: str


class AnswerIssue(NamedTuple):
    """One problem with qualification answers: ``code`` and a message naming the question."""

    code: str
    message: str


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _add(errors: dict[str, list[str]], field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def window_minutes(window_start: dt.time | None, window_end: dt.time | None) -> int | None:
    """Length in wall-clock minutes of a daily window; ``window_end`` 00:00 means end of day. None if open."""
    if window_start is None or window_end is None:
        return None
    start = window_start.hour * 60 + window_start.minute
    end = 24 * 60 if window_end == MIDNIGHT else window_end.hour * 60 + window_end.minute
    return end - start


# --- participation rules -----------------------------------------------------------------------------------------

def validate_participation_rule(rule: Any) -> dict[str, list[str]]:
    """Check a participation rule's values for consistency; returns ``{field: [messages]}``.

    Refused: no allowed day; window_end not after window_start (00:00 = end of day); durations below 1 minute, a
    maximum below its minimum, or durations that cannot fit the window or the daily hour cap; limits of 0; a weekly
    event cap below the daily one; opt-out allowance fields that do not match the allowance kind.
    """
    errors: dict[str, list[str]] = {}
    g = lambda name: _get(rule, name)  # noqa: E731

    if not (g("weekdays_allowed") or g("weekends_allowed") or g("holidays_allowed")):
        _add(errors, "weekdays_allowed", "At least one of weekdays, weekends or holidays must be allowed.")

    start, end = g("window_start"), g("window_end")
    if (start is None) != (end is None):
        missing = "window_end" if end is None else "window_start"
        _add(errors, missing, "Give both window_start and window_end, or neither.")
    win = window_minutes(start, end)
    if win is not None and win <= 0:
        _add(errors, "window_end", f"window_end ({end:%H:%M}) must be after window_start ({start:%H:%M}); "
                                   "00:00 means the end of the day.")
        win = None

    min_d, max_d = g("min_duration_minutes"), g("max_duration_minutes")
    for field, value in (("min_duration_minutes", min_d), ("max_duration_minutes", max_d)):
        if value is not None and value < 1:
            _add(errors, field, f"{field} must be at least 1 minute.")
    if min_d is not None and max_d is not None and max_d < min_d:
        _add(errors, "max_duration_minutes",
             f"max_duration_minutes ({max_d}) must be at least min_duration_minutes ({min_d}).")
    if win is not None:
        if max_d is not None and max_d > win:
            _add(errors, "max_duration_minutes",
                 f"max_duration_minutes ({max_d}) is longer than the event window ({win} minutes).")
        if min_d is not None and min_d > win:
            _add(errors, "min_duration_minutes",
                 f"min_duration_minutes ({min_d}) is longer than the event window ({win} minutes).")

    for field in ("max_events_per_day", "max_events_per_week", "max_events_per_season", "max_consecutive_event_days"):
        value = g(field)
        if value is not None and value < 1:
            _add(errors, field, f"{field} must be at least 1 (leave it empty for no limit).")
    per_day, per_week = g("max_events_per_day"), g("max_events_per_week")
    if per_day and per_week and per_week < per_day:
        _add(errors, "max_events_per_week",
             f"max_events_per_week ({per_week}) must be at least max_events_per_day ({per_day}).")

    hours_day, hours_season = g("max_event_hours_per_day"), g("max_event_hours_per_season")
    if hours_day is not None and not (0 < Decimal(hours_day) <= 24):
        _add(errors, "max_event_hours_per_day", "max_event_hours_per_day must be more than 0 and at most 24.")
    elif hours_day is not None and min_d is not None and min_d > Decimal(hours_day) * 60:
        _add(errors, "min_duration_minutes",
             f"min_duration_minutes ({min_d}) exceeds max_event_hours_per_day ({hours_day} h).")
    if hours_season is not None and Decimal(hours_season) <= 0:
        _add(errors, "max_event_hours_per_season", "max_event_hours_per_season must be more than 0.")
    elif hours_season is not None and hours_day is not None and Decimal(hours_season) < Decimal(hours_day):
        _add(errors, "max_event_hours_per_season",
             f"max_event_hours_per_season ({hours_season}) must be at least max_event_hours_per_day ({hours_day}).")

    kind = g("opt_out_allowance_kind") or OPT_OUT_UNLIMITED
    count, percent = g("opt_out_allowance_count"), g("opt_out_allowance_percent")
    if kind == OPT_OUT_COUNT and count is None:
        _add(errors, "opt_out_allowance_count",
             "opt_out_allowance_count is required when the allowance kind is count.")
    if kind != OPT_OUT_COUNT and count is not None:
        _add(errors, "opt_out_allowance_count",
             "opt_out_allowance_count is only used when the allowance kind is count.")
    if kind == OPT_OUT_PERCENT and percent is None:
        _add(errors, "opt_out_allowance_percent",
             "opt_out_allowance_percent is required when the allowance kind is percent_hours.")
    if kind != OPT_OUT_PERCENT and percent is not None:
        _add(errors, "opt_out_allowance_percent",
             "opt_out_allowance_percent is only used when the allowance kind is percent_hours.")
    if percent is not None and not (0 < Decimal(percent) <= 100):
        _add(errors, "opt_out_allowance_percent", "opt_out_allowance_percent must be more than 0 and at most 100.")
    if kind == OPT_OUT_NONE and g("opt_out_cutoff_minutes") is not None:
        _add(errors, "opt_out_cutoff_minutes", "opt_out_cutoff_minutes has no meaning when no opt-outs are allowed.")
    return errors


def rule_in_effect(rules: Iterable[Any], day: dt.date) -> Any | None:
    """The rule with the latest ``effective_from`` on or before local ``day`` (None before the first rule).

    ``rules``: objects/mappings with ``effective_from`` (a date), in any order.
    """
    in_effect = [r for r in rules if _get(r, "effective_from") <= day]
    return max(in_effect, key=lambda r: _get(r, "effective_from"), default=None)


def season_containing(seasons: Iterable[Any], day: dt.date) -> Any | None:
    """The season whose inclusive local dates ``start_date..end_date`` contain ``day``, or None."""
    return next((s for s in seasons if _get(s, "start_date") <= day <= _get(s, "end_date")), None)


def opt_out_allowance(rule: Any) -> tuple[str, float | None]:
    """The opt-out allowance of a rule as ``(kind, number)``: ``("count", n)`` opt-outs per season,
    ``("percent_hours", p)`` percent of the season's event hours, ``("none", 0.0)`` or ``("unlimited", None)``.

    No rule, or a count/percent kind without its number (refused by ``validate_participation_rule``), is unlimited.
    """
    kind = _get(rule, "opt_out_allowance_kind") if rule is not None else None
    count, percent = _get(rule, "opt_out_allowance_count"), _get(rule, "opt_out_allowance_percent")
    if kind == OPT_OUT_COUNT and count is not None:
        return kind, float(count)
    if kind == OPT_OUT_PERCENT and percent is not None:
        return kind, float(percent)
    if kind == OPT_OUT_NONE:
        return kind, 0.0
    return OPT_OUT_UNLIMITED, None


def check_opt_out_request(
    rule: Any,
    *,
    event_start: dt.datetime,
    at: dt.datetime,
    tz: dt.tzinfo,
    season_name: str,
    opted_out_events: int,
    opted_out_hours: float,
    other_event_hours: float,
    event_hours: float,
) -> Violation | None:
    """Would the rule refuse an opt-out REQUEST (customer, CSR or aggregator asking ahead) made at ``at``?

    Returns the refusal as a ``Violation`` or None when the opt-out is allowed. ``rule`` None allows everything.
    - cut-off (code ``opt_out_cutoff``, field ``opt_out_cutoff_minutes``): refused later than
      ``opt_out_cutoff_minutes`` before ``event_start`` (aware; the message shows the cut-off in ``tz``).
    - allowance (code ``opt_out_allowance``), only when ``refuse_opt_out_beyond_allowance`` is set: a count per
      season (``opted_out_events`` other events already opted out of in ``season_name``, plus this one), or a
      percentage of the season's event hours: (``opted_out_hours`` + ``event_hours``) over the rule's
      ``max_event_hours_per_season`` when set, else over ``other_event_hours`` + ``event_hours`` (the
      participant's counted event hours of the season so far, this event included). Hours are elapsed hours.
    Reports of what happened at the device are never refused; callers check requests only.
    """
    if rule is None:
        return None
    cutoff_minutes = _get(rule, "opt_out_cutoff_minutes")
    if cutoff_minutes is not None:
        cutoff = event_start - dt.timedelta(minutes=cutoff_minutes)
        if at > cutoff:
            return Violation("opt_out_cutoff", "opt_out_cutoff_minutes",
                             f"Opt-outs close {cutoff_minutes} minutes before the event starts (cut-off "
                             f"{cutoff.astimezone(tz):%Y-%m-%d %H:%M %Z}).")
    kind, allowance = opt_out_allowance(rule)
    if not _get(rule, "refuse_opt_out_beyond_allowance") or allowance is None:
        return None
    if kind in (OPT_OUT_NONE, OPT_OUT_COUNT) and opted_out_events + 1 > allowance:
        field = "opt_out_allowance_count" if kind == OPT_OUT_COUNT else "opt_out_allowance_kind"
        return Violation("opt_out_allowance", field, f"The opt-out allowance of {allowance:g} per season is used "
                                                     f"({opted_out_events} in {season_name}).")
    if kind == OPT_OUT_PERCENT:
        season_max = _get(rule, "max_event_hours_per_season")
        denominator = float(season_max) if season_max else other_event_hours + event_hours
        share = 100.0 * (opted_out_hours + event_hours) / denominator if denominator else 100.0
        if share > allowance + 1e-9:
            return Violation("opt_out_allowance", "opt_out_allowance_percent",
                             f"Opting out would reach {share:.1f}% of {season_name}'s event hours, beyond the "
                             f"allowance of {allowance:g}%.")
    return None


def check_event_against_rule(
    rule: Any,
    *,
    start_local: dt.datetime,
    end_local: dt.datetime,
    is_holiday: bool | Callable[[dt.date], bool],
    notice_minutes: float | None,
    seasons: Iterable[Any] | None = None,
) -> list[Violation]:
    """Check one event against a participation rule: season, allowed days, window, duration, daily hours, notice.

    ``start_local``/``end_local``: aware datetimes (any zone; the window is compared on their wall clock, so pass
    them in the program's zone). The event is ``[start, end)`` and may cross midnight: every local day it touches
    must be an allowed day, and the window (if any) must hold it on its start day. Durations are real elapsed time
    (a 01:00-03:00 event on the spring DST day lasts 60 minutes). ``is_holiday``: a bool for the start day, or a
    callable ``date -> bool`` (e.g. ``functools.partial(programs.calendars.is_holiday, "NERC")``).
    ``notice_minutes``: minutes between notification and start (None = not yet known, not checked).
    ``seasons``: the program's seasons (objects/mappings with ``name``, ``start_date``, ``end_date``); when given and
    not empty, the event's local start day must fall in one (code ``outside_season``, field ``season``; an event
    belongs to the day it starts on). ``rule`` None means the program sets no rule: only the season is checked.
    Raises ``ValueError`` for naive datetimes. Caps over several events (per day/week/season, rest, consecutive
    days) need the schedule and are checked by the events app.
    """
    for name, value in (("start_local", start_local), ("end_local", end_local)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
    violations: list[Violation] = []
    # Aware datetimes sharing one tzinfo subtract as wall clocks in Python; go through UTC for real elapsed time.
    minutes = (end_local.astimezone(dt.UTC) - start_local.astimezone(dt.UTC)).total_seconds() / 60
    if minutes <= 0:
        return [Violation("event_end_not_after_start", "end", "The event must end after it starts.")]
    seasons = list(seasons or ())
    if seasons and season_containing(seasons, start_local.date()) is None:
        names = ", ".join(f"{_get(s, 'name')} {_get(s, 'start_date')} to {_get(s, 'end_date')}" for s in seasons)
        violations.append(Violation("outside_season", "season", f"The event day {start_local.date().isoformat()} "
                                                                f"is outside every season of the program ({names})."))
    if rule is None:
        return violations

    # Allowed days: each local date the half-open event touches.
    last_day = (end_local - dt.timedelta(microseconds=1)).date() if end_local.time() == MIDNIGHT else end_local.date()
    day = start_local.date()
    while day <= last_day:
        holiday = is_holiday(day) if callable(is_holiday) else (is_holiday and day == start_local.date())
        if holiday:
            if not _get(rule, "holidays_allowed"):
                violations.append(Violation("holiday_not_allowed", "holidays_allowed",
                                            f"Events are not allowed on holidays ({day.isoformat()})."))
        elif day.weekday() >= 5:
            if not _get(rule, "weekends_allowed"):
                violations.append(Violation("weekend_not_allowed", "weekends_allowed",
                                            f"Events are not allowed on weekends ({day:%A} {day.isoformat()})."))
        elif not _get(rule, "weekdays_allowed"):
            violations.append(Violation("weekday_not_allowed", "weekdays_allowed",
                                        f"Events are not allowed on weekdays ({day.isoformat()})."))
        day += dt.timedelta(days=1)

    w_start, w_end = _get(rule, "window_start"), _get(rule, "window_end")
    if w_start is not None and w_end is not None:
        base = start_local.date()
        open_at = dt.datetime.combine(base, w_start)
        close_at = dt.datetime.combine(base + dt.timedelta(days=1), MIDNIGHT) if w_end == MIDNIGHT \
            else dt.datetime.combine(base, w_end)
        wall_start, wall_end = start_local.replace(tzinfo=None), end_local.replace(tzinfo=None)
        if wall_start < open_at or wall_end > close_at:
            violations.append(Violation(
                "outside_window", "window_start" if wall_start < open_at else "window_end",
                f"The event {wall_start:%Y-%m-%d %H:%M}-{wall_end:%H:%M} is outside the event window "
                f"{w_start:%H:%M}-{w_end:%H:%M} (local)."))

    min_d, max_d = _get(rule, "min_duration_minutes"), _get(rule, "max_duration_minutes")
    if min_d is not None and minutes < min_d:
        violations.append(Violation("duration_too_short", "min_duration_minutes",
                                    f"The event lasts {minutes:g} minutes; the minimum is {min_d}."))
    if max_d is not None and minutes > max_d:
        violations.append(Violation("duration_too_long", "max_duration_minutes",
                                    f"The event lasts {minutes:g} minutes; the maximum is {max_d}."))
    hours_day = _get(rule, "max_event_hours_per_day")
    if hours_day is not None and Decimal(str(minutes)) > Decimal(hours_day) * 60:
        violations.append(Violation("daily_hours_exceeded", "max_event_hours_per_day",
                                    f"The event lasts {minutes / 60:g} h; at most {hours_day} h per day."))
    min_notice = _get(rule, "min_notice_minutes")
    if min_notice is not None and notice_minutes is not None and notice_minutes < min_notice:
        violations.append(Violation("notice_too_short", "min_notice_minutes",
                                    f"Notice of {notice_minutes:g} minutes is less than the minimum of "
                                    f"{min_notice} minutes."))
    return violations


# --- seasons -----------------------------------------------------------------------------------------------------

def season_overlaps(seasons: Iterable[Any]) -> list[tuple[Any, str]]:
    """Pairs of overlapping seasons (inclusive local dates) in one program.

    ``seasons``: objects/mappings with ``name``, ``start_date``, ``end_date``. Returns ``(season, message)`` for the
    later season of each overlapping pair (message names the other season).
    """
    ordered = sorted((s for s in seasons if _get(s, "start_date") and _get(s, "end_date")),
                     key=lambda s: (_get(s, "start_date"), _get(s, "end_date")))
    problems = []
    for i, later in enumerate(ordered):
        for earlier in ordered[:i]:
            if _get(later, "start_date") <= _get(earlier, "end_date"):
                problems.append((later, f"Season {_get(later, 'name')!r} ({_get(later, 'start_date')} to "
                                        f"{_get(later, 'end_date')}) overlaps season {_get(earlier, 'name')!r} "
                                        f"({_get(earlier, 'start_date')} to {_get(earlier, 'end_date')})."))
    return problems


SEASON_YEARS = (1900, 2100)  # a season's dates: the importers' default plausible years (CPM_IMPORT_*_YEAR)


def validate_season(season: Any) -> dict[str, list[str]]:
    """A season's values: a name, ``end_date`` on or after ``start_date`` (local dates, inclusive), both within the
    plausible years ``SEASON_YEARS`` (a season typed for 9999 is a typing slip, and no limit or incentive of the
    program could ever count it)."""
    errors: dict[str, list[str]] = {}
    start, end = _get(season, "start_date"), _get(season, "end_date")
    low, high = SEASON_YEARS
    for field, value in (("start_date", start), ("end_date", end)):
        if isinstance(value, dt.date) and not low <= value.year <= high:
            _add(errors, field, f"{field} ({value}) is outside the plausible years {low}..{high}.")
    if start and end and end < start:
        _add(errors, "end_date", f"end_date ({end}) must be on or after start_date ({start}).")
    if not (_get(season, "name") or "").strip():
        _add(errors, "name", "A season needs a name (e.g. Summer 2026).")
    return errors


# --- incentive rules ---------------------------------------------------------------------------------------------

def validate_incentive_rule(rule: Any) -> dict[str, list[str]]:
    """Check the kind/basis combination and the kind-specific fields of an incentive rule.

    ``price_set`` is checked for presence only; that it belongs to the same program is the service's job.
    """
    errors: dict[str, list[str]] = {}
    kind, basis = _get(rule, "kind"), _get(rule, "basis") or "flat"
    amount = _get(rule, "amount")
    if kind not in INCENTIVE_BASES:
        _add(errors, "kind", f"Unknown incentive kind {kind!r}.")
        return errors
    if basis not in INCENTIVE_BASES[kind]:
        allowed = ", ".join(sorted(INCENTIVE_BASES[kind]))
        _add(errors, "basis", f"Basis {basis!r} does not fit a {kind} incentive (allowed: {allowed}).")
    has_price_set = _get(rule, "price_set") is not None or _get(rule, "price_set_id") is not None
    if basis == "price_set" and not has_price_set:
        _add(errors, "price_set", "price_set is required when basis is price_set.")
    if basis != "price_set" and has_price_set:
        _add(errors, "price_set", "price_set is only used when basis is price_set.")

    consequence = _get(rule, "opt_out_consequence") or ""
    if amount is None:
        _add(errors, "amount", "amount is required.")
    elif Decimal(amount) < 0:
        _add(errors, "amount", "amount must be zero or more.")
    elif Decimal(amount) == 0 and basis != "price_set" and consequence not in FORFEIT_CONSEQUENCES:
        _add(errors, "amount", f"amount must be more than zero for a {kind} incentive.")

    if kind == "opt_out_penalty":
        if not consequence:
            _add(errors, "opt_out_consequence", "An opt-out penalty needs an opt_out_consequence.")
        elif consequence in FORFEIT_CONSEQUENCES and amount is not None and Decimal(amount) != 0:
            _add(errors, "amount", f"A {consequence} forfeiture has no amount; set amount to 0.")
    elif consequence:
        _add(errors, "opt_out_consequence", "opt_out_consequence is only used by opt_out_penalty incentives.")

    top = _get(rule, "top_percent_events")
    if top is not None:
        if kind != "performance_kw":
            _add(errors, "top_percent_events", "top_percent_events is only used by performance_kw incentives.")
        elif not (0 < Decimal(top) <= 100):
            _add(errors, "top_percent_events", "top_percent_events must be more than 0 and at most 100.")
    share, max_opt_outs = _get(rule, "min_participation_share"), _get(rule, "max_opt_outs")
    season_enrollment = _get(rule, "season_enrollment") or "any"
    if kind != "seasonal":
        if share is not None:
            _add(errors, "min_participation_share", "min_participation_share is only used by seasonal incentives.")
        if max_opt_outs is not None:
            _add(errors, "max_opt_outs", "max_opt_outs is only used by seasonal incentives.")
        if season_enrollment != "any":
            _add(errors, "season_enrollment", "season_enrollment is only used by seasonal incentives.")
    elif share is not None and not (0 <= Decimal(share) <= 1):
        _add(errors, "min_participation_share", "min_participation_share is a share from 0 to 1 (0.5 = 50%).")
    if _get(rule, "requires_no_skipped_event") and kind != "monthly":
        _add(errors, "requires_no_skipped_event", "requires_no_skipped_event is only used by monthly incentives.")
    return errors


# --- qualification questions ---------------------------------------------------------------------------------------

_TRUE, _FALSE = {"true", "yes", "y", "1"}, {"false", "no", "n", "0"}


def _coerce(answer_type: str, value: Any) -> tuple[bool, Any]:
    """(ok, normalised value) for an answer of ``answer_type``."""
    if answer_type == BOOLEAN:
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return True, value.strip().lower() in _TRUE
        return False, None
    if answer_type == NUMBER:
        if isinstance(value, bool):
            return False, None
        try:
            return True, to_decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            return False, None
    if answer_type in (CHOICE, TEXT):
        if isinstance(value, str):
            return True, value.strip()
        return False, None
    return False, None


def validate_question(question: Any) -> dict[str, list[str]]:
    """Check a question's definition: choice questions need choices; qualifying answers must be valid answers."""
    errors: dict[str, list[str]] = {}
    answer_type = _get(question, "answer_type")
    choices = _get(question, "choices") or []
    qualifying = _get(question, "qualifying_answers") or []
    if not isinstance(choices, list):
        _add(errors, "choices", "choices must be a list.")
        choices = []
    if answer_type == CHOICE and not choices:
        _add(errors, "choices", "A choice question needs a list of choices.")
    if answer_type != CHOICE and choices:
        _add(errors, "choices", "choices are only used by choice questions.")
    if isinstance(qualifying, Mapping):
        if answer_type != NUMBER or not set(qualifying) <= {"min", "max"} or not qualifying:
            _add(errors, "qualifying_answers", 'A range {"min": x, "max": y} is only allowed for number questions.')
        return errors
    if not isinstance(qualifying, list):
        _add(errors, "qualifying_answers", "qualifying_answers must be a list (or a min/max range for numbers).")
        return errors
    for value in qualifying:
        ok, norm = _coerce(answer_type, value)
        if not ok or (answer_type == CHOICE and norm not in choices):
            _add(errors, "qualifying_answers", f"{value!r} is not a possible answer to this {answer_type} question.")
    return errors


def check_answers(questions: Iterable[Any], answers: Mapping[str, Any]) -> list[AnswerIssue]:
    """Check enrollment answers against a program's qualification questions.

    ``questions``: objects/mappings with ``code``, ``answer_type``, ``required``, ``choices``,
    ``qualifying_answers`` (a list of qualifying answers, empty = any; for numbers also ``{"min": x, "max": y}``).
    ``answers``: ``{question code: answer}``; booleans may come as "yes"/"no"/"true"/"false", numbers as strings.
    Returns ``AnswerIssue(code, message)`` items (empty = qualifies); codes: ``answer_missing``,
    ``answer_wrong_type``, ``answer_invalid_choice``, ``answer_not_qualifying``, ``answer_unknown_question``.
    """
    issues: list[AnswerIssue] = []
    known = set()
    for question in questions:
        code = _get(question, "code")
        known.add(code)
        answer_type = _get(question, "answer_type")
        value = answers.get(code)
        if value is None or (isinstance(value, str) and not value.strip()):
            if _get(question, "required", True):
                issues.append(AnswerIssue("answer_missing", f"Question {code!r} needs an answer."))
            continue
        ok, norm = _coerce(answer_type, value)
        if not ok:
            issues.append(AnswerIssue("answer_wrong_type", f"Question {code!r} expects a {answer_type} answer, "
                                                           f"got {value!r}."))
            continue
        choices = _get(question, "choices") or []
        if answer_type == CHOICE and choices and norm not in choices:
            issues.append(AnswerIssue("answer_invalid_choice",
                                      f"Question {code!r}: {value!r} is not one of {', '.join(map(str, choices))}."))
            continue
        qualifying = _get(question, "qualifying_answers") or []
        if isinstance(qualifying, Mapping):
            low, high = qualifying.get("min"), qualifying.get("max")
            if (low is not None and norm < Decimal(str(low))) or (high is not None and norm > Decimal(str(high))):
                issues.append(AnswerIssue("answer_not_qualifying",
                                          f"Question {code!r}: {value!r} is outside the qualifying range "
                                          f"{low if low is not None else '-'} to {high if high is not None else '-'}."))
        elif qualifying and norm not in [_coerce(answer_type, q)[1] for q in qualifying]:
            issues.append(AnswerIssue("answer_not_qualifying",
                                      f"Question {code!r}: the answer {value!r} does not qualify for the program."))
    for code in answers:
        if code not in known:
            issues.append(AnswerIssue("answer_unknown_question", f"There is no question {code!r} in this program."))
    return issues
