"""Money: ``Decimal`` everywhere, rounded in exactly one place (this module)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_STEPS = {places: Decimal(1).scaleb(-places) for places in range(9)}  # 1, 0.1, 0.01, ...: quantize steps


def to_decimal(value: Decimal | int | float | str) -> Decimal:
    """Convert a number to ``Decimal`` without binary-float noise (floats go through ``repr``)."""
    kind = type(value)
    if kind is Decimal:
        return value
    if kind is float:
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def round_money(value: Decimal | int | float | str) -> Decimal:
    """Round an amount in dollars to cents, half up (the usual billing-system convention).

    This is the only rounding of money in cpm: compute in full precision, round once at the end.
    """
    return to_decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def format_money(value: Decimal | int | float | str | None, *, currency: str = "$") -> str:
    """An amount as people read it: currency sign, thousands separators, two decimals ("$16,169.83", "-$5.58").

    Rounds with ``round_money`` (the one rounding); for display only, never for arithmetic."""
    if value is None or value == "":
        return ""
    amount = round_money(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency}{abs(amount):,.2f}"


def format_quantity(value: Decimal | int | float | str | None, unit: str = "", *, places: int = 2,
                    trim: bool = False, max_places: int | None = None) -> str:
    """A quantity with its unit and ``places`` decimals ("15.00 kWh", "3.25 kW"); with ``trim``, at most ``places``
    decimals, trailing zeros dropped ("1", "0.85"); with ``max_places``, at least ``places`` and at most
    ``max_places`` decimals, as many as the value has ("4.50 kWh", "0.104 kWh"): the quantity a line's amount was
    worked from, so that quantity x rate reads as the amount."""
    if value is None or value == "":
        return ""
    shown = max(places, max_places or places)
    step = _STEPS.get(shown) or Decimal(1).scaleb(-shown)
    number = to_decimal(value).quantize(step, rounding=ROUND_HALF_UP)
    text = f"{number:,.{shown}f}"
    if shown > places:
        whole, _, decimals = text.partition(".")
        text = f"{whole}.{decimals[:places]}{decimals[places:].rstrip('0')}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return f"{text} {unit}" if unit else text


def format_decimal_field(value, field_name: str, *, decimal_places: int | None = None) -> str:
    """A model's decimal as people read it, by the field's name: money (``amount``, ``cap``, ``bonus``) with currency
    and two decimals; a price or rate (``price_per_kwh``, ``rate``, and an ``amount`` of more than two decimal places:
    dollars per unit) as ``format_rate`` ("$0.12345", "$75.00", never rounded to cents), "/kWh" when the name
    says so; ``kwh`` and ``kw`` with their unit; shares and other numbers without trailing zeros."""
    if value is None:
        return ""
    name = field_name.lower()
    if "price" in name or name == "rate" or name.endswith("_rate") or (
            "amount" in name and decimal_places is not None and decimal_places > 2):
        per = "/kWh" if "per_kwh" in name else "/kW" if name.endswith("per_kw") else ""
        return format_rate(value) + per
    if "kwh" in name:
        return format_quantity(value, "kWh")
    if name == "kw" or name.startswith("kw_") or name.endswith("_kw") or "_kw_" in name:
        return format_quantity(value, "kW")
    if any(word in name for word in ("amount", "price", "rate", "cap", "bonus", "penalty")):
        return format_money(value)
    return format_quantity(value, places=max(2, decimal_places or 2), trim=True)


def format_rate(value: Decimal | int | float | str | None, *, currency: str = "$") -> str:
    """A price per unit ("$1.25", "$1.70", "$0.12345"): at least two decimals, no trailing zeros beyond them; not
    rounded to cents (a rate is not an amount)."""
    if value is None or value == "":
        return ""
    number = to_decimal(value)
    text = f"{abs(number):,.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    text = f"{whole}.{frac.ljust(2, '0')}"
    return f"{'-' if number < 0 else ''}{currency}{text}"
