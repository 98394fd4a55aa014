"""Which of two overlapping events keeps a device, and whether an event carries an incentive: pure (no Django
imports beyond the choices' values), so the rules read in one place.

The rule (issue 16, point 5):
- An event's priority is its category (emergency > reliability > economic > test), then its program's
  ``event_priority`` (an integer, higher wins). Direction does not rank: a load-increase event and a load-reduction
  event compete by priority alone, and the ledger names an opposite-direction conflict as such.
- When a device is reserved for an overlapping event, the higher priority wins: a later, higher-priority event
  takes the device from a lower one that has not been dispatched yet (its participation RESERVED in a SCHEDULED
  event). A device already dispatched stays in its event. At equal priority the event that reserved first keeps
  the device.
- A take-over and the program's limits (events per day, season, ...): the limits are the enrollment's. An event
  the higher one takes devices from stops counting toward the enrollment's limits only when it takes every
  participation the enrollment has there; if the enrollment keeps a device in it, it still counts, for all the
  enrollment's devices (``events.services.reservation._decide_rows``).
- An event carries an incentive when an incentive rule of its program in effect on its day pays per event:
  a per-event payment (any direction), or a performance payment (per kWh avoided, per kW drop), which settlement
  measures as load reduction below the baseline and so pays a load-reduction event only. Seasonal, monthly,
  enrollment and cap rules do not pay an event of their own. A program with
  ``declines_events_without_incentive`` does not auto-join an event that carries none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .choices import CATEGORY_RANK, DIRECTION_WORDS, EventDirection

PER_EVENT = "per_event"
PERFORMANCE = ("performance_kwh", "performance_kw")


@dataclass(frozen=True, slots=True)
class Ranked:
    """An event as the priority rule sees it."""

    id: int
    name: str
    program_code: str
    category: str
    direction: str
    program_priority: int

    @property
    def rank(self) -> tuple[int, int]:
        return (CATEGORY_RANK.get(self.category, 0), self.program_priority)

    def words(self) -> str:
        return f"event #{self.id} '{self.name}' of program {self.program_code}"


def outranks(a: Ranked, b: Ranked) -> bool:
    """True when ``a`` has strictly higher priority than ``b``."""
    return a.rank > b.rank


def why_higher(a: Ranked, b: Ranked) -> str:
    """Why ``a`` outranks ``b``, in words: the categories, or the program priorities at equal category."""
    if a.category != b.category:
        return f"{a.category} over {b.category}"
    return f"{a.category} events, program priority {a.program_priority} over {b.program_priority}"


def direction_note(this: Ranked, other: Ranked) -> str:
    """' It overlaps a load-increase event (opposite direction).' when the directions differ, else ''."""
    if this.direction == other.direction:
        return ""
    return f" It overlaps a {DIRECTION_WORDS.get(other.direction, other.direction)} event (opposite direction)."


def pays_event(direction: str, rules: Iterable[tuple[str, object, bool]]) -> bool:
    """Whether incentive rules ``(kind, amount, has_price_set)`` pay an event of ``direction`` (module docstring)."""
    for kind, amount, has_price_set in rules:
        paid = has_price_set or (amount is not None and amount > 0)
        if not paid:
            continue
        if kind == PER_EVENT:
            return True
        if kind in PERFORMANCE and direction == EventDirection.REDUCE:
            return True
    return False


def declined_text(program_code: str, direction: str) -> str:
    words = DIRECTION_WORDS.get(direction, direction)
    return (f"Program {program_code} declines events that carry no incentive: no incentive rule in effect pays a "
            f"{words} event (per-event payments pay any event, performance payments pay load reduction only).")
