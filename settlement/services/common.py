"""Shared steps of the settlement write path: the program's incentive rules and enrolled capacity as the engine
wants them, key ranges of chunks, and the audit of bulk changes (one ``AuditEntry`` per row, in one insert)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db.models import Q

from cpm.base.audit import audit_write
from enrollments.choices import EnrollmentStatus
from enrollments.models import ProgramSubscription
from programs.models import IncentiveRule, IntervalPrice, Program, Season

from .. import incentives as inc
from ..choices import CustomerSettlementStatus, EventSettlementStatus

ES = EventSettlementStatus
CS = CustomerSettlementStatus
ENROLLED_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.SUSPENDED, EnrollmentStatus.UNENROLLED)
Q4 = Decimal("0.0001")


def audit_rows(*, model, rows: Iterable[tuple], now: dt.datetime, actor: Any, action: str = "status_change",
               code: str = "") -> None:
    """One audit entry per row ``(pk, from_status, to_status, reason)`` of a bulk change
    (``cpm.base.audit.audit_write``: code ``<entity>.<to_status>`` unless given, the actor, the reason), written
    as rows in one insert (COPY on PostgreSQL) in the caller's transaction."""
    audit_write(model=model, rows=rows, now=now, actor=actor, action=action, code=code)


def chunks(keys: list[int], size: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) key ranges of ``size`` sorted distinct keys each."""
    return [(keys[i], keys[min(i + size, len(keys)) - 1]) for i in range(0, len(keys), size)]


def rule_specs(program: Program, *, kinds, on_day: dt.date | None = None, season: Season | None = None,
               price_window: tuple[dt.datetime, dt.datetime] | None = None) -> list[inc.RuleSpec]:
    """The program's incentive rules of ``kinds`` in effect (rule season empty, or the season of ``on_day`` /
    equal to ``season``) as ``incentives.RuleSpec``; price-set prices are loaded for ``price_window`` (UTC)."""
    rules = list(IncentiveRule.objects.filter(program=program, kind__in=kinds).select_related("season", "price_set")
                 .order_by("kind", "id"))
    out = []
    for r in rules:
        if r.season_id is not None:
            if season is not None and r.season_id != season.pk:
                continue
            if on_day is not None and not r.season.contains(on_day):
                continue
        prices = None
        if r.price_set_id and price_window:
            prices = dict(IntervalPrice.objects.filter(
                price_set_id=r.price_set_id, interval_start__gte=price_window[0] - dt.timedelta(hours=1),
                interval_start__lt=price_window[1]).values_list("interval_start", "price_per_kwh"))
            prices = {k.astimezone(dt.UTC): v for k, v in prices.items()}
        out.append(inc.RuleSpec(
            rule_id=r.pk, kind=r.kind, basis=r.basis, amount=r.amount, prices=prices,
            price_interval_minutes=r.price_set.interval_minutes if r.price_set_id else 60,
            price_set_name=r.price_set.name if r.price_set_id else "", top_percent_events=r.top_percent_events,
            opted_out_counts_zero=r.opted_out_counts_zero, min_participation_share=r.min_participation_share,
            max_opt_outs=r.max_opt_outs, season_enrollment=r.season_enrollment,
            requires_no_skipped_event=r.requires_no_skipped_event,
            opt_out_consequence=r.opt_out_consequence, description=r.description))
    return out


def enrolled_capacity(enrollment_ids: list[int], *, start: dt.date, end: dt.date) -> dict[int, inc.EnrolledCapacity]:
    """Devices subscribed per enrollment in local dates ``[start, end)``: the most subscribed AT ONCE on any day of
    the period (count, kW, usable kWh, each its own maximum), not every subscription that overlapped the period.

    A replaced device (``enrollment_replace_device``: the old subscription ends the day the new one starts) is one
    device: Austin Energy Power Partner pays "$50 one-time per thermostat" and "$25 per year per thermostat ... that
    stays enrolled" (shared/data/programs/real-programs.json, id ``austin-energy-power-partner``); a thermostat
    replaced in July is still one thermostat ($75.00, not $150.00). Two devices subscribed together are two.
    Subscriptions are half-open ``[start_date, end_date)``."""
    rows: dict[int, list] = defaultdict(list)
    subs = ProgramSubscription.objects.filter(enrollment_id__any=enrollment_ids, device__isnull=False,
                                              start_date__lt=end).filter(
        Q(end_date__isnull=True) | Q(end_date__gt=start)).values_list(
        "enrollment_id", "start_date", "end_date", "device__capacity_kw", "device__usable_energy_kwh")
    for enrollment_id, first, stop, kw, kwh in subs:
        rows[enrollment_id].append((max(first, start), min(stop or end, end), Decimal(kw or 0), Decimal(kwh or 0)))
    out = {}
    for enrollment_id, subs_of in rows.items():
        best = [0, Decimal(0), Decimal(0)]
        # The set subscribed at once changes only on a subscription's first day: check each of them.
        for day in {first for first, _, _, _ in subs_of}:
            on = [r for r in subs_of if r[0] <= day < r[1]]
            best[0] = max(best[0], len(on))
            best[1] = max(best[1], sum((r[2] for r in on), Decimal(0)))
            best[2] = max(best[2], sum((r[3] for r in on), Decimal(0)))
        out[enrollment_id] = inc.EnrolledCapacity(best[0], best[1], best[2])
    return out
