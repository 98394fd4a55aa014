"""Interval prices of the fall-back day typed in local time without offsets: the day has 25 hours and 01:00 twice.
A 01:00 without an offset is the first (PDT, documented); a second 01:00 row was refused as "Row 3: interval
2026-11-01 01:00 PDT repeats row 2.", which does not say why nor what to type. It now says the hour happens twice
and how to give the second one (its UTC offset); with it, the 25 rows are accepted."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.errors import DomainValidationError
from programs import services
from tests.actors import TEST_ACTOR
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def _rows(second_one_am: str):
    rows = [{"interval_start": f"2026-11-01T{h:02d}:00", "price_per_kwh": "0.10"} for h in range(24)]
    rows.insert(2, {"interval_start": second_one_am, "price_per_kwh": "0.20"})
    return rows


def test_a_second_0100_without_offset_is_refused_saying_how_to_type_it():
    program = ProgramFactory(time_zone="America/Los_Angeles")
    with pytest.raises(DomainValidationError) as refused:
        services.price_set_create(program=program, name="Fall back", interval_minutes=60,
                                  rows=_rows("2026-11-01T01:00"), now=NOW, actor=TEST_ACTOR)
    assert refused.value.errors == {"rows[2].interval_start": [
        "Row 3: interval 2026-11-01 01:00 PDT repeats row 2. 01:00 happens twice in America/Los_Angeles on "
        "2026-11-01 (the clocks go back): a time without an offset is the first (PDT); give the second its offset, "
        "2026-11-01T01:00:00-08:00 (PST)."]}


def test_with_the_offset_the_25_hours_are_priced():
    program = ProgramFactory(time_zone="America/Los_Angeles")
    price_set = services.price_set_create(program=program, name="Fall back", interval_minutes=60,
                                          rows=_rows("2026-11-01T01:00:00-08:00"), now=NOW, actor=TEST_ACTOR)
    prices = dict(price_set.prices.values_list("interval_start", "price_per_kwh"))
    assert len(prices) == 25
    assert prices[dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)] == Decimal("0.20")  # 01:00 PST
    assert prices[dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)] == Decimal("0.10")  # 01:00 PDT
