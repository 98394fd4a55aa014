"""Incentive arithmetic: what an event or a season earns, from measured results and the program's incentive rules.

Pure module (no Django): inputs are plain dataclasses, money is ``Decimal`` in full precision; callers round once with
``cpm.base.money.round_money`` when they post a line. Kinds and bases are the string values of
``programs.choices.IncentiveKind`` / ``IncentiveBasis`` / ``OptOutConsequence`` and ``settlement.choices.LineKind``.

Rules implemented (sources: the programs in shared/data/programs/real-programs.json):
- performance per kWh: ``kWh avoided x $/kWh`` (PGE Smart Battery Pilot, $1.70/kWh), or with an interval price set
  the sum over intervals of ``kWh avoided_i x price_i``. A negative total pays $0 unless the program charges
  negative performance. It pays load reduction, so a load-reduction event only: in a load-increase event it is
  $0 whatever was measured (``reduces_load``; the rule ``events.priority`` declares, by which a program declining
  events without incentive declines such an event), neither paying a customer who cut its load against the
  event's direction nor charging one who raised it as asked.
- per-event participation: ``amount x basis quantity x participation fraction`` (proration: 1 h of a 3 h event
  counts a third); non-responsive or failed participations earn nothing.
- opt-out: PENALTY charges ``amount`` per opt-out; FORFEIT_EVENT pays nothing for that event.
- seasonal: paid when the share of event hours not opted out reaches ``min_participation_share`` (PGE Energy
  Partner: >= 50 % of event hours) and opt-outs do not exceed ``max_opt_outs`` (Alliant: more than 3 forfeits), to
  the enrollments the rule's ``season_enrollment`` names: enrolled at any time in the season (the default), still
  enrolled at its end (Austin Energy Power Partner: "for each thermostat that stays enrolled"), enrolled for the
  whole season, or prorated by the days enrolled (``season_enrollment_share``). Season incentives are a site's:
  an account's enrollments at one service point in the season (an unenrolment and a re-enrolment, several devices)
  are worked together and paid once (``site_season_events``, ``site_enrollment_share``).
- performance per kW: average of the top N % of the season's per-event kW drops x $/kW (ConnectedSolutions: all
  events, i.e. N = 100). Partial participation is prorated (Efficiency Maine small battery terms: "partial
  participation is prorated over the event length, e.g. 9 kW for 1 h of a 3 h event = 3 kW"): an event's kW is the
  average kW drop over the whole event window, the intervals after the opt-out counting zero; an event opted out
  before it began counts 0 kW (Efficiency Maine) or is left out of the average, as the rule's
  ``opted_out_counts_zero`` says. See ``performance_kw_component``.
- performance per kWh is prorated the same way: the kWh avoided in the intervals before the opt-out count
  (``settlement.measurement``); an event opted out before it began has no counted interval, so it earns $0.
- season cap: the season's net credits (the one-time enrollment bonus aside) never exceed the cap; the excess is removed
  by a negative cap line, given back (up to what the cap took) when a correction brings the season under it. An event's
  credits are of the season of its event day, whichever billing period pays them (a correction approved after the
  season is still capped): ``settlement.services.customer_settlement._season_cap_lines``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from cpm.base.money import format_money, format_quantity, format_rate

ZERO = Decimal(0)
ONE = Decimal(1)

# programs.choices.IncentiveKind values
K_ENROLLMENT_BONUS = "enrollment_bonus"
K_SEASONAL = "seasonal"
K_MONTHLY = "monthly"
K_PER_EVENT = "per_event"
K_PERFORMANCE_KWH = "performance_kwh"
K_PERFORMANCE_KW = "performance_kw"
K_OPT_OUT_PENALTY = "opt_out_penalty"
K_SEASON_CAP = "season_cap"
# programs.choices.IncentiveBasis values
B_FLAT = "flat"
B_PER_KW_ENROLLED = "per_kw_enrolled"
B_PER_KWH_ENROLLED = "per_kwh_enrolled"
B_PER_DEVICE = "per_device"
B_PER_KWH = "per_kwh"
B_PRICE_SET = "price_set"
B_PER_KW = "per_kw"
CAPACITY_BASES = frozenset({B_PER_KW_ENROLLED, B_PER_KWH_ENROLLED, B_PER_DEVICE})  # what basis_quantity reads
# programs.choices.OptOutConsequence values
C_PENALTY = "penalty"
C_FORFEIT_EVENT = "forfeit_event"
C_FORFEIT_MONTH = "forfeit_month"
C_FORFEIT_SEASON = "forfeit_season"
# programs.choices.SeasonEnrollment values
E_ANY = "any"
E_AT_SEASON_END = "at_season_end"
E_WHOLE_SEASON = "whole_season"
E_PRORATED = "prorated"
# settlement.choices.LineKind values
L_CAP = "cap_adjustment"


class MissingPrice(ValueError):
    """The interval price set has no price for an interval that earned kWh; names the UTC interval start."""

    def __init__(self, start: dt.datetime, price_set: str) -> None:
        super().__init__(f"price set {price_set!r} has no price for the interval starting {start.isoformat()}")
        self.start = start


@dataclass(frozen=True)
class RuleSpec:
    """An incentive rule as plain data (``programs.models.IncentiveRule``)."""

    rule_id: int
    kind: str
    basis: str = B_FLAT
    amount: Decimal = ZERO
    prices: Mapping[dt.datetime, Decimal] | None = None  # UTC interval start -> $/kWh (price_set basis)
    price_interval_minutes: int = 60
    price_set_name: str = ""
    top_percent_events: Decimal | None = None
    opted_out_counts_zero: bool = True
    min_participation_share: Decimal | None = None
    max_opt_outs: int | None = None
    season_enrollment: str = E_ANY
    requires_no_skipped_event: bool = False
    opt_out_consequence: str = ""
    description: str = ""


@dataclass(frozen=True)
class Component:
    """One computed amount (dollars, unrounded) with the quantity and rate that explain it."""

    kind: str
    amount: Decimal
    description: str
    quantity: Decimal | None = None
    unit: str = ""
    rate: Decimal | None = None
    rule_id: int | None = None

    def as_dict(self) -> dict:
        return {"kind": self.kind, "amount": str(self.amount), "description": self.description,
                "quantity": None if self.quantity is None else str(self.quantity), "unit": self.unit,
                "rate": None if self.rate is None else str(self.rate), "rule_id": self.rule_id}


@dataclass(frozen=True)
class EnrolledCapacity:
    """What flat-type bases multiply by: devices, their kW and usable kWh."""

    device_count: int = 1
    capacity_kw: Decimal = ZERO
    usable_energy_kwh: Decimal = ZERO


@dataclass(frozen=True)
class EventOutcome:
    """The measured result of one participation in one event.

    ``interval_kwh``: ``(UTC interval start, kWh avoided)`` for the participated intervals (before an opt-out).
    ``fraction``: minutes participated / event minutes, in [0, 1]. ``responded``: False for non-responsive or failed.
    """

    kwh_avoided: Decimal
    fraction: Decimal
    opted_out: bool
    responded: bool = True
    interval_kwh: Sequence[tuple[dt.datetime, Decimal]] = ()
    capacity: EnrolledCapacity = field(default_factory=EnrolledCapacity)
    charges_negative_performance: bool = False
    # False for a load-increase event: performance payments pay load reduction only (``INCREASE_TEXT``).
    reduces_load: bool = True


def basis_quantity(basis: str, capacity: EnrolledCapacity) -> tuple[Decimal, str]:
    """Quantity and unit that a flat-type ``amount`` is multiplied by."""
    if basis == B_PER_DEVICE:
        return Decimal(capacity.device_count), "device"
    if basis == B_PER_KW_ENROLLED:
        return capacity.capacity_kw, "kW"
    if basis == B_PER_KWH_ENROLLED:
        return capacity.usable_energy_kwh, "kWh"
    return ONE, ""


def proration_fraction(minutes_participated: float, event_minutes: float) -> Decimal:
    """``minutes_participated / event_minutes`` clamped to [0, 1], as a Decimal with 6 places."""
    if event_minutes <= 0:
        return ZERO
    value = max(0.0, min(1.0, minutes_participated / event_minutes))
    return Decimal(f"{value:.6f}")


def _price_for(rule: RuleSpec, start: dt.datetime) -> Decimal:
    step = rule.price_interval_minutes * 60
    key_ts = math.floor(start.timestamp() / step) * step
    key = dt.datetime.fromtimestamp(key_ts, tz=dt.UTC)
    prices = rule.prices or {}
    if key not in prices:
        raise MissingPrice(key, rule.price_set_name)
    return prices[key]


def _increase_text(kwh: Decimal) -> str:
    """Why a load-increase event's performance line is $0 (``EventOutcome.reduces_load``)."""
    return (f"{format_quantity(kwh, 'kWh', max_places=4)} avoided in a load-increase event: performance payments "
            "pay load reduction only, so $0")


