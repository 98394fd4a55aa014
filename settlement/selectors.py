"""Settlement read path: querysets with the joins their lists need (shared by API, admin and pages)."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import BillCreditExport, CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine


def batch_list() -> QuerySet[SettlementBatch]:
    return SettlementBatch.objects.select_related("program", "event", "season")


def event_settlement_list() -> QuerySet[EventSettlement]:
    # The model's ordering ("-event_day", "event", "id") expands "event" to the event's own ordering: a sort of the
    # whole table through the join with events. Ordering by the event's id keeps events grouped, without the join.
    return EventSettlement.objects.select_related("event", "program", "account", "service_point", "device",
                                                  "enrollment").order_by("-event_day", "-event_id", "id")


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
