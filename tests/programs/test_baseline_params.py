"""A program's baseline overrides (``programs.baseline_params``): numbers are JSON numbers, every bad key named."""

from __future__ import annotations

import pytest

from programs.baseline_params import baseline_params_errors, resolve_params


@pytest.mark.parametrize(("overrides", "message"), [
    ({"adjustment_hours": "1_0"}, "adjustment_hours: must be a number, not '1_0'"),  # float() read 10 hours
    ({"adjustment_hours": "abc"}, "adjustment_hours: must be a number, not 'abc'"),  # float() raised, unnamed
    ({"adjustment_gap_hours": True}, "adjustment_gap_hours: must be a number, not True"),
    ({"low_usage_threshold": float("nan")}, "low_usage_threshold: must be a number, not nan"),
    ({"adjustment_cap": 5}, "adjustment_cap: must be (low, high)"),  # tuple(5) raised TypeError
    ({"adjustment_cap": [None, "x"]}, "adjustment_cap: each bound must be a number or null, not [None, 'x']"),
])
def test_resolve_params_refuses_naming_the_key(overrides, message):
    with pytest.raises(ValueError) as exc:
        resolve_params("caiso-auto", overrides)
    assert str(exc.value) == message
    assert baseline_params_errors("caiso-auto", overrides) == [message + "."]


def test_numbers_and_nulls_are_accepted():
    params = resolve_params("pjm-high-4-of-5", {"adjustment_hours": 2, "adjustment_cap": [None, 1.5],
                                                "low_usage_threshold": 0.3})
    assert (params.adjustment_hours, params.adjustment_cap, params.low_usage_threshold) == (2, (None, 1.5), 0.3)
    assert baseline_params_errors("pjm-high-4-of-5", {"adjustment_hours": 2, "adjustment_cap": [None, 1.5]}) == []
    assert baseline_params_errors("custom", {}) == []


def test_every_bad_key_is_listed():
    assert baseline_params_errors("custom", {"x": 0, "selection": "lowest", "colour": 1}) == [
        "colour: unknown baseline parameter (known: x, y, selection, day_type, lookback_days, low_usage_threshold, "
        "adjustment, adjustment_hours, adjustment_gap_hours, adjustment_cap, weekend_x, weekend_y)."]
    assert baseline_params_errors("custom", {"x": 0, "selection": "lowest"}) == [
        "x: must be a positive integer, not 0.", "selection: must be one of most_recent, highest, not 'lowest'."]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"lookback_days": 99_999_999}, "lookback_days: must be at most 366 days, not 99999999"),
    ({"lookback_days": 367}, "lookback_days: must be at most 366 days, not 367"),
    ({"y": 10**12, "x": 10}, "y: must be at most 366 days, not 1000000000000"),
    ({"weekend_x": 500, "weekend_y": 500},
     "weekend_x: must be at most 366 days, not 500; weekend_y: must be at most 366 days, not 500"),
])
def test_day_counts_beyond_a_year_are_refused(overrides, message):
    """A look-back of 99,999,999 days was accepted, and the baseline engine then raised ``OverflowError: date value
    out of range`` walking back past year 1 (the baseline command's traceback); a year is the bound."""
    with pytest.raises(ValueError) as exc:
        resolve_params("caiso-auto", overrides)
    assert str(exc.value) == message
    assert resolve_params("caiso-auto", {"lookback_days": 366}).lookback_days == 366


def test_baseline_cli_lookback_beyond_a_year_is_an_error_in_words(tmp_path):
    from django.core.management import CommandError, call_command

    csv = tmp_path / "meter.csv"
    csv.write_text("timestamp,kwh\n2026-07-14T16:00:00-07:00,1.0\n")
    with pytest.raises(CommandError, match="^lookback_days: must be at most 366 days, not 99999999$"):
        call_command("baseline", "--csv", str(csv), "--tz", "America/Los_Angeles", "--event-start",
                     "2026-07-15T16:00-07:00", "--event-end", "2026-07-15T18:00-07:00", "--lookback-days",
                     "99999999")
