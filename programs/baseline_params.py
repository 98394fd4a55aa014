"""A program's baseline parameters: the X-of-Y presets (``Program.baseline_method``) and the overrides a program
may give (``Program.baseline_params``), with their checks.

Pure (numpy only, no Django). The baseline engine (``settlement.baselines``) reads them through ``resolve_params``;
the program's write path (``programs.services``) checks them with ``baseline_params_errors`` so a program never
stores overrides its settlement cannot use. The presets' sources are in ``settlement.baselines``.

Numbers are JSON numbers: a text such as ``"3"``, ``"1_0"`` or ``"abc"`` is refused naming its key (``float()``
read ``"1_0"`` as 10 hours and raised a bare ``ValueError`` for ``"abc"``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

SELECTIONS = ("most_recent", "highest")
DAY_TYPES = ("weekday", "weekend_holiday", "auto")
ADJUSTMENTS = ("none", "multiplicative", "additive")


@dataclass(frozen=True)
class BaselineParams:
    """Parameters of an X-of-Y baseline.

    x, y: select ``x`` days out of a window of the first ``y`` eligible days (1 <= x <= y).
    selection: ``most_recent`` or ``highest`` (mean event-window load; ties go to the more recent day).
    day_type: ``weekday`` (Mon-Fri, not a holiday), ``weekend_holiday`` (Sat, Sun or a holiday) or ``auto`` (the
        event day's type; on weekend/holiday event days ``weekend_x``/``weekend_y`` replace ``x``/``y``).
    lookback_days: calendar days walked back from the day before the event.
    low_usage_threshold: drop a candidate whose mean event-window kW is below this fraction of the mean over the
        first ``y`` eligible candidates (PJM: 0.25); ``None`` = no screen.
    adjustment: ``none``, ``multiplicative`` (ratio of sums, clamped to ``adjustment_cap``; a zero or negative
        baseline sum gives 1 and a flag) or ``additive`` (mean actual kW minus mean baseline kW, clamped to
        ``adjustment_cap`` read as kW bounds when given).
    adjustment_hours, adjustment_gap_hours: the window is the ``adjustment_hours`` ending ``adjustment_gap_hours``
        before the event start.
    adjustment_cap: ``(low, high)`` or ``None``; either bound may be ``None``.
    """

    x: int = 10
    y: int = 10
    selection: str = "most_recent"
    day_type: str = "weekday"
    lookback_days: int = 45
    low_usage_threshold: float | None = None
    adjustment: str = "multiplicative"
    adjustment_hours: float = 3.0
    adjustment_gap_hours: float = 1.0
    adjustment_cap: tuple[float | None, float | None] | None = (0.8, 1.2)
    weekend_x: int = 4
    weekend_y: int = 4

    def __post_init__(self) -> None:
        errors = validate_params(self)
        if errors:
            raise ValueError("; ".join(f"{k}: {v}" for k, v in errors.items()))

    def for_day_type(self, weekend_holiday: bool) -> BaselineParams:
        """Concrete parameters for an event day of the given type (resolves ``auto``)."""
        if self.day_type != "auto":
            return self
        if weekend_holiday:
            return dataclasses.replace(self, day_type="weekend_holiday", x=self.weekend_x, y=self.weekend_y)
        return dataclasses.replace(self, day_type="weekday")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["adjustment_cap"] = list(self.adjustment_cap) if self.adjustment_cap is not None else None
        return d


#: The most days a baseline may look back over or select (x, y, lookback_days and the weekend ones): a year.
MAX_DAYS = 366


def validate_params(p: BaselineParams) -> dict[str, str]:
    """Field -> message for every invalid field of ``p`` (empty when valid)."""
    errors: dict[str, str] = {}
    for name in ("x", "y", "lookback_days", "weekend_x", "weekend_y"):
        value = getattr(p, name)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            errors[name] = f"must be a positive integer, not {value!r}"
        elif value > MAX_DAYS:  # a year of candidate days; 99999999 walked back past year 1 (OverflowError)
            errors[name] = f"must be at most {MAX_DAYS} days, not {value!r}"
    if "x" not in errors and "y" not in errors and p.x > p.y:
        errors["x"] = f"must not exceed y ({p.x} > {p.y})"
    if "weekend_x" not in errors and "weekend_y" not in errors and p.weekend_x > p.weekend_y:
        errors["weekend_x"] = f"must not exceed weekend_y ({p.weekend_x} > {p.weekend_y})"
    if p.selection not in SELECTIONS:
        errors["selection"] = f"must be one of {', '.join(SELECTIONS)}, not {p.selection!r}"
    if p.day_type not in DAY_TYPES:
        errors["day_type"] = f"must be one of {', '.join(DAY_TYPES)}, not {p.day_type!r}"
    if p.adjustment not in ADJUSTMENTS:
        errors["adjustment"] = f"must be one of {', '.join(ADJUSTMENTS)}, not {p.adjustment!r}"
    if p.low_usage_threshold is not None and not _is_number(p.low_usage_threshold):
        errors["low_usage_threshold"] = f"must be a number, not {p.low_usage_threshold!r}"
    elif p.low_usage_threshold is not None and not (0 <= float(p.low_usage_threshold) <= 1):
        errors["low_usage_threshold"] = f"must be between 0 and 1, not {p.low_usage_threshold!r}"
    for name in ("adjustment_hours", "adjustment_gap_hours"):
        value = getattr(p, name)
        if not _is_number(value):
            errors[name] = f"must be a number, not {value!r}"
        elif not (0 <= float(value) <= 24):
            errors[name] = f"must be between 0 and 24, not {value!r}"
    if "adjustment_hours" not in errors and p.adjustment != "none" and float(p.adjustment_hours) <= 0:
        errors["adjustment_hours"] = "must be positive when an adjustment is used"
    if p.adjustment_cap is not None:
        cap = tuple(p.adjustment_cap) if isinstance(p.adjustment_cap, list | tuple) else ()
        if len(cap) != 2:
            errors["adjustment_cap"] = "must be (low, high)"
        elif any(b is not None and not _is_number(b) for b in cap):
            errors["adjustment_cap"] = f"each bound must be a number or null, not {list(cap)!r}"
        elif cap[0] is not None and cap[1] is not None and float(cap[0]) > float(cap[1]):
            errors["adjustment_cap"] = f"low must not exceed high ({cap[0]} > {cap[1]})"
    return errors


def _is_number(value: Any) -> bool:
    """A finite int or float (numpy's too), not a bool and not a text: JSON ``"1_0"`` or ``"3"`` is not a number."""
    return (isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
            and math.isfinite(value))


PRESETS: dict[str, BaselineParams] = {
    # CAISO BPM for Demand Response, Customer Load Baseline: 10 most recent eligible weekdays in 45 days,
    # day-of adjustment from the 3 hours ending 1 hour before the event, capped at +/-20 %.
    "caiso-10-in-10": BaselineParams(x=10, y=10, selection="most_recent", day_type="weekday", lookback_days=45,
                                     adjustment="multiplicative", adjustment_hours=3, adjustment_gap_hours=1,
                                     adjustment_cap=(0.8, 1.2)),
    # CAISO BPM for Demand Response: weekend/holiday events use the 4 most recent weekend/holiday days.
    "caiso-4-in-4": BaselineParams(x=4, y=4, selection="most_recent", day_type="weekend_holiday", lookback_days=45,
                                   adjustment="multiplicative", adjustment_hours=3, adjustment_gap_hours=1,
                                   adjustment_cap=(0.8, 1.2)),
    # PJM Manual 11 section 10 (CBL): High 4 of 5 weekdays in 45 days, 25 % low-usage screen, Symmetric Additive
    # Adjustment over the 3 hours ending 1 hour before the event, no cap.
    "pjm-high-4-of-5": BaselineParams(x=4, y=5, selection="highest", day_type="weekday", lookback_days=45,
                                      low_usage_threshold=0.25, adjustment="additive", adjustment_hours=3,
                                      adjustment_gap_hours=1, adjustment_cap=None),
    # CAISO: 10-in-10 on weekday event days, 4-in-4 on weekend/holiday event days.
    "caiso-auto": BaselineParams(x=10, y=10, selection="most_recent", day_type="auto", lookback_days=45,
                                 adjustment="multiplicative", adjustment_hours=3, adjustment_gap_hours=1,
                                 adjustment_cap=(0.8, 1.2), weekend_x=4, weekend_y=4),
}


def resolve_params(method: str = "caiso-auto", overrides: Mapping | None = None) -> BaselineParams:
    """Preset ``method`` (a key of ``PRESETS``, or ``custom`` = caiso-10-in-10 values) with ``overrides`` applied.

    ``overrides`` keys are ``BaselineParams`` fields (``Program.baseline_params``); ``adjustment_cap`` may be a
    list/tuple or ``None``. Raises ``ValueError`` naming the unknown method, unknown key or invalid field.
    """
    if method == "custom":
        base = PRESETS["caiso-10-in-10"]
    elif method in PRESETS:
        base = PRESETS[method]
    else:
        raise ValueError(f"method: unknown baseline method {method!r} (one of {', '.join([*PRESETS, 'custom'])})")
    overrides = dict(overrides or {})
    known = {f.name for f in dataclasses.fields(BaselineParams)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown baseline parameter")
    if isinstance(overrides.get("adjustment_cap"), list | tuple):
        overrides["adjustment_cap"] = tuple(overrides["adjustment_cap"])
    return dataclasses.replace(base, **overrides)


def baseline_params_errors(method: str, overrides: Any) -> list[str]:
    """Why ``overrides`` (a program's ``baseline_params``) cannot be used with preset ``method``, one message per
    key in words (``"adjustment_hours: must be a number, not '1_0'"``); empty when ``resolve_params`` accepts them.
    Checked on the overrides applied to the preset, so ``{"x": 6}`` is refused for ``pjm-high-4-of-5`` (y = 5)."""
    if not isinstance(overrides, Mapping):
        return ["must be an object of parameter names to values."]
    if method != "custom" and method not in PRESETS:
        return []  # the method's own field refuses it
    known = [f.name for f in dataclasses.fields(BaselineParams)]
    unknown = [k for k in overrides if k not in known]
    if unknown:
        return [f"{k}: unknown baseline parameter (known: {', '.join(known)})." for k in unknown]
    base = PRESETS["caiso-10-in-10" if method == "custom" else method]
    values = dataclasses.asdict(base) | dict(overrides)
    if isinstance(values.get("adjustment_cap"), list | tuple):
        values["adjustment_cap"] = tuple(values["adjustment_cap"])
    # BaselineParams.__post_init__ raises on the first error; validate_params lists every one.
    candidate = object.__new__(BaselineParams)
    for name, value in values.items():
        object.__setattr__(candidate, name, value)
    return [f"{k}: {v}." for k, v in validate_params(candidate).items()]