def event_components(outcome: EventOutcome, rules: Iterable[RuleSpec]) -> list[Component]:
    """Components earned by one participation in one event (per-event kinds only; season kinds are elsewhere).

    Raises ``MissingPrice`` when a price-set rule lacks the price of a participated interval.
    """
    rules = list(rules)
    forfeits_event = outcome.opted_out and any(
        r.kind == K_OPT_OUT_PENALTY and r.opt_out_consequence == C_FORFEIT_EVENT for r in rules)
    out: list[Component] = []
    for rule in rules:
        if rule.kind == K_PERFORMANCE_KWH:
            if forfeits_event:
                out.append(Component(K_PERFORMANCE_KWH, ZERO, "Forfeited: opted out of the event",
                                     outcome.kwh_avoided, "kWh", None, rule.rule_id))
                continue
            if not outcome.reduces_load:
                out.append(Component(K_PERFORMANCE_KWH, ZERO, _increase_text(outcome.kwh_avoided),
                                     outcome.kwh_avoided, "kWh", None, rule.rule_id))
                continue
            if rule.basis == B_PRICE_SET:
                total = ZERO
                for start, kwh in outcome.interval_kwh:
                    total += kwh * _price_for(rule, start)
                rate = None
                text = (f"{format_quantity(outcome.kwh_avoided, 'kWh', max_places=4)} avoided priced per interval "
                        f"({rule.price_set_name})")
            else:
                total = outcome.kwh_avoided * rule.amount
                rate = rule.amount
                text = (f"{format_quantity(outcome.kwh_avoided, 'kWh', max_places=4)} avoided x "
                        f"{format_rate(rule.amount)}/kWh")
            if total < 0 and not outcome.charges_negative_performance:
                text += f" = {format_money(total)}, negative: pays $0 (program does not charge negative performance)"
                total = ZERO
            out.append(Component(K_PERFORMANCE_KWH, total, text, outcome.kwh_avoided, "kWh", rate, rule.rule_id))
        elif rule.kind == K_PER_EVENT:
            qty, unit = basis_quantity(rule.basis, outcome.capacity)
            if forfeits_event:
                out.append(Component(K_PER_EVENT, ZERO, "Forfeited: opted out of the event", qty, unit,
                                     rule.amount, rule.rule_id))
            elif not outcome.responded:
                out.append(Component(K_PER_EVENT, ZERO, "Device did not respond: no participation payment",
                                     qty, unit, rule.amount, rule.rule_id))
            else:
                total = rule.amount * qty * outcome.fraction
                text = f"{format_rate(rule.amount)}{' per ' + unit if unit else ''} x {qty if unit else 1}"
                text += f" x participation {format_quantity(outcome.fraction, places=4, trim=True)} of the event"
                out.append(Component(K_PER_EVENT, total, text, qty, unit, rule.amount, rule.rule_id))
        elif rule.kind == K_OPT_OUT_PENALTY and outcome.opted_out and rule.opt_out_consequence == C_PENALTY:
            out.append(Component(K_OPT_OUT_PENALTY, -rule.amount, f"Opt-out penalty {format_money(rule.amount)}", ONE,
                                 "opt-out",
                                 rule.amount, rule.rule_id))
    return out


