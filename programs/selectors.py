"""Read path of the programs app, with the joins each caller needs (API, admin, later apps).

Local dates are calendar dates in the program's IANA zone (``Program.time_zone``).
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Prefetch, Q, QuerySet

from cpm.base.errors import NotFound

from .choices import ProgramStatus
from .models import (
    IncentiveRule,
    IntervalPriceSet,
    MutualExclusion,
    ParticipationRule,
    Program,
    QualificationQuestion,
    Season,
)


def program_list(*, with_children: bool = True) -> QuerySet[Program]:
    """All programs; with ``with_children`` their seasons, rules, incentives and questions are prefetched
    (a constant number of queries whatever the number of programs)."""
    qs = Program.objects.all()
    if with_children:
        qs = qs.prefetch_related(
            Prefetch("seasons", queryset=Season.objects.order_by("start_date")),
            Prefetch("participation_rules", queryset=ParticipationRule.objects.order_by("effective_from")),
            Prefetch("incentive_rules", queryset=IncentiveRule.objects.select_related("season", "price_set")),
            Prefetch("questions", queryset=QualificationQuestion.objects.order_by("position", "id")),
        )
    return qs


def program_get(*, pk: int) -> Program:
    """One program with its children; raises ``NotFound``."""
    try:
        return program_list().get(pk=pk)
    except Program.DoesNotExist as exc:
        raise NotFound(f"Program {pk} does not exist.") from exc


def active_programs() -> QuerySet[Program]:
    """Programs that take enrollments and events now (status ACTIVE)."""
    return Program.objects.filter(status=ProgramStatus.ACTIVE)


def _prefetched(program: Program, name: str):
    cache = getattr(program, "_prefetched_objects_cache", {})
    return cache.get(name)


def season_for(program: Program, local_date: dt.date) -> Season | None:
    """The program's season containing ``local_date`` (seasons never overlap), or None. Uses prefetched seasons."""
    seasons = _prefetched(program, "seasons")
    if seasons is not None:
        return next((s for s in seasons if s.start_date <= local_date <= s.end_date), None)
    return program.seasons.filter(start_date__lte=local_date, end_date__gte=local_date).first()


def participation_rule_for(program: Program, local_date: dt.date) -> ParticipationRule | None:
    """The participation rule in effect on ``local_date``: the one with the latest ``effective_from`` on or
    before it; None before the first rule. Uses prefetched rules."""
    rules = _prefetched(program, "participation_rules")
    if rules is not None:
        in_effect = [r for r in rules if r.effective_from <= local_date]
        return max(in_effect, key=lambda r: r.effective_from, default=None)
    return program.participation_rules.filter(effective_from__lte=local_date).order_by("-effective_from").first()


def incentive_rules_for(program: Program, season: Season | None = None) -> list[IncentiveRule]:
    """Incentive rules that apply in ``season``: those of that season plus those for every season (season empty)."""
    rules = _prefetched(program, "incentive_rules")
    if rules is None:
        rules = list(program.incentive_rules.select_related("price_set", "season"))
    return [r for r in rules if r.season_id is None or (season is not None and r.season_id == season.pk)]


def exclusive_program_ids(program: Program | int) -> set[int]:
    """Ids of the programs declared mutually exclusive with ``program`` (either side of the stored pair)."""
    pk = program.pk if isinstance(program, Program) else program
    pairs = MutualExclusion.objects.filter(Q(program_a_id=pk) | Q(program_b_id=pk)).values_list("program_a_id",
                                                                                                 "program_b_id")
    return {b if a == pk else a for a, b in pairs}


def mutual_exclusion_list() -> QuerySet[MutualExclusion]:
    return MutualExclusion.objects.select_related("program_a", "program_b").order_by("program_a_id", "program_b_id")


def price_set_list(*, with_prices: bool = False) -> QuerySet[IntervalPriceSet]:
    qs = IntervalPriceSet.objects.select_related("program").order_by("program__code", "name")
    return qs.prefetch_related("prices") if with_prices else qs


def price_for(price_set: IntervalPriceSet, instant: dt.datetime):
    """$/kWh of the interval containing UTC ``instant`` (None if the set has no such interval)."""
    start = instant - dt.timedelta(minutes=price_set.interval_minutes)
    price = price_set.prices.filter(interval_start__gt=start, interval_start__lte=instant).order_by(
        "-interval_start").first()
    return price.price_per_kwh if price else None
