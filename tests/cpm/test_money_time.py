import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from cpm.base.money import round_money
from cpm.base.timeutils import hours_between, local_day_bounds, wall_time_exists

LA = ZoneInfo("America/Los_Angeles")


def test_round_money_half_up_once():
    assert round_money(Decimal("1.005")) == Decimal("1.01")
    assert round_money(0.1 + 0.2) == Decimal("0.30")
    assert round_money("-2.345") == Decimal("-2.35")


def test_local_day_lengths_on_dst_days():
    spring = local_day_bounds(dt.date(2026, 3, 8), LA)
    autumn = local_day_bounds(dt.date(2026, 11, 1), LA)
    normal = local_day_bounds(dt.date(2026, 7, 1), LA)
    assert hours_between(*spring) == 23
    assert hours_between(*autumn) == 25
    assert hours_between(*normal) == 24
    assert normal[0] == dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)


def test_skipped_spring_wall_time():
    assert not wall_time_exists(dt.date(2026, 3, 8), dt.time(2, 30), LA)
    assert wall_time_exists(dt.date(2026, 3, 8), dt.time(3, 30), LA)


def test_format_quantity_with_max_places_shows_the_decimals_the_value_has():
    from cpm.base.money import format_quantity

    assert format_quantity(Decimal("0.1040"), "kWh", max_places=4) == "0.104 kWh"
    assert format_quantity(Decimal("4.5000"), "kWh", max_places=4) == "4.50 kWh"
    assert format_quantity(Decimal("1234.56789"), "kWh", max_places=4) == "1,234.5679 kWh"
    assert format_quantity(Decimal("3"), "kW", max_places=4) == "3.00 kW"
    assert format_quantity(Decimal("0.104"), "kWh") == "0.10 kWh"  # the default stays two decimals