@dataclass(frozen=True)
class SeasonEvent:
    """One counted event of the season for one enrollment: hours, hours not opted out, kW drop (None = no data).

    ``kw_drop``: the measured average kW drop over the whole event window (``settlement.measurement``:
    kWh avoided in the intervals before any opt-out / event hours), i.e. already prorated for a partial participation.
    """

    event_id: int
    hours: Decimal
    hours_not_opted_out: Decimal
    opted_out: bool
    kw_drop: Decimal | None
    not_enrolled: bool = False  # an event of the program while the site was not enrolled (``site_season_events``)
    # An event the site was called for and did not take part in: its device was offline at reservation (the
    # ledger's OFFLINE skip). No participated hours; its kW counts as an opted-out event's (``missed_before_start``).
    # (Declared unavailability over an event is an opt-out before it began: ``opted_out`` with no hours.)
    missed: bool = False
    # False for a load-increase event: it carries no performance payment, so it is not an event of the per-kW
    # average (``performance_kw_component``).
    reduces_load: bool = True

    @property
    def opted_out_before_start(self) -> bool:
        """Opted out with no participated time (before the event, or the participation, began)."""
        return self.opted_out and self.hours_not_opted_out <= 0

    @property
    def missed_before_start(self) -> bool:
        """No participated time in an event the site was called for: opted out before it began, or missed."""
        return self.opted_out_before_start or (self.missed and self.hours_not_opted_out <= 0)


