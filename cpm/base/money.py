"""Money: ``Decimal`` everywhere, rounded in exactly one place (this module)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_decimal(value: Decimal | int | float | str) -> Decimal:
    """Convert a number to ``Decimal`` without binary-float noise (floats go through ``repr``)."""
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
