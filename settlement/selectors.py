"""Settlement read path: querysets with the joins their lists need (shared by API, admin and pages)."""

from __future__ import annotations

from django.db.models import QuerySet

from cpm.base.errors import ConflictError
from programs.models import Season

from .models import BillCreditExport, CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine


def batch_list() -> QuerySet[SettlementBatch]:
    # The event's program too: an event is named in its program's zone (the admin's list_select_related does not
    # apply to a queryset that already selects related rows).
    return SettlementBatch.objects.select_related("program", "event", "event__program", "season")


def event_settlement_list() -> QuerySet[EventSettlement]:
    # The model's ordering ("-event_day", "event", "id") expands "event" to the event's own ordering: a sort of the
    # whole table through the join with events. Ordering by the event's id keeps events grouped, without the join.
    # The event's program too: an event is named in its program's zone.
    return EventSettlement.objects.select_related("event", "event__program", "program", "account", "service_point",
                                                  "device", "enrollment").order_by("-event_day", "-event_id", "id")


def event_settlement_get(pk: int) -> EventSettlement:
    return event_settlement_list().prefetch_related("lines").get(pk=pk)


def customer_settlement_list() -> QuerySet[CustomerSettlement]:
    """Newest first (primary key: an index scan; the model's ordering would sort every settlement through the
    account join)."""
    return (CustomerSettlement.objects.select_related("account", "program", "season", "export_batch")
            .order_by("-pk"))


def settlement_line_list() -> QuerySet[SettlementLine]:
    return SettlementLine.objects.select_related("account", "program", "service_point", "event_settlement",
                                                 "customer_settlement")


def export_list() -> QuerySet[BillCreditExport]:
    return BillCreditExport.objects.select_related("program").defer("content")


def event_settlement_days(inputs: dict) -> list[tuple[str, str]]:
    """``[(ISO local date, reason)]`` of the candidate days the baseline engine looked at for an event settlement,
    most recent first (reasons as ``baselines.REASONS``: selected, day_type, holiday, event_day, missing_data, ...),
    expanded from the compact ``inputs["day_reasons"]`` (one reason code per candidate day from
    ``inputs["first_candidate_day"]`` backwards). Days past the window (not reached) are left out."""
    import datetime as dt

    from .baselines import R_NOT_REACHED, REASONS

    codes, first = inputs.get("day_reasons") or "", inputs.get("first_candidate_day")
    if not first:
        return []
    day0 = dt.date.fromisoformat(first)
    return [((day0 - dt.timedelta(days=i)).isoformat(), REASONS[int(c)]) for i, c in enumerate(codes)
            if int(c) != R_NOT_REACHED]


def abnormal_day_list() -> QuerySet:
    from .models import AbnormalDay

    return AbnormalDay.objects.select_related("service_point", "program")


def net_metered_ids(service_point_ids) -> set[int]:
    """The service points flagged net metered among sorted ``service_point_ids`` (read as a range). One query."""
    from devices.models import ServicePoint

    ids = list(service_point_ids)
    if not ids:
        return set()
    wanted = set(ids)
    return {pk for pk in ServicePoint.objects.filter(pk__gte=ids[0], pk__lte=ids[-1], net_metered=True)
            .values_list("pk", flat=True).order_by() if pk in wanted}