def site_season_events(events: Sequence[SeasonEvent]) -> list[SeasonEvent]:
    """One ``SeasonEvent`` per event for a site (an account's enrollments at one service point in the season: an
    unenrolment and a re-enrolment, several devices), from its participations' (in first-seen event order):

    - ``kw_drop``: the sum of the devices' kW drops (two 5 kW batteries discharging together deliver 10 kW for the
      site: ConnectedSolutions and Efficiency Maine pay the system's kW), ``None`` when none has data;
    - ``opted_out``: any device opted out (Alliant counts the events opted out of); ``hours_not_opted_out``: the
      longest time a device took part, so the event is opted out before it began only when every device was.
    An event with one participation is returned as it is."""
    by_event: dict[int, list[SeasonEvent]] = {}
    for e in events:
        by_event.setdefault(e.event_id, []).append(e)
    out = []
    for group in by_event.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        drops = [e.kw_drop for e in group if e.kw_drop is not None]
        out.append(SeasonEvent(group[0].event_id, group[0].hours, max(e.hours_not_opted_out for e in group),
                               any(e.opted_out for e in group), sum(drops, ZERO) if drops else None,
                               missed=all(e.missed or e.opted_out_before_start for e in group),
                               reduces_load=group[0].reduces_load))
    return out


def participation_share(events: Sequence[SeasonEvent]) -> Decimal | None:
    """Share (0-1) of the season's event hours not opted out; None when there were no events.

    Callers pass counted events only: cancelled events are excluded from both numerator and denominator.
    """
    hours = sum((e.hours for e in events), ZERO)
    if hours <= 0:
        return None
    return sum((e.hours_not_opted_out for e in events), ZERO) / hours


@dataclass(frozen=True)
class EnrollmentDates:
    """An enrollment's local dates against a season's: the season ``[season_start, season_end]`` (both ends
    included, as ``programs.models.Season``), the enrollment ``[effective, end)`` (``end``: the first day no longer
    enrolled; None while enrolled)."""

    season_start: dt.date
    season_end: dt.date
    effective: dt.date
    end: dt.date | None = None


def site_enrollment_share(requirement: str, periods: Sequence[EnrollmentDates]) -> tuple[Decimal, str]:
    """``season_enrollment_share`` for a site enrolled over several periods of one season (an account that
    unenrolled and enrolled again at the same service point): the seasonal incentive is the site's, paid once, on
    the days enrolled in any period (``any``: 1; ``at_season_end``: enrolled on the season's last day;
    ``whole_season``: every day of the season enrolled; ``prorated``: days enrolled in any period / the season's
    days). One period: ``season_enrollment_share`` itself."""
    if len(periods) == 1:
        return season_enrollment_share(requirement, periods[0])
    first = periods[0]
    after = first.season_end + dt.timedelta(days=1)
    season_days = (after - first.season_start).days
    enrolled: set[int] = set()
    for d in periods:
        lo, hi = max(d.effective, d.season_start), min(d.end or dt.date.max, after)
        enrolled.update(range(lo.toordinal(), hi.toordinal()))
    days = len(enrolled)
    at_end = first.season_end.toordinal() in enrolled
    if requirement == E_ANY:
        return ONE, ""
    if requirement == E_AT_SEASON_END:
        return (ONE, "") if at_end else (ZERO, (
            f"Not paid: not enrolled on the season's last day ({first.season_end}); paid to enrollments still "
            "enrolled at the season's end"))
    if requirement == E_WHOLE_SEASON:
        return (ONE, "") if days >= season_days else (ZERO, (
            f"Not paid: enrolled {days} of the season's {season_days} days ({first.season_start} to "
            f"{first.season_end}); paid to enrollments enrolled for the whole season"))
    if requirement == E_PRORATED:
        if days >= season_days:
            return ONE, ""
        return Decimal(days) / Decimal(season_days), f"prorated: enrolled {days} of the season's {season_days} days"
    raise ValueError(f"unknown season enrollment requirement {requirement!r}")


