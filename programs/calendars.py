"""Holiday calendars of programs (pure, cached; no Django imports).

Codes match ``programs.choices.HolidayCalendar``:

- ``NERC``: the six NERC off-peak holidays used by ISOs and utilities for baselines and DR event days: New Year's Day,
  Memorial Day, Independence Day, Labor Day, Thanksgiving Day, Christmas Day. As NERC publishes them, a holiday on a
  Sunday moves to the Monday after; a holiday on a Saturday is not moved (source: NERC "Additional Off-Peak Days",
  https://www.nerc.com/comm/OC/RS%20Landing%20Page%20DL/Additional%20Off-peak%20Days.pdf).
- ``US``: US federal holidays from the ``holidays`` package, with their observed days (Friday before a Saturday
  holiday, Monday after a Sunday one) as well as the actual dates.
- ``NONE``: no holidays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

import holidays

NERC_HOLIDAY_NAMES = frozenset({
    "New Year's Day", "Memorial Day", "Independence Day", "Labor Day", "Thanksgiving Day", "Christmas Day",
})
CALENDAR_CODES = ("NERC", "US", "NONE")


@lru_cache(maxsize=512)
def _year_holidays(code: str, year: int) -> frozenset[dt.date]:
    if code == "NONE":
        return frozenset()
    if code == "US":
        return frozenset(holidays.US(years=year, observed=True, language="en_US").keys())
    if code == "NERC":
        days = set()
        for day, name in holidays.US(years=year, observed=False, language="en_US").items():
            if name not in NERC_HOLIDAY_NAMES:
                continue
            # NERC: Sunday holidays are observed on Monday; Saturday holidays are not moved.
            days.add(day + dt.timedelta(days=1) if day.weekday() == 6 else day)
        return frozenset(days)
    raise ValueError(f"Unknown holiday calendar {code!r} (expected one of {', '.join(CALENDAR_CODES)})")


def holidays_for(calendar_code: str, years: Iterable[int] | int) -> set[dt.date]:
    """Holiday dates (local calendar dates) of ``calendar_code`` in ``years``.

    ``years``: an int or an iterable of ints. Raises ``ValueError`` for an unknown calendar code.
    """
    if isinstance(years, int):
        years = (years,)
    result: set[dt.date] = set()
    for year in years:
        result |= _year_holidays(calendar_code, int(year))
    return result


def is_holiday(calendar_code: str, day: dt.date) -> bool:
    """True if local date ``day`` is a holiday in ``calendar_code`` (a NERC Sunday holiday counts on the Monday)."""
    return day in _year_holidays(calendar_code, day.year)