def _network_places(ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """``{service point pk: (feeder, substation, territory)}`` of its premise, for sorted ``ids`` (a range)."""
    from devices.models import ServicePoint

    wanted = set(ids)
    return {pk: (feeder or "", sub or "", terr or "") for pk, feeder, sub, terr in
            ServicePoint.objects.filter(pk__gte=ids[0], pk__lte=ids[-1]).values_list(
                "pk", "premise__feeder", "premise__substation", "premise__service_territory")
            .order_by() if pk in wanted}


def recorded_abnormal_days(*, program, service_point_ids, first_day, last_day) -> dict[int, dict]:
    """``{service point pk: {local date: reason text}}`` of the abnormal days recorded for sorted
    ``service_point_ids`` between ``first_day`` and ``last_day`` (inclusive) in ``program``: their own, their
    premise's feeder, substation or territory, and the program's. One query (the table is small: days are recorded
    by people or imports), and one more for the service points' places when a feeder, substation or territory day
    is recorded in the span."""
    from django.db.models import Q

    from .choices import AbnormalDayScope as S
    from .models import AbnormalDay

    ids = list(service_point_ids)
    if not ids:
        return {}
    rows = list(AbnormalDay.objects.filter(day__gte=first_day, day__lte=last_day).filter(
        Q(scope=S.PROGRAM, program=program) | Q(scope=S.SERVICE_POINT, service_point_id__gte=ids[0],
                                                service_point_id__lte=ids[-1])
        | Q(scope__in=[S.FEEDER, S.SUBSTATION, S.TERRITORY])).values_list(
        "scope", "service_point_id", "network_id", "day", "kind", "reason").order_by("day", "id"))
    out: dict[int, dict] = {}
    if not rows:
        return out
    wanted = set(ids)
    by_net: dict[tuple[str, str], list] = {}
    for scope, sp, net, day, kind, reason in rows:
        text = f"{kind} ({'program' if scope == S.PROGRAM else scope.replace('_', ' ')}"
        text += f" {net}): {reason}" if net else f"): {reason}"
        if scope == S.PROGRAM:
            for pk in ids:
                out.setdefault(pk, {}).setdefault(day, text)
        elif scope == S.SERVICE_POINT:
            if sp in wanted:
                out.setdefault(sp, {}).setdefault(day, text)
        else:
            by_net.setdefault((str(scope), net), []).append((day, text))
    if by_net:
        for pk, (feeder, sub, terr) in _network_places(ids).items():
            for key in ((S.FEEDER.value, feeder), (S.SUBSTATION.value, sub), (S.TERRITORY.value, terr)):
                for day, text in by_net.get(key, ()) if key[1] else ():
                    out.setdefault(pk, {}).setdefault(day, text)
    return out


# Kinds priced per event (``event_settlement``) and per account and period (``customer_settlement``).
_EVENT_KINDS = {"performance_kwh", "per_event", "opt_out_penalty"}
_CUSTOMER_KINDS = {"enrollment_bonus", "monthly", "seasonal", "performance_kw", "opt_out_penalty", "season_cap"}


def incentive_rule_changing_receiver(sender, *, rule, uses, **kwargs) -> None:
    """``programs.signals.incentive_rule_changing``: refuse (``ConflictError``, code ``incentive_rule_settled``)
    adding, changing or deleting an incentive rule once a settlement of its program has been priced with it (an event
    settlement on a day of the rule's season, or any season for a rule of every season, for the kinds priced per
    event; a customer settlement of that season for the others): a recalculation would reprice settled money."""
    for kind, season_id in uses:
        season = Season.objects.filter(pk=season_id).first() if season_id else None
        if kind in _EVENT_KINDS:
            settled = EventSettlement.objects.filter(program_id=rule.program_id)
            if season is not None:
                settled = settled.filter(event_day__gte=season.start_date, event_day__lte=season.end_date)
            count = settled.count()
            if count:
                first = settled.order_by("event_day", "pk").values("event_id", "event_day").first()
                _refuse_settled(rule, f"{count} event settlement{'s' if count != 1 else ''} (the first of event "
                                      f"#{first['event_id']} on {first['event_day'].isoformat()})")
        if kind in _CUSTOMER_KINDS:
            settled = CustomerSettlement.objects.filter(program_id=rule.program_id)
            if season is not None:
                settled = settled.filter(period_start__lte=season.end_date, period_end__gt=season.start_date)
            count = settled.count()
            if count:
                first = settled.order_by("period_start", "pk").values("pk", "period_start").first()
                _refuse_settled(rule, f"{count} customer settlement{'s' if count != 1 else ''} (the first "
                                      f"#{first['pk']} from {first['period_start'].isoformat()})")


def _refuse_settled(rule, what: str) -> None:
    if rule.pk is None:
        raise ConflictError(f"A new incentive rule ({rule.get_kind_display()}) of program {rule.program.code} would "
                            f"reprice {what} already settled when they are recalculated. Add it for a later "
                            "season instead.", code="incentive_rule_settled")
    raise ConflictError(f"Incentive rule #{rule.pk} ({rule.get_kind_display()}) of program {rule.program.code} has "
                        f"already priced {what}; changing or deleting it would reprice them when they are "
                        "recalculated. Add a rule for a later season instead.", code="incentive_rule_settled")