def season_enrollment_share(requirement: str, dates: EnrollmentDates) -> tuple[Decimal, str]:
    """The share (0 to 1) of a seasonal incentive an enrollment earns by its dates under ``requirement`` (a
    ``programs.choices.SeasonEnrollment`` value), with the words that explain a share below 1 ("" at 1):

    - ``any``: 1 (enrolled at some time in the season: the season settlement's enrollments are);
    - ``at_season_end``: 1 if still enrolled on the season's last day (``end`` None or after it), else 0 (Austin
      Energy Power Partner, real-programs.json: "$25 per year per thermostat ... for each thermostat that stays
      enrolled");
    - ``whole_season``: 1 if enrolled from the season's first day to its last, else 0;
    - ``prorated``: days enrolled in the season / the season's days (exact; the caller rounds the money once).
    Raises ``ValueError`` for an unknown requirement."""
    after = dates.season_end + dt.timedelta(days=1)
    first = max(dates.effective, dates.season_start)
    stop = min(dates.end or dt.date.max, after)
    days = max(0, (stop - first).days)
    season_days = (after - dates.season_start).days
    at_end = dates.end is None or dates.end > dates.season_end
    if requirement == E_ANY:
        return ONE, ""
    if requirement == E_AT_SEASON_END:
        if at_end:
            return ONE, ""
        return ZERO, (f"Not paid: no longer enrolled from {dates.end}, before the season's end ({dates.season_end}); "
                      "paid to enrollments still enrolled at the season's end")
    if requirement == E_WHOLE_SEASON:
        if at_end and dates.effective <= dates.season_start:
            return ONE, ""
        return ZERO, (f"Not paid: enrolled {days} of the season's {season_days} days ({dates.season_start} to "
                      f"{dates.season_end}); paid to enrollments enrolled for the whole season")
    if requirement == E_PRORATED:
        if days >= season_days:
            return ONE, ""
        return Decimal(days) / Decimal(season_days), f"prorated: enrolled {days} of the season's {season_days} days"
    raise ValueError(f"unknown season enrollment requirement {requirement!r}")


