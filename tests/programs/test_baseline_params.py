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
