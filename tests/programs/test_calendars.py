import datetime as dt

import pytest

from programs.calendars import holidays_for, is_holiday

D = dt.date


def test_nerc_2022_six_holidays_sunday_moved_saturday_not():
    # 2022: New Year's Day is a Saturday (not moved), Christmas a Sunday (moved to Monday Dec 26).
    assert holidays_for("NERC", 2022) == {
        D(2022, 1, 1), D(2022, 5, 30), D(2022, 7, 4), D(2022, 9, 5), D(2022, 11, 24), D(2022, 12, 26)}


def test_nerc_2023_new_year_on_sunday_observed_monday():
    days = holidays_for("NERC", [2023])
    assert D(2023, 1, 2) in days and D(2023, 1, 1) not in days
    assert D(2023, 12, 31) not in days  # 2024's New Year's Day is a Monday, not observed early
    assert len(days) == 6


def test_nerc_saturday_independence_day_not_moved_sunday_one_moved():
    assert is_holiday("NERC", D(2020, 7, 4)) is True  # Saturday: stays
    assert is_holiday("NERC", D(2020, 7, 3)) is False  # no Friday observance
    assert is_holiday("NERC", D(2021, 7, 5)) is True  # Sunday July 4 -> Monday
    assert is_holiday("NERC", D(2021, 7, 4)) is False
    # 2021-12-25 is a Saturday: stays on Saturday, Friday 24th is a normal day.
    assert is_holiday("NERC", D(2021, 12, 25)) is True
    assert is_holiday("NERC", D(2021, 12, 24)) is False


def test_nerc_excludes_other_federal_holidays():
    assert is_holiday("NERC", D(2026, 1, 19)) is False  # Martin Luther King Jr. Day
    assert is_holiday("US", D(2026, 1, 19)) is True
    assert is_holiday("NERC", D(2026, 11, 26)) is True  # Thanksgiving 2026


def test_us_calendar_has_observed_days_and_none_is_empty():
    assert is_holiday("US", D(2021, 7, 5))  # observed Monday of Sunday July 4
    assert is_holiday("US", D(2021, 7, 4))
    assert holidays_for("NONE", [2026, 2027]) == set()
    assert len(holidays_for("NERC", range(2011, 2027))) == 6 * 16


def test_unknown_calendar_is_refused():
    with pytest.raises(ValueError, match="Unknown holiday calendar 'XYZ'"):
        holidays_for("XYZ", 2026)