def seasonal_component(rule: RuleSpec, events: Sequence[SeasonEvent], capacity: EnrolledCapacity,
                       *, forfeit_on_any_opt_out: bool = False,
                       enrollment: EnrollmentDates | Sequence[EnrollmentDates] | None = None) -> Component:
    """The seasonal incentive: ``amount x basis quantity`` if the participation tests pass, else $0 with why; times
    the enrollment's share by its dates (``season_enrollment_share`` of ``rule.season_enrollment``; several periods
    of one site: ``site_enrollment_share``; ``enrollment`` None: in full). Amounts unrounded.

    ``forfeit_on_any_opt_out`` (the program has an opt-out rule "forfeit_season") forfeits the incentive at the
    first opt-out beyond the rule's allowance: beyond ``max_opt_outs`` where the rule sets one, else at any opt-out.
    Source: Alliant Smart Hours (shared/data/programs/real-programs.json, id ``alliant-smart-hours``): "Opting out
    of more than 3 events in a qualified season forfeits the $25 bonus": 3 opt-outs keep it, the 4th forfeits it
    (the sample program's forfeit_season rule forfeited it at the first)."""
    qty, unit = basis_quantity(rule.basis, capacity)
    if enrollment is None:
        share_of_season, why = ONE, ""
    elif isinstance(enrollment, EnrollmentDates):
        share_of_season, why = season_enrollment_share(rule.season_enrollment, enrollment)
    else:
        share_of_season, why = site_enrollment_share(rule.season_enrollment, enrollment)
    if not share_of_season:
        return Component(K_SEASONAL, ZERO, why, qty, unit, rule.amount, rule.rule_id)
    opt_outs = sum(1 for e in events if e.opted_out)
    share = participation_share(events)
    full = rule.amount * qty
    share_text = "no events" if share is None else f"{(share * 100):.1f}% of event hours not opted out"
    if rule.max_opt_outs is not None and opt_outs > rule.max_opt_outs:
        return Component(K_SEASONAL, ZERO, f"Forfeited: {opt_outs} opt-outs > {rule.max_opt_outs} allowed",
                         qty, unit, rule.amount, rule.rule_id)
    if forfeit_on_any_opt_out and opt_outs and rule.max_opt_outs is None:
        return Component(K_SEASONAL, ZERO, f"Forfeited: {opt_outs} opt-out(s) this season", qty, unit, rule.amount,
                         rule.rule_id)
    if rule.min_participation_share is not None and share is not None and share < rule.min_participation_share:
        return Component(K_SEASONAL, ZERO,
                         f"Not paid: {share_text} < minimum {(rule.min_participation_share * 100):.1f}%",
                         qty, unit, rule.amount, rule.rule_id)
    if share_of_season < ONE:
        return Component(K_SEASONAL, full * share_of_season, f"Seasonal incentive ({share_text}), {why}", qty, unit,
                         rule.amount, rule.rule_id)
    return Component(K_SEASONAL, full, f"Seasonal incentive ({share_text})", qty, unit, rule.amount, rule.rule_id)


def top_percent_average(values: Sequence[Decimal], percent: Decimal | None) -> tuple[Decimal, int]:
    """Average of the largest ``ceil(percent% x len(values))`` values (at least one); all values when percent is
    None. Returns ``(average, number used)``; ``(0, 0)`` for no values."""
    if not values:
        return ZERO, 0
    n = len(values)
    if percent is not None:
        n = max(1, math.ceil(Decimal(len(values)) * Decimal(percent) / Decimal(100)))
    top = sorted(values, reverse=True)[:n]
    return sum(top, ZERO) / Decimal(n), n


def performance_kw_component(rule: RuleSpec, events: Sequence[SeasonEvent],
                             *, charges_negative_performance: bool = False) -> Component:
    """Performance per kW for a season: top-N% average of per-event kW drops x $/kW.

    The rule (source: Efficiency Maine small battery program terms, shared/data/programs/real-programs.json, id
    ``efficiency-maine-small-battery``: "an opted-out or un-enrolled event counts as 0 kW in the annual average;
    partial participation is prorated over the event length (e.g. 9 kW for 1 h of a 3 h event = 3 kW)"):

    - an event's kW is the average kW drop over the WHOLE event window, the intervals after an opt-out counting zero
      (``kw_drop`` = kWh avoided before the opt-out / event hours). A battery that discharged 6 kW for 2 h of a 3 h
      event and then opted out counts 6 x 2 / 3 = 4 kW. This is not the average over the hours delivered (6 kW): the
      terms divide by the event length.
    - an event opted out before it began (no participated time) counts 0 kW when ``rule.opted_out_counts_zero``
      (Efficiency Maine), else it is left out of the average (ConnectedSolutions / CT terms publish no opt-out
      rule; a program may choose to average over the events taken part in). So does an event the site was called
      for and missed: the customer declared it unavailable (an opt-out made ahead: skipped or released at
      reservation) or its device was offline (``SeasonEvent.missed``).
    - an event of the program while the site was no longer enrolled (``not_enrolled``: after it unenrolled,
      between an unenrolment and a re-enrolment) counts 0 kW when ``rule.opted_out_counts_zero``
      ("If customer(s) are not enrolled for a given event or opt out of the event, the performance of those
      customer(s) will be counted as 0 kW for that event", Efficiency Maine program partner page), else it is left
      out.
    - events without data (``kw_drop`` None) are left out.
    - a load-increase event (``reduces_load`` False) is left out: performance payments pay load reduction, so a
      load-reduction event only (``events.priority``; its per-kWh line is $0 likewise). A battery asked to charge
      discharges nothing; averaging it in as 0 kW would take from the events it was paid to discharge in.

    The season average (all events, or the top N %) is taken over these prorated values.
    """
    drops: list[Decimal] = []
    not_enrolled = increase = 0
    for e in events:
        if not e.reduces_load:
            increase += 1
        elif e.not_enrolled:
            if rule.opted_out_counts_zero:
                drops.append(ZERO)
                not_enrolled += 1
        elif e.missed_before_start:
            if rule.opted_out_counts_zero:
                drops.append(ZERO)
        elif e.kw_drop is not None:
            drops.append(e.kw_drop)
    avg, used = top_percent_average(drops, rule.top_percent_events)
    total = avg * rule.amount
    pct = "all" if rule.top_percent_events is None else f"top {rule.top_percent_events}%"
    text = (f"Average kW drop of {pct} events ({used} of {len(drops)}) = "
            f"{format_quantity(avg, 'kW', max_places=4)} x {format_rate(rule.amount)}/kW")
    if not_enrolled:
        text += f" ({not_enrolled} event{'s' if not_enrolled > 1 else ''} while not enrolled counted 0 kW)"
    if increase:
        text += f" ({increase} load-increase event{'s' if increase > 1 else ''} left out)"
    if total < 0 and not charges_negative_performance:
        text += ", negative: pays $0"
        total = ZERO
    return Component(K_PERFORMANCE_KW, total, text, avg, "kW", rule.amount, rule.rule_id)


