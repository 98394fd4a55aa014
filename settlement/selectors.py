"""Settlement read path: querysets with the joins their lists need (shared by API, admin and pages)."""

from __future__ import annotations

from django.db.models import QuerySet

from programs.choices import IncentiveKind
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
_EVENT_KINDS = {IncentiveKind.PERFORMANCE_KWH, IncentiveKind.PER_EVENT, IncentiveKind.OPT_OUT_PENALTY}
_CUSTOMER_KINDS = {IncentiveKind.ENROLLMENT_BONUS, IncentiveKind.MONTHLY, IncentiveKind.SEASONAL,
                   IncentiveKind.PERFORMANCE_KW, IncentiveKind.OPT_OUT_PENALTY, IncentiveKind.SEASON_CAP}


def settlements_priced_with(*, program_id: int, uses) -> str | None:
    """What an incentive rule of program ``program_id`` has priced already, in words, or None: ``uses`` are
    ``(kind, season id or None)`` pairs (None: every season). A kind priced per event counts the event settlements on
    a day of the season (of any day for None); the other kinds count the customer settlements of a period overlapping
    the season. The first settled kind found is described ("3 event settlements (the first of event #7 on
    2026-07-14)")."""
    for kind, season_id in uses:
        season = Season.objects.filter(pk=season_id).first() if season_id else None
        for kinds, model, in_season, first_by, describe in (
            (_EVENT_KINDS, EventSettlement,
             lambda qs, s: qs.filter(event_day__gte=s.start_date, event_day__lte=s.end_date), ("event_day", "pk"),
             lambda n, r: f"{n} event settlement{'s' if n != 1 else ''} (the first of event #{r.event_id} on "
                          f"{r.event_day.isoformat()})"),
            (_CUSTOMER_KINDS, CustomerSettlement,
             lambda qs, s: qs.filter(period_start__lte=s.end_date, period_end__gt=s.start_date),
             ("period_start", "pk"),
             lambda n, r: f"{n} customer settlement{'s' if n != 1 else ''} (the first #{r.pk} from "
                          f"{r.period_start.isoformat()})"),
        ):
            if kind not in kinds:
                continue
            settled = model.objects.filter(program_id=program_id)
            if season is not None:
                settled = in_season(settled, season)
            count = settled.count()
            if count:
                return describe(count, settled.order_by(*first_by).first())
    return None
