"""Pure rule checks: NERC holidays, elapsed-time arithmetic on DST nights, window and notice checks."""

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from events import ledger, rules

LA = ZoneInfo("America/Los_Angeles")


def rule(**kw):
    base = dict(effective_from=dt.date(2026, 1, 1), weekdays_allowed=True, weekends_allowed=False,
                holidays_allowed=False, window_start=dt.time(14), window_end=dt.time(21), min_duration_minutes=30,
                max_duration_minutes=240, min_notice_minutes=None)
    base.update(kw)
    return SimpleNamespace(**base)


SUMMER = [SimpleNamespace(name="Summer 2026", start_date=dt.date(2026, 6, 1), end_date=dt.date(2026, 9, 30))]


def check(start, end, *, notice=None, r=None, now=None):
    return rules.check_event_window(
        rule=r or rule(), seasons=SUMMER, start=start, end=end, notification_at=notice or start - dt.timedelta(hours=2),
        tz=LA, holiday_calendar="NERC", now=now or dt.datetime(2026, 6, 1, tzinfo=dt.UTC))


def test_nerc_holidays_2026_and_2027_sunday_moves_to_monday():
    assert rules.nerc_holidays(2026) == frozenset({
        dt.date(2026, 1, 1), dt.date(2026, 5, 25), dt.date(2026, 7, 4), dt.date(2026, 9, 7), dt.date(2026, 11, 26),
        dt.date(2026, 12, 25)})
    # 2027-07-04 is a Sunday: observed Monday 07-05. Saturday holidays are not moved (2026-07-04).
    assert dt.date(2027, 7, 5) in rules.nerc_holidays(2027)
    assert dt.date(2027, 7, 4) not in rules.nerc_holidays(2027)
    assert dt.date(2026, 7, 3) not in rules.nerc_holidays(2026)
    # Juneteenth and Columbus Day are federal but not NERC holidays.
    assert dt.date(2026, 6, 19) not in rules.nerc_holidays(2026)
    assert rules.is_holiday(dt.date(2026, 6, 19), "US")


def test_dst_nights_elapsed_hours_and_quarter_hours():
    autumn = (dt.datetime(2026, 11, 1, 0, tzinfo=LA), dt.datetime(2026, 11, 1, 3, tzinfo=LA))
    spring = (dt.datetime(2026, 3, 8, 0, tzinfo=LA), dt.datetime(2026, 3, 8, 3, tzinfo=LA))
    assert rules.elapsed_minutes(*autumn) == 240
    assert rules.interval_count(*autumn, 15) == 16
    assert rules.elapsed_minutes(*spring) == 120
    assert rules.interval_count(*spring, 15) == 8


def test_window_day_duration_notice_violations_name_the_rule():
    ok = check(dt.datetime(2026, 7, 15, 15, tzinfo=LA), dt.datetime(2026, 7, 15, 18, tzinfo=LA))
    assert ok == []
    early = check(dt.datetime(2026, 7, 15, 13, tzinfo=LA), dt.datetime(2026, 7, 15, 22, tzinfo=LA))
    assert [v.rule for v in early] == ["window_start", "window_end", "max_duration_minutes"]
    assert "13:00" in early[0].message
    saturday = check(dt.datetime(2026, 7, 18, 15, tzinfo=LA), dt.datetime(2026, 7, 18, 16, tzinfo=LA))
    assert [v.rule for v in saturday] == ["weekends_allowed"]
    labor_day = check(dt.datetime(2026, 9, 7, 15, tzinfo=LA), dt.datetime(2026, 9, 7, 16, tzinfo=LA))
    assert [v.rule for v in labor_day] == ["holidays_allowed"]
    may = check(dt.datetime(2026, 5, 20, 15, tzinfo=LA), dt.datetime(2026, 5, 20, 16, tzinfo=LA))
    assert [v.rule for v in may] == ["season"]
    short = check(dt.datetime(2026, 7, 15, 15, tzinfo=LA), dt.datetime(2026, 7, 15, 15, 20, tzinfo=LA))
    assert [v.rule for v in short] == ["min_duration_minutes"]
    start = dt.datetime(2026, 7, 15, 15, tzinfo=LA)
    late_notice = check(start, start + dt.timedelta(hours=1), notice=start - dt.timedelta(minutes=30),
                        r=rule(min_notice_minutes=120))
    assert [v.rule for v in late_notice] == ["min_notice_minutes"]
    assert "30 minutes of notice" in late_notice[0].message


def test_cross_midnight_window_end_at_midnight():
    r = rule(window_start=dt.time(20), window_end=dt.time(0))
    to_midnight = check(dt.datetime(2026, 7, 15, 22, tzinfo=LA), dt.datetime(2026, 7, 16, 0, tzinfo=LA), r=r)
    assert to_midnight == []
    past_midnight = check(dt.datetime(2026, 7, 15, 23, tzinfo=LA), dt.datetime(2026, 7, 16, 1, tzinfo=LA), r=r)
    assert [v.rule for v in past_midnight] == ["window_end"]
    anytime = rule(window_start=None, window_end=None)
    assert check(dt.datetime(2026, 7, 15, 23, tzinfo=LA), dt.datetime(2026, 7, 16, 2, tzinfo=LA), r=anytime) == []


def test_rule_in_effect_latest_wins():
    a, b = rule(effective_from=dt.date(2026, 1, 1)), rule(effective_from=dt.date(2026, 7, 1))
    assert rules.rule_in_effect([a, b], dt.date(2026, 6, 30)) is a
    assert rules.rule_in_effect([a, b], dt.date(2026, 7, 1)) is b
    assert rules.rule_in_effect([a, b], dt.date(2025, 12, 31)) is None


def test_rotation_least_called_then_larger_capacity():
    order = ledger.rotation_order([(1, 3, 5.0), (2, 0, 1.0), (3, 0, 4.0), (4, 1, 9.0), (5, 0, 4.0)])
    assert order == [3, 5, 2, 4, 1]
    assert ledger.pick_until_target([(3, 4.0), (5, 4.0), (2, 1.0)], 6.0) == {3, 5}
    assert ledger.pick_until_target([(3, 4.0), (5, 4.0)], 4.0) == {3}