def cap_adjustment(*, prior_net: Decimal, this_net: Decimal, cap: Decimal, prior_capped: Decimal = ZERO) -> Decimal:
    """The cap line keeping the season's net credits (earlier settlements + this one) within ``cap``.

    Negative (or 0) when the season goes over the cap: it never takes back more than this settlement adds, money
    already paid in earlier settlements stays paid. Positive when the season is now under the cap and earlier cap
    lines (``prior_capped``, their sum, <= 0) took money back: a downward correction after the cap was reached
    (the July event earned $80, capped to $60; corrected to $70, the season's right total is still $60) first gives
    back what the cap took, up to the room under the cap, so the season never ends below ``min(earnings, cap)``.
    """
    excess = prior_net + this_net - cap
    if excess > 0:
        return ZERO if this_net <= 0 else -min(excess, this_net)
    if prior_capped < 0:
        return min(-excess, -prior_capped)
    return ZERO


# --------------------------------------------------------------------------------------------------- batch
@dataclass(frozen=True)
class EventOutcomes:
    """``n`` event outcomes as columns (field meanings as ``EventOutcome``), for a chunk of participations.

    ``interval_starts``: the UTC starts of the event-window intervals (shared); ``interval_kwh[k]``: kWh avoided of
    row ``k``'s counted intervals in order from the first (needed by price-set rules only).
    """

    kwh_avoided: Sequence[Decimal]
    fraction: Sequence[Decimal]
    opted_out: Sequence[bool]
    responded: Sequence[bool]
    capacity: Sequence[EnrolledCapacity]
    interval_starts: Sequence[dt.datetime] = ()
    interval_kwh: Sequence[Sequence[Decimal]] = ()
    charges_negative_performance: bool = False
    reduces_load: bool = True  # the event's direction, shared by the chunk (``EventOutcome.reduces_load``)


@dataclass
class ComponentColumn:
    """One rule's component for ``n`` rows: ``amount[k] is None`` = row ``k`` has no component of this rule."""

    kind: str
    rule_id: int
    unit: list[str]
    amount: list[Decimal | None]
    description: list[str]
    quantity: list[Decimal | None]
    rate: list[Decimal | None]

    def component(self, k: int) -> Component | None:
        if self.amount[k] is None:
            return None
        return Component(self.kind, self.amount[k], self.description[k], self.quantity[k], self.unit[k],
                         self.rate[k], self.rule_id)


