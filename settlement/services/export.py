"""Bill-credit export: approved customer settlements become one deterministic CSV batch for billing (each settlement
EXPORTED, audited ``customer_settlement.exported``; the batch ``bill_credits.exported``); billing acknowledges it."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import F, Sum

from cpm.base.audit import actor_label, audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError
from cpm.base.money import ZERO, format_money
from cpm.base.states import transition
from enrollments.models import ServiceAgreement
from programs.models import Program

from ..choices import EXPORT_TRANSITIONS, ExportStatus
from ..models import BillCreditExport, CustomerSettlement, SettlementLine
from .common import CS, audit_rows

EXPORT_COLUMNS = ["batch_id", "line_id", "account_number", "service_agreement_id", "service_point_id",
                  "program_code", "period_kind", "period_start", "period_end", "line_code", "amount",
                  "customer_settlement_id", "event_settlement_id", "reverses_line_id", "description"]


def bill_credit_export_render(export: BillCreditExport) -> str:
    """The CSV of an export batch, deterministic: same batch, same bytes (ordered by settlement and line id; no
    clock values). One row per settlement line; reversal lines are negative and name the line they reverse."""
    lines = list(SettlementLine.objects.filter(customer_settlement__export_batch=export).exclude(amount=0)
                 .select_related("account", "program", "service_point", "customer_settlement")
                 .annotate(event_day=F("event_settlement__event_day")).order_by("customer_settlement_id", "id"))
    pairs = {(x.account_id, x.service_point_id) for x in lines if x.service_point_id}
    agreements: dict[tuple[int, int], list[ServiceAgreement]] = defaultdict(list)
    if pairs:
        for sa in ServiceAgreement.objects.filter(account_id__in={a for a, _ in pairs},
                                                  service_point_id__in={s for _, s in pairs}).order_by("start_date"):
            agreements[(sa.account_id, sa.service_point_id)].append(sa)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for x in lines:
        cs = x.customer_settlement
        agreement = _agreement_of(x, agreements.get((x.account_id, x.service_point_id), []))
        writer.writerow([export.pk, x.pk, x.account.account_number, agreement,
                         x.service_point.service_point_id if x.service_point_id else "", x.program.code,
                         cs.period_kind, cs.period_start.isoformat(), cs.period_end.isoformat(), x.line_code,
                         f"{x.amount:.2f}", cs.pk, x.event_settlement_id or "", x.reverses_id or "",
                         _one_line(x.description)])
    return buf.getvalue()


_BREAKS = re.compile(r"[ \t]*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+[ \t]*")


def _one_line(text: str) -> str:
    """A description on one line of the file: a line break (from a rule's description) reads as one space, so
    every credit is one line of the file, as billing reads it."""
    return _BREAKS.sub(" ", text).strip()


def _agreement_of(line: SettlementLine, agreements: list[ServiceAgreement]) -> str:
    """The service agreement billing posts ``line`` to (its account's at its service point; ``agreements`` in start
    order): the latest one overlapping the settlement's period; else, for an event line, the one in effect on the
    event's day (a late credit of a customer who moved out: no agreement of theirs overlaps the period that carries
    it); else the latest one begun before the period ended. Empty when the account never had one there."""
    cs = line.customer_settlement
    for sa in reversed(agreements):
        if sa.start_date < cs.period_end and (sa.end_date is None or sa.end_date > cs.period_start):
            return sa.agreement_id
    day = getattr(line, "event_day", None)
    if day is not None:
        for sa in reversed(agreements):
            if sa.start_date <= day and (sa.end_date is None or sa.end_date > day):
                return sa.agreement_id
    earlier = [sa for sa in agreements if sa.start_date < cs.period_end]
    return earlier[-1].agreement_id if earlier else ""


@use_case("bill_credits.export", Cap.EXPORT_CREDITS)
def bill_credit_export_create(*, now: dt.datetime, actor: Any, program: Program | None = None,
                              settlements=None) -> BillCreditExport | None:
    """Export every APPROVED customer settlement not yet exported (optionally of one program, or only among
    ``settlements``) as one batch file;
    they become EXPORTED. Returns None when there is nothing to export, so exporting twice never duplicates a
    credit. The file content is stored: pulling the batch again returns the same bytes."""
    with transaction.atomic():
        qs = CustomerSettlement.objects.filter(status=CS.APPROVED, export_batch__isnull=True)
        if program is not None:
            qs = qs.filter(program=program)
        if settlements is not None:
            qs = qs.filter(pk__in=[cs.pk for cs in settlements])
        ids = list(qs.select_for_update().order_by("pk").values_list("pk", flat=True))
        if not ids:
            return None
        export = BillCreditExport.objects.create(program=program, file_name="", content="", sha256="",
                                                 created_at=now, created_by_label=actor_label(actor)[:150])
        export.file_name = f"bill-credits-{export.pk:06d}.csv"
        changed = CustomerSettlement.objects.filter(pk__in=ids, status=CS.APPROVED).update(
            status=CS.EXPORTED, export_batch=export, exported_at=now, updated_at=now)
        if changed != len(ids):
            raise ConflictError("Customer settlements changed during export; try again.")
        reason = f"exported in {export.file_name}"
        audit_rows(model=CustomerSettlement, rows=[(pk, CS.APPROVED, CS.EXPORTED, reason) for pk in ids], now=now,
                   actor=actor)
        content = bill_credit_export_render(export)
        totals = SettlementLine.objects.filter(customer_settlement__export_batch=export).exclude(amount=0).aggregate(
            s=Sum("amount"))
        export.content = content
        export.sha256 = hashlib.sha256(content.encode()).hexdigest()
        export.line_count = content.count("\n") - 1  # one line per credit (``_one_line``), after the header
        export.settlement_count = len(ids)
        export.total_amount = totals["s"] or ZERO
        export.save()
        audit_record(obj=export, action="export", now=now, actor=actor, code="bill_credits.exported",
                     reason=f"{export.settlement_count} settlements, {export.line_count} lines, "
                            f"{format_money(export.total_amount)}")
    return export


@use_case("bill_credits.acknowledge", Cap.PULL_BILL_CREDITS)
def bill_credit_export_acknowledge(*, export: BillCreditExport, now: dt.datetime,
                                   actor: Any) -> BillCreditExport:
    """Billing confirms it loaded the batch. Acknowledging twice changes nothing."""
    with transaction.atomic():
        export = BillCreditExport.objects.select_for_update().get(pk=export.pk)
        if export.status == ExportStatus.ACKNOWLEDGED:
            return export
        transition(obj=export, to=ExportStatus.ACKNOWLEDGED, allowed=EXPORT_TRANSITIONS, now=now, actor=actor,
                   reason="acknowledged by billing",
                   extra_updates={"acknowledged_at": now, "acknowledged_by_label": actor_label(actor)[:150]})
    return export


@use_case("bill_credits.reject", Cap.PULL_BILL_CREDITS)
def bill_credit_export_reject(*, export: BillCreditExport, reason: str, now: dt.datetime,
                              actor: Any) -> BillCreditExport:
    """Billing could not load the batch (``reason`` required): the batch becomes REJECTED, its file kept as it was
    sent; its customer settlements go back from EXPORTED to APPROVED (no batch, audited
    ``customer_settlement.export_rejected`` naming the file and the reason) so that the next export sends their
    credits once, in a new batch. Rejecting a rejected batch changes nothing; an acknowledged one cannot be rejected
    (``TransitionNotAllowed``: its credits are on bills; a correction is a reversal)."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainValidationError({"reason": ["A reason is required to reject an export batch."]})
    with transaction.atomic():
        export = BillCreditExport.objects.select_for_update().get(pk=export.pk)
        if export.status == ExportStatus.REJECTED:
            return export
        ids = list(CustomerSettlement.objects.select_for_update().filter(export_batch=export, status=CS.EXPORTED)
                   .order_by("pk").values_list("pk", flat=True))
        transition(obj=export, to=ExportStatus.REJECTED, allowed=EXPORT_TRANSITIONS, now=now, actor=actor,
                   reason=f"rejected by billing: {reason}"[:500],
                   changes={"settlements_approved_again": len(ids)})
        CustomerSettlement.objects.filter(pk__in=ids).update(status=CS.APPROVED, export_batch=None, exported_at=None,
                                                             updated_at=now)
        why = f"{export.file_name} rejected by billing: {reason}"[:500]
        audit_rows(model=CustomerSettlement, rows=[(pk, CS.EXPORTED, CS.APPROVED, why) for pk in ids], now=now,
                   actor=actor, code="customer_settlement.export_rejected")
    return export


# --------------------------------------------------------------------------------------------------- tick
