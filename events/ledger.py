"""The reservation ledger's arithmetic: per-participant event limits, pure (no Django imports).

Counting choice (documented for "why was my device (not) called?"):
- Limits are counted per ENROLLMENT over DISTINCT events of the same program that are not cancelled (scheduled,
  dispatched, active, completed) in which the enrollment had a participation that was not cancelled. An event counts
  once for the enrollment whether one or all of its devices were called. A replaced device (old subscription ended,
  new subscription in the same enrollment) therefore inherits the enrollment's season history: the season's counts
  stay with the enrollment, as programs limit calls per customer premise, not per piece of hardware.
- Double booking is per DEVICE across all programs (and per service point for device-less participations).
- Local days, weeks (Monday to Sunday) and seasons are in the program's zone; an event belongs to the local day it
  starts on. Hours are real elapsed hours.

Decision values are the ``events.choices.ReservationDecision`` values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """An event as the ledger sees it: UTC window, local start day, elapsed hours (and its name, for the words)."""

    id: int
    start: dt.datetime
    end: dt.datetime
    local_day: dt.date
    hours: float
    name: str = ""

    def words(self, tz: dt.tzinfo) -> str:
        """``event #7 'Heat wave' (2026-07-14 17:00-19:00 PDT)``: its number, name and local window in ``tz``
        (both ends in full when it crosses midnight or a DST change)."""
        start, end = self.start.astimezone(tz), self.end.astimezone(tz)
        if start.date() == end.date() and start.tzname() == end.tzname():
            window = f"{start:%Y-%m-%d %H:%M}-{end:%H:%M %Z}"
        else:
            window = f"{start:%Y-%m-%d %H:%M %Z} to {end:%Y-%m-%d %H:%M %Z}"
        return f"event #{self.id}" + (f" '{self.name}'" if self.name else "") + f" ({window})"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-participant limits of the participation rule in effect (None = no limit)."""

    max_events_per_day: int | None = None
    max_events_per_week: int | None = None
    max_events_per_season: int | None = None
    max_event_hours_per_day: float | None = None
    max_event_hours_per_season: float | None = None
    min_rest_minutes: int | None = None
    max_consecutive_event_days: int | None = None
    allowance_kind: str = "unlimited"
    allowance: float | None = None

    @classmethod
    def from_rule(cls, rule, *, allowance_kind: str, allowance: float | None) -> Limits:
        if rule is None:
            return cls()

        def num(value):
            return None if value is None else float(value)

        return cls(
            max_events_per_day=rule.max_events_per_day,
            max_events_per_week=rule.max_events_per_week,
            max_events_per_season=rule.max_events_per_season,
            max_event_hours_per_day=num(rule.max_event_hours_per_day),
            max_event_hours_per_season=num(rule.max_event_hours_per_season),
            min_rest_minutes=rule.min_rest_minutes,
            max_consecutive_event_days=rule.max_consecutive_event_days,
            allowance_kind=allowance_kind,
            allowance=allowance,
        )

    @property
    def lookaround_days(self) -> int:
        """Days either side of the event whose history matters for week, rest and consecutive-day checks."""
        return 8 + (self.max_consecutive_event_days or 0) + ((self.min_rest_minutes or 0) // 1440 + 1)


@dataclass(frozen=True, slots=True)
class Period:
    """The season (local dates, inclusive) the event falls in; the calendar year when the program has none."""

    name: str
    first: dt.date
    last: dt.date

    def contains(self, day: dt.date) -> bool:
        return self.first <= day <= self.last


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def limit_decision(
    *,
    target: LedgerEvent,
    season: Period,
    limits: Limits,
    history: Iterable[LedgerEvent],
    opted_out: Iterable[LedgerEvent] = (),
    tz: dt.tzinfo = dt.UTC,
) -> tuple[str, str] | None:
    """The first limit the participant would break by taking part in ``target``, as ``(decision, detail)``, or
    None if it may be reserved.

    ``history``: the participant's other counted events (distinct, ``target`` excluded), any date near the season.
    ``opted_out``: those of them the participant opted out of. ``tz``: the program's zone, in which a reason names
    another event's times. Checks in order: day count, day hours, week count,
    season count, season hours, rest, consecutive days, opt-out allowance.
    """
    history = list(history)
    day = target.local_day
    same_day = [e for e in history if e.local_day == day]
    if limits.max_events_per_day is not None and len(same_day) + 1 > limits.max_events_per_day:
        return "day_limit", (f"Already {_plural(len(same_day), 'event')} on {day}; the program allows "
                             f"{limits.max_events_per_day} per day.")
    if limits.max_event_hours_per_day is not None:
        hours = sum(e.hours for e in same_day)
        if hours + target.hours > limits.max_event_hours_per_day + 1e-9:
            return "day_hours_limit", (f"{hours:g} event hours already on {day} plus {target.hours:g} would exceed "
                                       f"the daily maximum of {limits.max_event_hours_per_day:g} hours.")
    if limits.max_events_per_week is not None:
        week_start = day - dt.timedelta(days=day.weekday())
        week_end = week_start + dt.timedelta(days=6)
        in_week = [e for e in history if week_start <= e.local_day <= week_end]
        if len(in_week) + 1 > limits.max_events_per_week:
            return "week_limit", (f"Already {_plural(len(in_week), 'event')} in the week of {week_start}; the "
                                  f"program allows {limits.max_events_per_week} per week.")
    in_season = [e for e in history if season.contains(e.local_day)]
    if limits.max_events_per_season is not None and len(in_season) + 1 > limits.max_events_per_season:
        return "season_limit", (f"Already {_plural(len(in_season), 'event')} in {season.name}; the program allows "
                                f"{limits.max_events_per_season} per season.")
    if limits.max_event_hours_per_season is not None:
        hours = sum(e.hours for e in in_season)
        if hours + target.hours > limits.max_event_hours_per_season + 1e-9:
            return "hours_limit", (f"{hours:g} event hours already in {season.name} plus {target.hours:g} would "
                                   f"exceed the season maximum of {limits.max_event_hours_per_season:g} hours.")
    if limits.min_rest_minutes is not None:
        for e in history:
            if e.end <= target.start:
                gap = (target.start - e.end).total_seconds() / 60
            elif e.start >= target.end:
                gap = (e.start - target.end).total_seconds() / 60
            else:
                gap = -1.0
            if gap < limits.min_rest_minutes:
                return "rest", (f"Only {max(gap, 0):g} minutes from {e.words(tz)}; the program requires "
                                f"{limits.min_rest_minutes} minutes of rest between events.")
    if limits.max_consecutive_event_days is not None:
        days = {e.local_day for e in history}
        run_before = 0
        d = day - dt.timedelta(days=1)
        while d in days:
            run_before += 1
            d -= dt.timedelta(days=1)
        run_after = 0
        d = day + dt.timedelta(days=1)
        while d in days:
            run_after += 1
            d += dt.timedelta(days=1)
        run = run_before + 1 + run_after
        if run > limits.max_consecutive_event_days:
            return "consecutive_days", (f"{day} would make {run} consecutive event days; the program allows "
                                        f"{limits.max_consecutive_event_days}.")
    if limits.allowance is not None and limits.allowance_kind != "none":
        used = [e for e in opted_out if season.contains(e.local_day)]
        if limits.allowance_kind == "count" and len(used) > limits.allowance:
            return "opt_out_allowance_used", (f"{_plural(len(used), 'opt-out')} in {season.name}, beyond the "
                                              f"allowance of {limits.allowance:g}.")
        # Percent of the season's event hours: the rule's season maximum when set (the hours the customer signed
        # up for), else the hours called so far with the event being reserved (the same denominator as the opt-out
        # service: ``programs.rules.check_opt_out_request``). Source: PGE Energy Partner Smart Thermostat
        # (shared/data/programs/real-programs.json, id ``pge-or-energy-partner-smart-thermostat``): "the seasonal
        # reward requires participating in at least 50% of the season's event hours": one opted-out 2 h event,
        # then a 3 h event called: 2 of 5 hours = 40 %, within a 50 % allowance. (Without the event being reserved
        # it read 2 of 2 = 100 %: one opt-out of the season's first event kept the device out of the whole season.)
        denominator = limits.max_event_hours_per_season or (sum(e.hours for e in in_season) + target.hours)
        if limits.allowance_kind == "percent_hours" and denominator:
            share = 100.0 * sum(e.hours for e in used) / denominator
            if share > limits.allowance + 1e-9:
                return "opt_out_allowance_used", (f"Opted out of {share:.1f}% of {season.name}'s event hours, beyond "
                                                  f"the allowance of {limits.allowance:g}%.")
    return None


def rotation_order(candidates: Iterable[tuple[int, int, float]]) -> list[int]:
    """Order ``(subscription_id, season_event_count, capacity_kw)`` for a target kW: least called this season
    first (rotation), then larger capacity, then subscription id (deterministic). Returns subscription ids."""
    return [sid for sid, _, _ in sorted(candidates, key=lambda c: (c[1], -c[2], c[0]))]


def pick_until_target(ordered: Iterable[tuple[int, float]], target_kw: float) -> set[int]:
    """Take ``(subscription_id, capacity_kw)`` in order until the summed capacity reaches ``target_kw``."""
    chosen: set[int] = set()
    total = 0.0
    for sid, kw in ordered:
        if total >= target_kw - 1e-9:
            break
        chosen.add(sid)
        total += kw
    return chosen


@dataclass(frozen=True, slots=True)
class SeasonUsage:
    """A participant's counted events of a season other than the one at hand: how many it opted out of and their
    hours, and the hours of all of them (the inputs of ``programs.rules.check_opt_out_request``)."""

    opted_out_events: int = 0
    opted_out_hours: float = 0.0
    other_event_hours: float = 0.0


def season_usage(events: Iterable[tuple[LedgerEvent, bool]], *, season: Period, exclude_event_id: int
                 ) -> SeasonUsage:
    """Usage from ``(event, opted_out)`` pairs of one participant (an event with several of its devices counts
    once, opted out if any device was): events of ``season`` only, ``exclude_event_id`` left out."""
    seen: dict[int, LedgerEvent] = {}
    outs: set[int] = set()
    for event, opted in events:
        if event.id == exclude_event_id or not season.contains(event.local_day):
            continue
        seen[event.id] = event
        if opted:
            outs.add(event.id)
    return SeasonUsage(len(outs), sum(seen[i].hours for i in outs), sum(e.hours for e in seen.values()))
