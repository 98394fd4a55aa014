"""The sending rules in the program's zone, with exact instants: quiet hours, the urgent deadline, DST days."""

import datetime as dt
from zoneinfo import ZoneInfo

from cpm.notifications import rules

LA = ZoneInfo("America/Los_Angeles")
P = rules.Policy()


def utc(*a):
    return dt.datetime(*a, tzinfo=dt.UTC)


def test_quiet_hours_move_a_night_notice_to_the_morning_window():
    due = utc(2026, 7, 15, 5, 30)  # 22:30 PDT on Jul 14
    shifted, why = rules.shift_out_of_quiet_hours(due, tz=LA, policy=P, deadline=utc(2026, 7, 15, 21, 30))
    assert shifted == utc(2026, 7, 15, 15, 0)  # 08:00 PDT
    assert why == "quiet hours: moved from 2026-07-14 22:30 PDT to the morning window 2026-07-15 08:00 PDT"


def test_a_notice_before_the_quiet_window_is_not_moved():
    due = utc(2026, 7, 15, 3, 59)  # 20:59 PDT
    assert rules.shift_out_of_quiet_hours(due, tz=LA, policy=P) == (due, "")
    assert rules.in_quiet_hours(utc(2026, 7, 15, 4, 0), tz=LA, policy=P)  # 21:00 PDT is quiet
    assert not rules.in_quiet_hours(utc(2026, 7, 15, 15, 0), tz=LA, policy=P)  # 08:00 PDT is not


def test_an_early_event_gets_its_notice_before_the_morning_window():
    # Event at 07:00 PDT: the morning window (08:00) is too late; the notice goes at start - 30 min, 06:30 PDT.
    start = utc(2026, 7, 15, 14, 0)
    due, why = rules.notice_due(start=start, notification_at=utc(2026, 7, 15, 6, 0), min_notice_minutes=None,
                                policy=P, tz=LA, now=utc(2026, 7, 15, 0, 0))
    assert due == utc(2026, 7, 15, 13, 30)
    assert why.startswith("quiet hours, but the event needs it before the morning window (2026-07-15 08:00 PDT)")


def test_spring_forward_night_moves_to_0800_pdt_eight_hours_later():
    # 2026-03-08: LA springs forward at 02:00. 23:00 PST Mar 7 = 07:00 UTC; 08:00 PDT Mar 8 = 15:00 UTC.
    shifted, _ = rules.shift_out_of_quiet_hours(utc(2026, 3, 8, 7, 0), tz=LA, policy=P)
    assert shifted == utc(2026, 3, 8, 15, 0)
    assert shifted - utc(2026, 3, 8, 7, 0) == dt.timedelta(hours=8)


def test_fall_back_night_moves_to_0800_pst_ten_hours_later():
    # 2026-11-01: LA falls back at 02:00. 22:00 PDT Oct 31 = 05:00 UTC; 08:00 PST Nov 1 = 16:00 UTC.
    shifted, _ = rules.shift_out_of_quiet_hours(utc(2026, 11, 1, 5, 0), tz=LA, policy=P)
    assert shifted == utc(2026, 11, 1, 16, 0)
    assert shifted - utc(2026, 11, 1, 5, 0) == dt.timedelta(hours=11)


def test_notice_lead_is_capped_by_the_rules_minimum_notice():
    start = utc(2026, 7, 15, 22, 0)  # 15:00 PDT
    due, why = rules.notice_due(start=start, notification_at=start - dt.timedelta(hours=2), min_notice_minutes=24 * 60,
                                policy=P, tz=LA, now=utc(2026, 7, 13, 0, 0))
    assert due == utc(2026, 7, 14, 22, 0)  # 15:00 PDT the day before
    assert why == "1440 min before the start (the rule's minimum notice)"


def test_program_notice_lead_and_reminder():
    policy = rules.Policy(notice_lead_minutes=18 * 60, reminder_lead_minutes=90)
    start = utc(2026, 7, 15, 22, 0)  # 15:00 PDT
    due, _ = rules.notice_due(start=start, notification_at=start, min_notice_minutes=None, policy=policy, tz=LA,
                              now=utc(2026, 7, 13, 0, 0))
    # 18 h before 15:00 PDT is 21:00 PDT Jul 14, in quiet hours: moved to 08:00 PDT Jul 15.
    assert due == utc(2026, 7, 15, 15, 0)
    assert rules.reminder_due(start=start, policy=policy, tz=LA, now=utc(2026, 7, 15, 0, 0))[0] == \
        utc(2026, 7, 15, 20, 30)  # 13:30 PDT
    assert rules.reminder_due(start=start, policy=policy, tz=LA, now=utc(2026, 7, 15, 21, 0)) is None


def test_week_of_the_spring_change_is_167_hours():
    start, end = rules.week_bounds(utc(2026, 3, 5, 20, 0), tz=LA)
    assert start == utc(2026, 3, 2, 8, 0)  # Monday 00:00 PST
    assert end == utc(2026, 3, 9, 7, 0)  # Monday 00:00 PDT
    assert end - start == dt.timedelta(hours=167)