def event_components_batch(outcomes: EventOutcomes, rules: Iterable[RuleSpec]
                           ) -> tuple[list[ComponentColumn], list[MissingPrice | None]]:
    """``event_components`` for ``n`` outcomes at once, column by column (same amounts and texts, tested).

    Returns one ``ComponentColumn`` per rule that can produce a component (rule order) and, per row, the
    ``MissingPrice`` that ``event_components`` would raise (``None`` when priced): a row with an error has no
    components (callers leave it pending). Amounts are unrounded ``Decimal``.
    """
    rules = list(rules)
    n = len(outcomes.kwh_avoided)
    forfeit_rule = any(r.kind == K_OPT_OUT_PENALTY and r.opt_out_consequence == C_FORFEIT_EVENT for r in rules)
    forfeits = [forfeit_rule and bool(o) for o in outcomes.opted_out]
    errors: list[MissingPrice | None] = [None] * n
    columns: list[ComponentColumn] = []
    charges = outcomes.charges_negative_performance
    for rule in rules:
        if rule.kind == K_PERFORMANCE_KWH:
            col = ComponentColumn(K_PERFORMANCE_KWH, rule.rule_id, ["kWh"] * n, [], [], list(outcomes.kwh_avoided),
                                  [])
            rate_text = format_rate(rule.amount)
            prices = None
            if rule.basis == B_PRICE_SET:
                prices = []
                for start in outcomes.interval_starts:
                    try:
                        prices.append((_price_for(rule, start), None))
                    except MissingPrice as exc:
                        prices.append((None, exc))
            for k in range(n):
                kwh = outcomes.kwh_avoided[k]
                if forfeits[k]:
                    col.amount.append(ZERO)
                    col.description.append("Forfeited: opted out of the event")
                    col.rate.append(None)
                    continue
                if not outcomes.reduces_load:
                    col.amount.append(ZERO)
                    col.description.append(_increase_text(kwh))
                    col.rate.append(None)
                    continue
                if prices is not None:
                    total = ZERO
                    for j, value in enumerate(outcomes.interval_kwh[k]):
                        price, exc = prices[j]
                        if exc is not None:
                            if errors[k] is None:
                                errors[k] = exc
                            break
                        total += value * price
                    rate = None
                    text = (f"{format_quantity(kwh, 'kWh', max_places=4)} avoided priced per interval "
                            f"({rule.price_set_name})")
                else:
                    total = kwh * rule.amount
                    rate = rule.amount
                    text = f"{format_quantity(kwh, 'kWh', max_places=4)} avoided x {rate_text}/kWh"
                if total < 0 and not charges:
                    text += (f" = {format_money(total)}, negative: pays $0 (program does not charge negative "
                             "performance)")
                    total = ZERO
                col.amount.append(total)
                col.description.append(text)
                col.rate.append(rate)
            columns.append(col)
        elif rule.kind == K_PER_EVENT:
            col = ComponentColumn(K_PER_EVENT, rule.rule_id, [], [], [], [], [rule.amount] * n)
            rate_text = format_rate(rule.amount)
            cache: dict[EnrolledCapacity, tuple[Decimal, str]] = {}
            for k in range(n):
                cap = outcomes.capacity[k]
                qu = cache.get(cap)
                if qu is None:
                    qu = cache[cap] = basis_quantity(rule.basis, cap)
                qty, unit = qu
                col.quantity.append(qty)
                col.unit.append(unit)
                if forfeits[k]:
                    col.amount.append(ZERO)
                    col.description.append("Forfeited: opted out of the event")
                elif not outcomes.responded[k]:
                    col.amount.append(ZERO)
                    col.description.append("Device did not respond: no participation payment")
                else:
                    fraction = outcomes.fraction[k]
                    col.amount.append(rule.amount * qty * fraction)
                    col.description.append(f"{rate_text}{' per ' + unit if unit else ''} x "
                                           f"{qty if unit else 1} x participation "
                                           f"{format_quantity(fraction, places=4, trim=True)} of the event")
            columns.append(col)
        elif rule.kind == K_OPT_OUT_PENALTY and rule.opt_out_consequence == C_PENALTY:
            hit = [bool(o) for o in outcomes.opted_out]
            columns.append(ComponentColumn(
                K_OPT_OUT_PENALTY, rule.rule_id, ["opt-out"] * n, [-rule.amount if h else None for h in hit],
                [f"Opt-out penalty {format_money(rule.amount)}"] * n, [ONE] * n, [rule.amount] * n))
    return columns, errors
