"""When a message may go: notice lead time, reminders, quiet hours and the weekly cap, in the program's zone.

Pure computation (no Django): instants are aware UTC ``datetime``; ``tz`` is the program's ``ZoneInfo``; wall-clock
times are local. Local wall-clock arithmetic goes through ``datetime.combine(day, time, tzinfo=tz)`` and back to
UTC, so a DST day (23 or 25 hours) moves a message to the right instant (the morning window is 08:00 local
whatever the offset).

Sources: utilities' published practice (PGE Peak Time Events: day-before and day-of notices; SCE Smart Energy
Program: day-ahead notice) and the TCPA's calling-hours rule (no telephone solicitation before 8 a.m. or after
9 p.m. at the called party's location, 47 CFR 64.1200(c)(1)), which is why the default quiet window is 21:00-08:00.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.UTC


@dataclass(frozen=True)
class Policy:
    """A program's sending rules (``models.NotificationPolicy``; these defaults without one). Minutes and local
    wall-clock times."""

    notice_lead_minutes: int | None = None
    reminder_lead_minutes: int | None = 60
    urgent_lead_minutes: int = 30
    quiet_start: dt.time = dt.time(21, 0)
    quiet_end: dt.time = dt.time(8, 0)
    weekly_cap: int | None = 5
    opt_out_link_hours: int = 72


def _local(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    if instant.tzinfo is None:
        raise ValueError("instant must be aware (UTC)")
    return instant.astimezone(tz)


def fmt(instant: dt.datetime, tz: ZoneInfo) -> str:
    """``2026-07-15 15:00 PDT``: an instant as the customer reads it."""
    return _local(instant, tz).strftime("%Y-%m-%d %H:%M %Z")


def in_quiet_hours(instant: dt.datetime, *, tz: ZoneInfo, policy: Policy) -> bool:
    """Whether the local wall-clock time of ``instant`` is in ``[quiet_start, quiet_end)`` (over midnight when
    ``quiet_start`` > ``quiet_end``)."""
    t = _local(instant, tz).time()
    qs, qe = policy.quiet_start, policy.quiet_end
    if qs > qe:
        return t >= qs or t < qe
    return qs <= t < qe


def next_morning(instant: dt.datetime, *, tz: ZoneInfo, policy: Policy) -> dt.datetime:
    """The first local ``quiet_end`` (the morning window's start) at or after ``instant``, in UTC."""
    day = _local(instant, tz).date()
    for offset in (0, 1, 2):
        candidate = dt.datetime.combine(day + dt.timedelta(days=offset), policy.quiet_end, tzinfo=tz).astimezone(UTC)
        if candidate >= instant:
            return candidate
    raise AssertionError("unreachable: a morning comes within two days")


def shift_out_of_quiet_hours(due: dt.datetime, *, tz: ZoneInfo, policy: Policy,
                             deadline: dt.datetime | None = None) -> tuple[dt.datetime, str]:
    """``due`` moved out of quiet hours: to the start of the morning window, or, when that is after ``deadline``
    (the last instant the event allows: its start minus the urgent lead), to the deadline (still at night: the event
    needs it), never before ``due``. Returns ``(instant, why in words)``; ``why`` is empty when nothing moved."""
    if not in_quiet_hours(due, tz=tz, policy=policy):
        return due, ""
    morning = next_morning(due, tz=tz, policy=policy)
    if deadline is None or morning <= deadline:
        return morning, f"quiet hours: moved from {fmt(due, tz)} to the morning window {fmt(morning, tz)}"
    if deadline > due:
        return deadline, (f"quiet hours, but the event needs it before the morning window ({fmt(morning, tz)}): "
                          f"moved from {fmt(due, tz)} to {fmt(deadline, tz)}")
    return due, f"sent in quiet hours: the event starts before the morning window ({fmt(morning, tz)})"


def notice_due(*, start: dt.datetime, notification_at: dt.datetime, min_notice_minutes: int | None,
               policy: Policy, tz: ZoneInfo, now: dt.datetime) -> tuple[dt.datetime, str]:
    """When an event notice goes: the program's notice lead before ``start`` (``policy.notice_lead_minutes``), else
    the event's notification time (the dispatch: for a peak-time rebate the notice is the dispatch); never later
    than the participation rule's minimum notice before the start (``min_notice_minutes``), never before ``now``;
    then out of quiet hours (deadline: start minus the urgent lead, or the minimum notice if earlier)."""
    if policy.notice_lead_minutes is not None:
        due, why = start - dt.timedelta(minutes=policy.notice_lead_minutes), \
            f"{policy.notice_lead_minutes} min before the start (program's notice lead)"
    else:
        due, why = notification_at, "at the event's notification time"
    deadline = start - dt.timedelta(minutes=policy.urgent_lead_minutes)
    if min_notice_minutes is not None:
        latest = start - dt.timedelta(minutes=min_notice_minutes)
        if due > latest:
            due, why = latest, f"{min_notice_minutes} min before the start (the rule's minimum notice)"
        deadline = min(deadline, latest)
    if due < now:
        due, why = now, "at once (planned after its time)"
    shifted, moved = shift_out_of_quiet_hours(due, tz=tz, policy=policy, deadline=deadline)
    return shifted, moved or why


def reminder_due(*, start: dt.datetime, policy: Policy, tz: ZoneInfo, now: dt.datetime
                 ) -> tuple[dt.datetime, str] | None:
    """When the day-of reminder goes (``reminder_lead_minutes`` before ``start``, out of quiet hours with the urgent
    deadline), or None: no reminder in the policy, or its time has passed."""
    if policy.reminder_lead_minutes is None:
        return None
    due = start - dt.timedelta(minutes=policy.reminder_lead_minutes)
    if due < now:
        return None
    deadline = start - dt.timedelta(minutes=min(policy.urgent_lead_minutes, policy.reminder_lead_minutes))
    shifted, moved = shift_out_of_quiet_hours(due, tz=tz, policy=policy, deadline=deadline)
    return shifted, moved or f"{policy.reminder_lead_minutes} min before the start"


def prompt_due(*, now: dt.datetime, policy: Policy, tz: ZoneInfo, deadline: dt.datetime | None = None
               ) -> tuple[dt.datetime, str]:
    """When a message that answers something (cancellation, confirmation, decision, summary) goes: now, out of
    quiet hours (a cancellation passes the event's start as ``deadline``: it must arrive before the event)."""
    shifted, moved = shift_out_of_quiet_hours(now, tz=tz, policy=policy, deadline=deadline)
    return shifted, moved or "at once"


def week_bounds(instant: dt.datetime, *, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """``[Monday 00:00, next Monday 00:00)`` local around ``instant``, in UTC (167, 168 or 169 hours)."""
    day = _local(instant, tz).date()
    monday = day - dt.timedelta(days=day.weekday())
    start = dt.datetime.combine(monday, dt.time(0), tzinfo=tz).astimezone(UTC)
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(0), tzinfo=tz).astimezone(UTC)
    return start, end
