"""Settlement write path: event settlements, customer settlements, bill-credit exports and the batches that run them.

Every service takes ``now`` and ``actor`` and is idempotent: running it twice with the same data changes nothing.
Money: components are computed in full precision (``settlement.incentives``) and rounded once per line with
``cpm.base.money.round_money``. Corrections never edit posted money (see ``settlement.models.credits``: "-old, +new").
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
from collections import defaultdict
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Q, Subquery, Sum

from cpm.base.audit import actor_label, audit_record
from cpm.base.errors import ConflictError, DomainValidationError
from cpm.base.money import ZERO, round_money
from cpm.base.states import check_transition, transition
from cpm.base.timeutils import local_date, local_midnight, zone
from cpm.models import AuditEntry
from enrollments.choices import EnrollmentStatus
from enrollments.models import Account, Enrollment, ProgramSubscription, ServiceAgreement
from events.choices import COUNTED_EVENT_STATUSES, EventStatus, ParticipationStatus
from events.models import Event, Participation
from programs.choices import IncentiveBasis, IncentiveKind, OptOutConsequence, SettlementTiming
from programs.models import IncentiveRule, IntervalPrice, Program, Season

from . import baselines as bl
from . import incentives as inc
from . import measurement as meas
from .choices import (
    BATCH_TRANSITIONS,
    CUSTOMER_SETTLEMENT_TRANSITIONS,
    EVENT_SETTLEMENT_TRANSITIONS,
    EXPORT_TRANSITIONS,
    LINE_CODES,
    BatchKind,
    BatchStatus,
    CustomerSettlementStatus,
    EventSettlementStatus,
    ExportStatus,
    LineKind,
    MeasurementStatus,
    PeriodKind,
)
from .models import BillCreditExport, CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine

log = logging.getLogger(__name__)

ES = EventSettlementStatus
CS = CustomerSettlementStatus
ENROLLED_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.SUSPENDED, EnrollmentStatus.UNENROLLED)
Q4 = Decimal("0.0001")
NOT_RESPONDED = (ParticipationStatus.NON_RESPONSIVE, ParticipationStatus.FAILED)


# --------------------------------------------------------------------------------------------------- helpers


def _bulk_audit(*, model, pks, from_status: str, to_status: str, now, actor, reason: str) -> None:
    """One audit entry per row for a bulk status change (same content as ``cpm.base.audit.audit_record``)."""
    user = actor if getattr(actor, "pk", None) is not None and hasattr(actor, "get_username") else None
    label = actor_label(actor)[:150]
    AuditEntry.objects.bulk_create([
        AuditEntry(at=now, actor=user, actor_label=label, action=AuditEntry.Action.STATUS_CHANGE,
                   object_type=model._meta.label_lower, object_id=str(pk),
                   object_repr=f"{model._meta.verbose_name.capitalize()} #{pk}"[:200], from_status=from_status,
                   to_status=to_status, reason=reason) for pk in pks], batch_size=2000)


def _audit_rows(*, model, rows, now, actor) -> None:
    """Audit entries ``(pk, action, from_status, to_status, reason)`` in one insert (as
    ``cpm.base.audit.audit_record``)."""
    user = actor if getattr(actor, "pk", None) is not None and hasattr(actor, "get_username") else None
    label = actor_label(actor)[:150]
    _insert_objects(AuditEntry, [
        AuditEntry(at=now, actor=user, actor_label=label, action=action, object_type=model._meta.label_lower,
                   object_id=str(pk), object_repr=f"{model._meta.verbose_name.capitalize()} #{pk}"[:200],
                   from_status=frm, to_status=to, reason=reason, changes={})
        for pk, action, frm, to, reason in rows])


def _chunks(keys: list[int], size: int) -> list[tuple[int, int]]:
    """Inclusive (first, last) key ranges of ``size`` sorted distinct keys each."""
    return [(keys[i], keys[min(i + size, len(keys)) - 1]) for i in range(0, len(keys), size)]


def _enqueue_group(task, kwargs_list: list[dict]) -> None:
    """Send one task per chunk as a Celery group once the transaction commits."""
    from celery import group

    sigs = [task.si(**kw) for kw in kwargs_list]
    if sigs:
        transaction.on_commit(lambda: group(sigs).apply_async())


def batch_chunk_done(*, batch_id: int, now: dt.datetime, counts: dict[str, int] | None = None,
                     error: str | None = None) -> SettlementBatch:
    """Record one finished chunk (counters by conditional ``F()`` updates, safe across workers); the chunk that
    completes the batch moves it to COMPLETED (or COMPLETED_WITH_ERRORS)."""
    updates: dict[str, Any] = {"chunks_done": F("chunks_done") + 1}
    for key, value in (counts or {}).items():
        updates[f"items_{key}"] = F(f"items_{key}") + value
    with transaction.atomic():
        batch = SettlementBatch.objects.select_for_update().get(pk=batch_id)
        if error:
            batch.errors = [*batch.errors, error][-100:]
            updates["errors"] = batch.errors
        SettlementBatch.objects.filter(pk=batch_id).update(**updates)
        batch.refresh_from_db()
        if batch.chunks_done >= batch.chunks_total and batch.status == BatchStatus.RUNNING:
            final = BatchStatus.COMPLETED_WITH_ERRORS if (batch.errors or batch.items_failed) else BatchStatus.COMPLETED
            transition(obj=batch, to=final, allowed=BATCH_TRANSITIONS, now=now, actor="settlement",
                       reason=f"{batch.chunks_done} chunks done", extra_updates={"finished_at": now})
            transaction.on_commit(lambda: _refresh_statistics(batch.kind))
    return batch


# The tables a batch of each kind fills: their planner statistics are refreshed when it completes.
BATCH_TABLES = {BatchKind.EVENT: ("settlement_eventsettlement",),
                BatchKind.EVENT_RECALC: ("settlement_eventsettlement",),
                BatchKind.CUSTOMER: ("settlement_customersettlement", "settlement_settlementline"),
                BatchKind.SEASON: ("settlement_customersettlement", "settlement_settlementline")}


def _refresh_statistics(kind: str) -> None:
    """``ANALYZE`` the tables a completed batch filled (PostgreSQL; a sample, well under a second). A batch writes
    a settlement per participant at once; until autovacuum gets to the table, the planner would take its new rows
    for a handful and scan a whole program's settlements for every chunk of the next batch."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in BATCH_TABLES.get(kind, ()):
                cursor.execute(f"ANALYZE {table}")


def _start_batch(batch: SettlementBatch, *, chunks: int, items: int, now, actor) -> None:
    batch.chunks_total, batch.items_total = chunks, items
    batch.save(update_fields=["chunks_total", "items_total"])
    if chunks == 0:
        transition(obj=batch, to=BatchStatus.RUNNING, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                   extra_updates={"started_at": now})
        transition(obj=batch, to=BatchStatus.COMPLETED, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                   reason="nothing to settle", extra_updates={"finished_at": now})
    else:
        transition(obj=batch, to=BatchStatus.RUNNING, allowed=BATCH_TRANSITIONS, now=now, actor=actor,
                   reason=f"{chunks} chunks of at most {settings.CPM_CHUNK_SIZE}", extra_updates={"started_at": now})


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
            max_opt_outs=r.max_opt_outs, requires_no_skipped_event=r.requires_no_skipped_event,
            opt_out_consequence=r.opt_out_consequence, description=r.description))
    return out


def enrolled_capacity(enrollment_ids: list[int], *, start: dt.date, end: dt.date) -> dict[int, inc.EnrolledCapacity]:
    """Devices subscribed per enrollment at some time in local dates ``[start, end)``: count, kW, usable kWh."""
    acc: dict[int, list] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    subs = ProgramSubscription.objects.filter(enrollment_id__any=enrollment_ids, device__isnull=False,
                                              start_date__lt=end).filter(
        Q(end_date__isnull=True) | Q(end_date__gt=start)).values_list(
        "enrollment_id", "device__capacity_kw", "device__usable_energy_kwh")
    for enrollment_id, kw, kwh in subs:
        a = acc[enrollment_id]
        a[0] += 1
        a[1] += kw or 0
        a[2] += kwh or 0
    return {e: inc.EnrolledCapacity(a[0], a[1], a[2]) for e, a in acc.items()}


# --------------------------------------------------------------------------------------------------- event


def event_settle(*, event: Event, now: dt.datetime, actor: Any = None, recalculate: bool = False) -> SettlementBatch:
    """Settle a COMPLETED event: one ``EventSettlement`` per participation (except cancelled ones), computed in
    chunks of ``settings.CPM_CHUNK_SIZE`` service points by a Celery group; returns the batch with its progress.

    The first settlement of an event happens once (returns the existing EVENT batch); ``recalculate=True`` starts an
    EVENT_RECALC batch (new meter data or prices): unchanged settlements stay as they are, changed unapproved ones are
    updated, changed approved ones are re-opened (their reversal is posted when approved again).
    Raises ``ConflictError`` when the event is not completed.
    """
    from .tasks import settle_event_chunk

    if event.status != EventStatus.COMPLETED:
        raise ConflictError(f"Event {event.pk} ({event.name}) is {event.status}; only completed events are settled.",
                            field="event")
    kind = BatchKind.EVENT_RECALC if recalculate else BatchKind.EVENT
    if not recalculate:
        existing = SettlementBatch.objects.filter(kind=BatchKind.EVENT, event=event).first()
        if existing:
            return existing
    try:
        with transaction.atomic():
            batch = SettlementBatch.objects.create(kind=kind, event=event, program_id=event.program_id,
                                                   created_at=now, actor_label=actor_label(actor)[:150])
            sp_ids = list(Participation.objects.filter(event=event).exclude(status=ParticipationStatus.CANCELLED)
                          .order_by("service_point_id").values_list("service_point_id", flat=True).distinct())
            ranges = _chunks(sp_ids, settings.CPM_CHUNK_SIZE)
            items = Participation.objects.filter(event=event).exclude(status=ParticipationStatus.CANCELLED).count()
            audit_record(obj=batch, action="create", now=now, actor=actor,
                         reason=f"{kind} for event {event.pk}: {items} participations in {len(ranges)} chunks")
            _start_batch(batch, chunks=len(ranges), items=items, now=now, actor=actor)
            _enqueue_group(settle_event_chunk, [{"batch_id": batch.pk, "sp_first": a, "sp_last": b,
                                                 "now": now.isoformat()} for a, b in ranges])
    except IntegrityError:
        return SettlementBatch.objects.get(kind=BatchKind.EVENT, event=event)
    return batch


class _Part:
    """A participation as plain values (chunks of 5,000+ rows: no model instances)."""

    __slots__ = ("pk", "service_point_id", "device_id", "enrollment_id", "account_id", "status", "start", "end",
                 "opted_out_at")
    FIELDS = ("pk", "service_point_id", "device_id", "enrollment_id", "enrollment__account_id", "status", "start",
              "end", "opted_out_at")

    def __init__(self, row) -> None:
        (self.pk, self.service_point_id, self.device_id, self.enrollment_id, self.account_id, self.status,
         self.start, self.end, self.opted_out_at) = row

    minutes_participated = Participation.minutes_participated


class _Json(str):
    """JSON text already encoded (written as is by COPY; decoded for the ORM)."""


_DUMPS = json.dumps


def _num(value: float, digits: int):
    return None if value != value else round(value, digits)


def _day_fragments(m: meas.ChunkMeasurement) -> tuple[list[str], list[int], list[str]]:
    """Per distinct row of engine day reasons: the JSON fragment of ``selected_days`` + ``day_reasons`` and the
    explanation text of the selected days; returns (fragments, index per row, texts). Most service points of a chunk
    share a few patterns, so each is encoded once."""
    if m.day_reason is None or not len(m.participation_ids):
        return ['"selected_days": []'], [0] * len(m.participation_ids), [""]
    uniq, inverse = np.unique(m.day_reason, axis=0, return_inverse=True)
    fragments, texts = [], []
    for row in uniq:
        selected = [m.cand_days[d].isoformat() for d in np.flatnonzero(row == bl.R_SELECTED)]
        codes = "".join(str(int(c)) for c in row)
        fragments.append(f'"selected_days": {_DUMPS(selected)}, "day_reasons": "{codes}"')
        texts.append(f"{len(selected)} days, {selected[-1]} to {selected[0]}" if selected else "no days")
    return fragments, inverse.reshape(-1).tolist(), texts


def _settlement_rows(*, event: Event, parts: list[_Part], m: meas.ChunkMeasurement, rules: list[inc.RuleSpec],
                     capacity: dict[int, inc.EnrolledCapacity]) -> list[dict]:
    """Fields of the event settlement of each participation (``parts`` order) from the chunk's measurement and the
    rules: money through ``incentives.event_components_batch`` and rounded once per component
    (``cpm.base.money.round_money``); ``inputs`` and ``components`` as JSON text (``_Json``), built once per chunk where
    rows share them; a fingerprint of everything the settlement says."""
    program = event.program
    n = len(parts)
    event_minutes = (event.end - event.start).total_seconds() / 60.0
    fractions: dict[tuple, tuple[Decimal, float]] = {}
    fraction, minutes = [], []
    for p in parts:
        key = (p.start, p.end, p.opted_out_at)
        hit = fractions.get(key)
        if hit is None:
            mp = p.minutes_participated
            hit = fractions[key] = (inc.proration_fraction(mp, event_minutes), round(mp, 2))
        fraction.append(hit[0])
        minutes.append(hit[1])
    opted_out = [bool(p.opted_out_at) or p.status == ParticipationStatus.OPTED_OUT for p in parts]
    kwh = [Decimal(f"{v:.4f}") for v in m.kwh_avoided.tolist()]
    kw = [Decimal(f"{v:.4f}") for v in m.kw_drop_avg.tolist()]
    ok = m.ok.tolist()
    counted = m.counted.tolist()
    interval_kwh: list = []
    if any(r.basis == IncentiveBasis.PRICE_SET for r in rules):
        red = m.reduction_kwh.tolist()
        interval_kwh = [[Decimal(f"{v:.6f}") for v in red[k][:counted[k]]] for k in range(n)]
    outcomes = inc.EventOutcomes(
        kwh_avoided=kwh, fraction=fraction, opted_out=opted_out,
        responded=[p.status not in NOT_RESPONDED for p in parts],
        capacity=[capacity.get(p.enrollment_id, _NO_CAPACITY) for p in parts], interval_starts=m.starts,
        interval_kwh=interval_kwh, charges_negative_performance=program.charges_negative_performance)
    columns, errors = inc.event_components_batch(outcomes, rules)

    # Chunk-wide parts of the inputs.
    head = (f'{{"method": {_DUMPS(m.method)}, "baseline_params": {_DUMPS(program.baseline_params or {})}, '
            f'"interval_minutes": {m.interval_minutes}, "start": "{m.starts[0].isoformat() if m.starts else ""}", '
            f'"event_minutes": {round(event_minutes, 2)}, '
            f'"first_candidate_day": {_DUMPS(m.cand_days[0].isoformat() if m.cand_days else None)}, ')
    day_frag, day_index, day_text = _day_fragments(m)
    values = np.round(np.stack([m.baseline_kw, m.adjusted_baseline_kw, m.actual_kw, m.reduction_kwh], axis=1), 4)
    has_nan = np.isnan(values).any(axis=(1, 2)).tolist()
    values_list = values.tolist()
    adjustment = m.adjustment.tolist()
    timing_target = ES.DEFERRED if program.settlement_timing == SettlementTiming.SEASON_END else ES.CALCULATED
    is_device = m.method == meas.METHOD_DEVICE
    x_of_y = "" if is_device else f"{m.params['x']} of {m.params['y']}"
    out = []
    for k, p in enumerate(parts):
        note = m.detail[k] if not ok[k] else (str(errors[k]) if errors[k] is not None else "")
        comps = []
        if ok[k] and errors[k] is None:
            for col in columns:
                amount = col.amount[k]
                if amount is not None:
                    qty, rate = col.quantity[k], col.rate[k]
                    comps.append({"kind": col.kind, "amount": str(amount), "description": col.description[k],
                                  "quantity": None if qty is None else str(qty), "unit": col.unit[k],
                                  "rate": None if rate is None else str(rate), "rule_id": col.rule_id,
                                  "rounded": str(round_money(amount))})
        target = ES.PENDING if note else timing_target
        amount = sum((Decimal(c["rounded"]) for c in comps), ZERO)
        rows = values_list[k]
        if has_nan[k]:
            rows = [[None if v != v else v for v in r] for r in rows]
        adj = adjustment[k]
        inputs = _Json(
            f'{head}"baseline_kw": {_DUMPS(rows[0])}, "adjusted_baseline_kw": {_DUMPS(rows[1])}, '
            f'"actual_kw": {_DUMPS(rows[2])}, "reduction_kwh": {_DUMPS(rows[3])}, '
            f'"participated": [0, {counted[k]}], {day_frag[day_index[k]]}, '
            f'"adjustment": {_DUMPS(_num(adj, 6))}, "detail": {_DUMPS(m.detail[k])}, '
            f'"minutes_participated": {minutes[k]}, "participation_status": "{p.status}"}}')
        components = _Json(_DUMPS(comps))
        mstatus = MeasurementStatus.OK if ok[k] else MeasurementStatus.INSUFFICIENT_DATA
        if is_device:
            text = "Device telemetry (no load baseline): kWh avoided = metered device discharge in the event."
        else:
            text = (f"{m.method}: baseline = {x_of_y} similar days ({day_text[day_index[k]]}); day-of "
                    f"adjustment {'none' if adj != adj else f'{adj:.4f}'}.")
        text += (f" {kwh[k]} kWh avoided over {counted[k]} intervals of {m.interval_minutes} min; average kW drop "
                 f"{kw[k]} kW over the event window.")
        if opted_out[k]:
            text += (f" Opted out at {p.opted_out_at:%Y-%m-%d %H:%M}Z: participated {fraction[k]} of the event."
                     if p.opted_out_at else " Opted out.")
        if note:
            text += f" Pending: {note}."
        for c in comps:
            text += f" {c['kind']}: {c['description']} -> ${c['rounded']}."
        text += f" Total ${amount} ({target})."
        digest = hashlib.sha256(
            f"{target}|{mstatus}|{kwh[k]}|{kw[k]}|{fraction[k]}|{opted_out[k]}|{amount}|{components}|{inputs}"
            .encode()).hexdigest()
        out.append({"status": target, "measurement_status": mstatus, "method": m.method, "kwh_avoided": kwh[k],
                    "kw_drop_avg": kw[k], "participation_fraction": fraction[k], "opted_out": opted_out[k],
                    "amount": amount, "components": components, "inputs": inputs, "explanation": text,
                    "fingerprint": digest})
    return out


_NO_CAPACITY = inc.EnrolledCapacity()


def event_settle_chunk(*, batch: SettlementBatch, sp_first: int, sp_last: int, now: dt.datetime) -> dict[str, int]:
    """Settle the participations of the batch's event at service points ``sp_first..sp_last`` (inclusive ids).

    Creates missing settlements (COPY on PostgreSQL), leaves unchanged ones (same fingerprint) untouched, updates
    changed unapproved ones and re-opens changed approved ones (revision + 1, status back to CALCULATED/DEFERRED,
    audited). A constant number of queries whatever the chunk size. Returns counts.
    """
    event = Event.objects.select_related("program").get(pk=batch.event_id)
    program = event.program
    tz = zone(program.time_zone)
    event_day = local_date(event.start, tz)
    parts = [_Part(row) for row in Participation.objects.filter(
        event=event, service_point_id__gte=sp_first, service_point_id__lte=sp_last)
        .exclude(status=ParticipationStatus.CANCELLED).order_by("service_point_id", "id").values_list(*_Part.FIELDS)]
    counts = {"calculated": 0, "unchanged": 0, "corrected": 0, "pending": 0}
    if not parts:
        return counts
    measured = meas.measure_event(event=event, participations=parts, now=now)
    rules = rule_specs(program, kinds=[IncentiveKind.PERFORMANCE_KWH, IncentiveKind.PER_EVENT,
                                       IncentiveKind.OPT_OUT_PENALTY], on_day=event_day,
                       price_window=(event.start, event.end))
    capacity = {}
    if any(r.kind == IncentiveKind.PER_EVENT and r.basis in inc.CAPACITY_BASES for r in rules):
        capacity = enrolled_capacity(sorted({p.enrollment_id for p in parts}), start=event_day,
                                     end=event_day + dt.timedelta(days=1))
    existing = {pid: (pk, fingerprint, status) for pk, pid, fingerprint, status in EventSettlement.objects.filter(
        event=event, service_point_id__gte=sp_first, service_point_id__lte=sp_last).values_list(
        "pk", "participation_id", "fingerprint", "status")}
    records = _settlement_rows(event=event, parts=parts, m=measured, rules=rules, capacity=capacity)
    creates, changed = [], {}
    for p, fields in zip(parts, records, strict=True):
        if fields["status"] == ES.PENDING:
            counts["pending"] += 1
        known = existing.get(p.pk)
        if known is None:
            creates.append(dict(
                batch_id=batch.pk, event_id=event.pk, participation_id=p.pk, program_id=program.pk,
                enrollment_id=p.enrollment_id, account_id=p.account_id, service_point_id=p.service_point_id,
                device_id=p.device_id, revision=1, posted_amount=ZERO, approved_at=None,
                event_day=event_day, calculated_at=now, created_at=now, updated_at=now, **fields))
            counts["calculated"] += fields["status"] != ES.PENDING
        elif known[1] == fields["fingerprint"] or known[2] == ES.REVERSED:
            counts["unchanged"] += 1
        elif known[2] == ES.APPROVED and fields["status"] == ES.PENDING:
            counts["unchanged"] += 1  # corrected data became insufficient: approved money stays; reported
        else:
            changed[known[0]] = fields
    updates, reopened = [], defaultdict(list)
    for es in EventSettlement.objects.filter(pk__in=list(changed)) if changed else ():
        fields = changed[es.pk]
        if es.status == ES.APPROVED:
            es.revision += 1
            counts["corrected"] += 1
        else:
            counts["calculated"] += fields["status"] != ES.PENDING
        if es.status != fields["status"]:
            check_transition(allowed=EVENT_SETTLEMENT_TRANSITIONS, current=es.status, to=fields["status"],
                             label=str(es))
            reopened[(es.status, fields["status"])].append(es.pk)
        for key, value in fields.items():
            setattr(es, key, json.loads(value) if isinstance(value, _Json) else value)
        es.batch, es.calculated_at, es.updated_at = batch, now, now
        updates.append(es)
    with transaction.atomic():
        _insert(EventSettlement, creates)
        if updates:
            EventSettlement.objects.bulk_update(updates, [*records[0].keys(), "revision", "batch", "calculated_at",
                                                          "updated_at"], batch_size=1000)
        for (frm, to), pks in reopened.items():
            _bulk_audit(model=EventSettlement, pks=pks, from_status=frm, to_status=to, now=now, actor="settlement",
                        reason=f"recalculated by batch {batch.pk}"
                        + (" (correction after approval)" if frm == ES.APPROVED else ""))
    return counts


def _insert(model, rows: list[dict]) -> None:
    """Insert new rows given as ``{attname: value}`` (every concrete field but the primary key; JSON fields as
    Python values or ``_Json`` text): PostgreSQL COPY (fast for chunks of thousands of rows), ``bulk_create``
    elsewhere."""
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    json_fields = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**{k: json.loads(v) if isinstance(v, _Json) else v for k, v in row.items()})
                                   for row in rows], batch_size=1000)
        return
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    names = [f.attname for f in fields]
    dumps = json.dumps
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([(row[n] if isinstance(row[n], _Json) else dumps(row[n])) if n in json_fields
                                else row[n] for n in names])


def _insert_objects(model, objs: list) -> None:
    """Insert unsaved model instances (no primary key needed back) through ``_insert`` (COPY on PostgreSQL)."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=2000)
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    for obj in objs:
        for f in fields:  # defaults the ORM would fill in on save
            if getattr(obj, f.attname) is None and f.has_default():
                setattr(obj, f.attname, f.get_default())
    _insert(model, [{f.attname: getattr(obj, f.attname) for f in fields} for obj in objs])


def _insert_missing(model, *, varying: dict[str, list], constant: dict[str, Any]) -> None:
    """Insert rows that do not exist yet (``ON CONFLICT DO NOTHING``: a concurrent run of the same chunk may have
    inserted some). ``varying``: ``{attname: [value per row]}``; ``constant``: ``{attname: value}`` for every row;
    the other fields take their model default. One ``INSERT ... SELECT FROM unnest(arrays)`` on PostgreSQL (a
    ``bulk_create`` of thousands of rows spends longer building its SQL than the database spends inserting them);
    ``bulk_create(ignore_conflicts=True)`` elsewhere."""
    n = len(next(iter(varying.values()), []))
    if n == 0:
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    values = {f.attname: constant[f.attname] if f.attname in constant else f.get_default() for f in fields
              if f.attname not in varying}
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**values, **{k: v[i] for k, v in varying.items()}) for i in range(n)],
                                  batch_size=1000, ignore_conflicts=True)
        return
    qn = connection.ops.quote_name
    selects, params = [], []
    for f in fields:
        db_type = "jsonb" if f.get_internal_type() == "JSONField" else f.db_type(connection)
        prep = (lambda v: json.dumps(v)) if db_type == "jsonb" else (
            lambda v, f=f: f.get_db_prep_value(v, connection))
        if f.attname in varying:
            cast = "text[])::jsonb" if db_type == "jsonb" else f"{db_type}[])"
            selects.append(f"unnest(%s::{cast}")
            params.append([prep(v) for v in varying[f.attname]])
        else:
            selects.append(f"%s::{db_type}")
            params.append(prep(values[f.attname]))
    columns = ", ".join(qn(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {qn(model._meta.db_table)} ({columns}) SELECT {', '.join(selects)} "
                       "ON CONFLICT DO NOTHING", params)


def _update_rows(model, rows: dict[int, dict], fields: list[str]) -> None:
    """Set ``fields`` of many rows (``{pk: {field: value}}``) in one UPDATE ... FROM unnest(arrays) on PostgreSQL
    (Django's ``bulk_update`` builds one CASE per field and row, slow at thousands of rows); ``bulk_update``
    elsewhere."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        objs = []
        for pk, values in rows.items():
            obj = model(pk=pk)
            for k, v in values.items():
                setattr(obj, k, v)
            objs.append(obj)
        model.objects.bulk_update(objs, fields, batch_size=1000)
        return
    meta = model._meta
    qn = connection.ops.quote_name
    pks = list(rows)
    sets, selects, params = [], ["unnest(%s::bigint[]) AS pk"], [pks]
    for name in fields:
        field = meta.get_field(name)
        db_type = field.db_type(connection)
        values = [rows[pk][name] for pk in pks]
        if field.get_internal_type() == "JSONField":
            values, db_type = [json.dumps(v) for v in values], "jsonb"
            selects.append(f"unnest(%s::text[])::jsonb AS {qn(field.column)}")
        else:
            values = [field.get_db_prep_value(v, connection) for v in values]
            selects.append(f"unnest(%s::{db_type}[]) AS {qn(field.column)}")
        params.append(values)
        sets.append(f"{qn(field.column)} = v.{qn(field.column)}")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(meta.db_table)} AS t SET {', '.join(sets)} FROM (SELECT {', '.join(selects)}) "
                       f"AS v WHERE t.{qn(meta.pk.column)} = v.pk", params)


def _post_lines(es: EventSettlement, *, now, customer_settlement: CustomerSettlement | None = None) -> None:
    """Post the settlement's components as lines; if it had live lines (approved before), post a reversal of each
    (-old) and the new lines (+new), unless the amounts are the same (then nothing changes)."""
    live = list(es.lines.filter(reverses__isnull=True, reversed_by__isnull=True))
    wanted = [c for c in es.components if Decimal(c["rounded"]) != 0]
    if sorted((x.kind, x.amount) for x in live) == sorted((c["kind"], Decimal(c["rounded"])) for c in wanted):
        return
    common = {"account_id": es.account_id, "program_id": es.program_id, "enrollment_id": es.enrollment_id,
              "service_point_id": es.service_point_id, "event_settlement": es, "created_at": now,
              "customer_settlement": customer_settlement, "event_revision": es.revision}
    new = [SettlementLine(kind=x.kind, line_code=x.line_code, amount=-x.amount, quantity=x.quantity, unit=x.unit,
                          rate=x.rate, reverses=x,
                          description=f"Reversal of line {x.pk} (event settlement revision {es.revision})",
                          **common) for x in live]
    new += [SettlementLine(kind=c["kind"], line_code=LINE_CODES[c["kind"]], amount=Decimal(c["rounded"]),
                           quantity=None if c["quantity"] is None else Decimal(c["quantity"]).quantize(Q4),
                           unit=c["unit"], rate=None if c["rate"] is None else Decimal(c["rate"]),
                           description=c["description"][:300], **common) for c in wanted]
    SettlementLine.objects.bulk_create(new)
    posted = es.lines.aggregate(s=Sum("amount"))["s"] or ZERO
    EventSettlement.objects.filter(pk=es.pk).update(posted_amount=posted)
    es.posted_amount = posted


def event_settlement_approve(*, settlement: EventSettlement, now: dt.datetime, actor: Any = None, reason: str = "",
                             customer_settlement: CustomerSettlement | None = None) -> EventSettlement:
    """Approve a CALCULATED or DEFERRED event settlement: post its money as settlement lines (after a correction:
    reversal lines of the old amounts, then the new ones). Approving an APPROVED settlement changes nothing.
    Raises ``TransitionNotAllowed`` for PENDING or REVERSED settlements."""
    with transaction.atomic():
        es = EventSettlement.objects.select_for_update().get(pk=settlement.pk)
        if es.status == ES.APPROVED:
            return es
        transition(obj=es, to=ES.APPROVED, allowed=EVENT_SETTLEMENT_TRANSITIONS, now=now, actor=actor,
                   reason=reason or f"approved revision {es.revision}", extra_updates={"approved_at": now})
        _post_lines(es, now=now, customer_settlement=customer_settlement)
    return es


def event_settlements_approve(*, settlements, now: dt.datetime, actor: Any = None) -> int:
    """Approve many event settlements (admin and API bulk action); returns how many were approved now."""
    done = 0
    for es in settlements:
        if es.status in (ES.CALCULATED, ES.DEFERRED):
            event_settlement_approve(settlement=es, now=now, actor=actor)
            done += 1
    return done


def event_settlement_reverse(*, settlement: EventSettlement, reason: str, now: dt.datetime,
                             actor: Any = None) -> EventSettlement:
    """Reverse an APPROVED event settlement entirely (settled in error): a negative line for each live line;
    status REVERSED. ``reason`` is required. Raises ``DomainValidationError`` / ``TransitionNotAllowed``."""
    if not (reason or "").strip():
        raise DomainValidationError({"reason": ["A reason is required to reverse a settlement."]})
    with transaction.atomic():
        es = EventSettlement.objects.select_for_update().get(pk=settlement.pk)
        transition(obj=es, to=ES.REVERSED, allowed=EVENT_SETTLEMENT_TRANSITIONS, now=now, actor=actor, reason=reason)
        live = list(es.lines.filter(reverses__isnull=True, reversed_by__isnull=True))
        SettlementLine.objects.bulk_create([SettlementLine(
            account_id=x.account_id, program_id=x.program_id, enrollment_id=x.enrollment_id,
            service_point_id=x.service_point_id, event_settlement=es, kind=x.kind, line_code=x.line_code,
            amount=-x.amount, quantity=x.quantity, unit=x.unit, rate=x.rate, reverses=x, event_revision=es.revision,
            description=f"Reversal of line {x.pk}: {reason}"[:300], created_at=now) for x in live])
        es.posted_amount = es.lines.aggregate(s=Sum("amount"))["s"] or ZERO
        EventSettlement.objects.filter(pk=es.pk).update(posted_amount=es.posted_amount)
    return es


# --------------------------------------------------------------------------------------------------- customer


def _months(start: dt.date, end: dt.date):
    """First days of the months overlapping local dates ``[start, end)``."""
    month = start.replace(day=1)
    while month < end:
        yield month
        month = (month + dt.timedelta(days=32)).replace(day=1)


def _season_for(program: Program, day: dt.date) -> Season | None:
    return Season.objects.filter(program=program, start_date__lte=day, end_date__gte=day).first()


def _season_events_by_enrollment(enrollment_ids: list[int], season: Season, tz) -> dict[int, list[inc.SeasonEvent]]:
    """Counted events of the season per enrollment (cancelled events and participations left out). One query."""
    start, end = local_midnight(season.start_date, tz), local_midnight(season.end_date + dt.timedelta(days=1), tz)
    rows = (Participation.objects.filter(enrollment_id__any=enrollment_ids, event__status__in=COUNTED_EVENT_STATUSES,
                                         event__start__gte=start, event__start__lt=end)
            .exclude(status=ParticipationStatus.CANCELLED)
            .values_list("enrollment_id", "event_id", "event__start", "event__end", "start", "end", "opted_out_at",
                         "status", "settlement__kw_drop_avg", "settlement__measurement_status"))
    out: dict[int, list[inc.SeasonEvent]] = defaultdict(list)
    for enrollment_id, event_id, ev_start, ev_end, p_start, p_end, opted_at, status, kw, m_status in rows:
        hours = Decimal(f"{(ev_end - ev_start).total_seconds() / 3600.0:.4f}")
        opted_out = bool(opted_at) or status == ParticipationStatus.OPTED_OUT
        if opted_out:
            stop = opted_at if opted_at and opted_at < p_end else p_end
            not_opted = Decimal(f"{max(0.0, (stop - p_start).total_seconds() / 60.0) / 60:.4f}")
        else:
            not_opted = hours
        out[enrollment_id].append(inc.SeasonEvent(event_id, hours, not_opted, opted_out,
                                                  kw if m_status == MeasurementStatus.OK else None))
    return out


def _opt_out_months(enrollment_ids: list[int], tz) -> dict[int, set[dt.date]]:
    """First days of the local months with an opted-out counted event, per enrollment. One query."""
    out: dict[int, set[dt.date]] = defaultdict(set)
    for enrollment_id, start in (Participation.objects.filter(enrollment_id__any=enrollment_ids,
                                                              event__status__in=COUNTED_EVENT_STATUSES)
                                 .filter(Q(opted_out_at__isnull=False) | Q(status=ParticipationStatus.OPTED_OUT))
                                 .values_list("enrollment_id", "event__start")):
        out[enrollment_id].add(local_date(start, tz).replace(day=1))
    return out


def customer_settlement_calculate(*, account: Account, program: Program, period_kind: str, period_start: dt.date,
                                  period_end: dt.date, now: dt.datetime, actor: Any = None,
                                  season: Season | None = None,
                                  batch: SettlementBatch | None = None) -> CustomerSettlement:
    """Calculate (or recalculate, while not approved) an account's credits in a program for local dates
    ``[period_start, period_end)``.

    Sums: approved event-settlement lines not yet in a customer settlement (including reversal lines of corrections);
    at season end, deferred event settlements of the season; the enrollment bonus (once per account or service point
    and program); monthly incentives for the months enrolled whose first enrolled day falls in the period (not for a
    month with an opt-out when the rule or an opt-out rule says so); at season end the seasonal incentive (share of
    event hours not opted out, cancelled events excluded) and performance per kW (top N% of the season's per-event kW
    drops); then a negative cap line keeps the season's net within the program's season cap. An APPROVED or EXPORTED
    settlement is returned unchanged. Raises ``DomainValidationError`` for a bad period.
    Same code path as the batches: ``customer_settlements_calculate`` for one account.
    """
    return customer_settlements_calculate(account_ids=[account.pk], program=program, period_kind=period_kind,
                                          period_start=period_start, period_end=period_end, now=now, actor=actor,
                                          season=season, batch=batch)[account.pk]


def customer_settlements_calculate(*, account_ids: list[int], program: Program, period_kind: str,
                                   period_start: dt.date, period_end: dt.date, now: dt.datetime, actor: Any = None,
                                   season: Season | None = None,
                                   batch: SettlementBatch | None = None) -> dict[int, CustomerSettlement]:
    """``customer_settlement_calculate`` for many accounts (a chunk) in one transaction with a constant number of
    queries: returns ``{account id: CustomerSettlement}``. Accounts are worked in id order, so an enrollment bonus
    paid to one account's service point is seen by the next account at that service point."""
    if period_end <= period_start:
        raise DomainValidationError({"period_end": ["period_end must be after period_start."]})
    if period_kind not in PeriodKind.values:
        raise DomainValidationError({"period_kind": [f"Unknown period kind {period_kind!r}."]})
    tz = zone(program.time_zone)
    if season is None:
        season = _season_for(program, period_end - dt.timedelta(days=1))
    account_ids = sorted(set(account_ids))
    key = {"program": program, "period_kind": period_kind, "period_start": period_start, "period_end": period_end}
    with transaction.atomic():
        before = set(CustomerSettlement.objects.filter(account_id__any=account_ids, **key)
                     .values_list("account_id", flat=True))
        if len(before) < len(account_ids):
            _insert_missing(CustomerSettlement, varying={"account_id": [a for a in account_ids if a not in before]},
                            constant={"season_id": season.pk if season else None, "created_at": now,
                                      "updated_at": now, "batch_id": batch.pk if batch else None,
                                      "program_id": program.pk, "period_kind": period_kind,
                                      "period_start": period_start, "period_end": period_end})
        settlements = {cs.account_id: cs for cs in CustomerSettlement.objects.select_for_update()
                       .filter(account_id__any=account_ids, **key).order_by("pk")}
        work = {a: cs for a, cs in settlements.items() if cs.status not in (CS.APPROVED, CS.EXPORTED)}
        if not work:
            return settlements
        accounts = sorted(work)
        cs_ids = [work[a].pk for a in accounts]
        # Recomputable lines: incentive lines and deferred event lines of these (unapproved) settlements.
        SettlementLine.objects.filter(customer_settlement_id__any=cs_ids).filter(
            Q(event_settlement__isnull=True) | Q(event_settlement__status=ES.DEFERRED)).delete()
        SettlementLine.objects.filter(
            account_id__any=accounts, program=program, customer_settlement__isnull=True, event_settlement__isnull=False,
            event_settlement__event__start__lt=local_midnight(period_end, tz)).update(
            customer_settlement_id=Subquery(CustomerSettlement.objects.filter(
                account_id=OuterRef("account_id"), **key).values("pk")[:1]))
        notes: dict[int, list[str]] = defaultdict(list)
        new: dict[int, list[SettlementLine]] = defaultdict(list)
        if period_kind == PeriodKind.SEASON_END and season is not None:
            for es_id, account_id, enrollment_id, sp_id, components, revision in EventSettlement.objects.filter(
                    account_id__any=accounts, program=program, status=ES.DEFERRED, event_day__gte=season.start_date,
                    event_day__lte=season.end_date).order_by().values_list("pk", "account_id", "enrollment_id",
                                                                "service_point_id", "components", "revision"):
                for c in components:
                    if Decimal(c["rounded"]):
                        new[account_id].append(SettlementLine(
                            account_id=account_id, program=program, enrollment_id=enrollment_id,
                            service_point_id=sp_id, event_settlement_id=es_id, customer_settlement=work[account_id],
                            kind=c["kind"], line_code=LINE_CODES[c["kind"]], amount=Decimal(c["rounded"]),
                            description=c["description"][:300], event_revision=revision, created_at=now))
        enrollments: dict[int, list[Enrollment]] = defaultdict(list)
        for e in (Enrollment.objects.filter(account_id__any=accounts, program=program, status__in=ENROLLED_STATUSES,
                                            effective_date__isnull=False, effective_date__lt=period_end)
                  .filter(Q(end_date__isnull=True) | Q(end_date__gt=period_start)).order_by("account_id", "id")):
            enrollments[e.account_id].append(e)
        enrollment_ids = [e.pk for es in enrollments.values() for e in es]
        rules = rule_specs(program, kinds=[IncentiveKind.ENROLLMENT_BONUS, IncentiveKind.MONTHLY,
                                           IncentiveKind.SEASONAL, IncentiveKind.PERFORMANCE_KW,
                                           IncentiveKind.OPT_OUT_PENALTY])
        rule_seasons = dict(IncentiveRule.objects.filter(program=program).values_list("id", "season_id"))
        seasons_by_id = Season.objects.in_bulk([s for s in rule_seasons.values() if s])
        capacities = enrolled_capacity(enrollment_ids, start=period_start, end=period_end) if enrollment_ids else {}
        forfeit_month = any(r.kind == IncentiveKind.OPT_OUT_PENALTY
                            and r.opt_out_consequence == OptOutConsequence.FORFEIT_MONTH for r in rules)
        forfeit_season = any(r.kind == IncentiveKind.OPT_OUT_PENALTY
                             and r.opt_out_consequence == OptOutConsequence.FORFEIT_SEASON for r in rules)
        kinds = {r.kind for r in rules}
        # What was paid elsewhere (lines of the program not reversed; these settlements hold no incentive lines now).
        paid = SettlementLine.objects.filter(program=program, reverses__isnull=True)
        bonus_accounts, bonus_sps, account_names = set(), set(), {}
        if IncentiveKind.ENROLLMENT_BONUS in kinds:
            account_names = Account.objects.in_bulk(accounts)
            sps = {e.service_point_id for es in enrollments.values() for e in es}
            for a, sp in paid.filter(kind=LineKind.ENROLLMENT_BONUS).filter(
                    Q(account_id__any=accounts) | Q(service_point_id__any=sps)).values_list("account_id",
                                                                                         "service_point_id"):
                bonus_accounts.add(a)
                bonus_sps.add(sp)
        keys = set(paid.filter(enrollment_id__any=enrollment_ids).exclude(incentive_key="")
                   .values_list("enrollment_id", "incentive_key")) if enrollment_ids else set()
        opt_out_months = (_opt_out_months(enrollment_ids, tz) if IncentiveKind.MONTHLY in kinds and (
            forfeit_month or any(r.requires_no_skipped_event for r in rules)) else {})
        season_events = (_season_events_by_enrollment(enrollment_ids, season, tz)
                         if period_kind == PeriodKind.SEASON_END and season is not None
                         and kinds & {IncentiveKind.SEASONAL, IncentiveKind.PERFORMANCE_KW} else {})
        for account_id in accounts:
            cs = work[account_id]

            def line(kind, amount, description, *, enrollment, key="", quantity=None, unit="", rate=None,
                     _cs=cs, _account=account_id):
                new[_account].append(SettlementLine(
                    account_id=_account, program=program, enrollment=enrollment, customer_settlement=_cs, kind=kind,
                    line_code=LINE_CODES[kind], amount=round_money(amount), quantity=quantity, unit=unit, rate=rate,
                    service_point_id=enrollment.service_point_id, description=description[:300], incentive_key=key,
                    created_at=now))
                if key:
                    keys.add((enrollment.pk, key))

            for enrollment in enrollments.get(account_id, ()):
                capacity = capacities.get(enrollment.pk, inc.EnrolledCapacity())
                enr_end = enrollment.end_date or dt.date.max
                for rule in rules:
                    rule_season = rule_seasons.get(rule.rule_id)
                    qty, unit = inc.basis_quantity(rule.basis, capacity)
                    if rule.kind == IncentiveKind.ENROLLMENT_BONUS:
                        if account_id in bonus_accounts or enrollment.service_point_id in bonus_sps:
                            notes[account_id].append(
                                f"Enrollment bonus already paid for account {account_names[account_id]} or its service "
                                f"point.")
                        else:
                            line(LineKind.ENROLLMENT_BONUS, rule.amount * qty, f"Enrollment bonus ${rule.amount}"
                                 + (f" x {qty} {unit}" if unit else ""), enrollment=enrollment,
                                 key=f"bonus:{rule.rule_id}", quantity=qty, unit=unit, rate=rule.amount)
                            bonus_accounts.add(account_id)
                            bonus_sps.add(enrollment.service_point_id)
                    elif rule.kind == IncentiveKind.MONTHLY:
                        for month in _months(period_start, period_end):
                            next_month = (month + dt.timedelta(days=32)).replace(day=1)
                            first_day = max(month, enrollment.effective_date)
                            if not (period_start <= first_day < period_end and first_day < min(next_month, enr_end)):
                                continue
                            if rule_season:
                                s = seasons_by_id.get(rule_season)
                                if s is None or not (s.start_date < next_month and s.end_date >= month):
                                    continue
                            key = f"monthly:{rule.rule_id}:{month:%Y-%m}"
                            if (enrollment.pk, key) in keys:
                                continue
                            if (rule.requires_no_skipped_event or forfeit_month) and month in opt_out_months.get(
                                    enrollment.pk, ()):
                                notes[account_id].append(
                                    f"{month:%Y-%m}: monthly incentive forfeited (opted out of an event).")
                                continue
                            line(LineKind.MONTHLY, rule.amount * qty, f"Monthly incentive {month:%Y-%m}",
                                 enrollment=enrollment, key=key, quantity=qty, unit=unit, rate=rule.amount)
                    elif rule.kind in (IncentiveKind.SEASONAL, IncentiveKind.PERFORMANCE_KW):
                        if period_kind != PeriodKind.SEASON_END or season is None:
                            continue
                        if rule_season and rule_season != season.pk:
                            continue
                        events = season_events.get(enrollment.pk, [])
                        if rule.kind == IncentiveKind.SEASONAL:
                            comp = inc.seasonal_component(rule, events, capacity,
                                                          forfeit_on_any_opt_out=forfeit_season)
                            key = f"seasonal:{rule.rule_id}:{season.pk}"
                        else:
                            comp = inc.performance_kw_component(
                                rule, events, charges_negative_performance=program.charges_negative_performance)
                            key = f"kw:{rule.rule_id}:{season.pk}"
                        if (enrollment.pk, key) in keys:
                            continue
                        notes[account_id].append(f"{season.name}: {comp.description}.")
                        if round_money(comp.amount):
                            line(comp.kind, comp.amount, comp.description, enrollment=enrollment, key=key,
                                 quantity=None if comp.quantity is None else comp.quantity.quantize(Q4),
                                 unit=comp.unit, rate=comp.rate)
        _insert_objects(SettlementLine, [x for a in accounts for x in new.get(a, ())])
        net = dict(SettlementLine.objects.filter(customer_settlement_id__any=cs_ids).values_list(
            "customer_settlement_id").annotate(s=Sum("amount")).values_list("customer_settlement_id", "s"))
        cap_rule = None
        if season is not None:
            cap_rule = (IncentiveRule.objects.filter(program=program, kind=IncentiveKind.SEASON_CAP)
                        .filter(Q(season=season) | Q(season__isnull=True)).order_by("season_id").first())
        totals = {a: net.get(work[a].pk) or ZERO for a in accounts}
        if cap_rule is not None:
            prior = dict(SettlementLine.objects.filter(
                account_id__any=accounts, program=program, customer_settlement__period_start__gte=season.start_date,
                customer_settlement__period_start__lte=season.end_date).exclude(customer_settlement_id__any=cs_ids)
                .values_list("account_id").annotate(s=Sum("amount")).values_list("account_id", "s"))
            caps = []
            for a in accounts:
                before_net = prior.get(a) or ZERO
                adj = inc.cap_adjustment(prior_net=before_net, this_net=totals[a], cap=cap_rule.amount)
                if adj:
                    caps.append(SettlementLine(
                        account_id=a, program=program, customer_settlement=work[a], kind=LineKind.CAP_ADJUSTMENT,
                        line_code=LINE_CODES[LineKind.CAP_ADJUSTMENT], amount=round_money(adj), created_at=now,
                        description=f"Season cap ${cap_rule.amount}: earlier ${before_net} + this ${totals[a]} "
                                    f"exceeds it"))
                    notes[a].append(f"Season cap ${cap_rule.amount} applied: {round_money(adj)}.")
                    totals[a] += round_money(adj)
            _insert_objects(SettlementLine, caps)
        audits = []
        for a in accounts:
            cs = work[a]
            total = totals[a]
            cs.total_amount, cs.season, cs.calculated_at, cs.updated_at = total, season, now, now
            cs.inputs = {"enrollments": [e.pk for e in enrollments.get(a, ())], "notes": notes.get(a, []),
                         "season": season.pk if season else None}
            cs.explanation = " ".join([*notes.get(a, []), f"Total ${total}."])
            if cs.status == CS.PENDING:
                check_transition(allowed=CUSTOMER_SETTLEMENT_TRANSITIONS, current=cs.status, to=CS.CALCULATED,
                                 label=f"Customer settlement {cs}")
                audits.append((cs.pk, AuditEntry.Action.STATUS_CHANGE, CS.PENDING, CS.CALCULATED,
                               f"{period_kind} {period_start}..{period_end}: ${total}"))
                cs.status = CS.CALCULATED
            elif a in before:
                audits.append((cs.pk, "update", "", "", f"recalculated: ${total}"))
        # One UPDATE for the totals and the PENDING -> CALCULATED moves (checked above): the rows are locked by
        # this transaction since the select_for_update, so no status changes under it.
        fields = ["total_amount", "season_id", "calculated_at", "updated_at", "inputs", "explanation", "status"]
        _update_rows(CustomerSettlement, {cs.pk: {f: getattr(cs, f) for f in fields} for cs in work.values()},
                     fields)
        _audit_rows(model=CustomerSettlement, rows=audits, now=now, actor=actor)
    return settlements


def customer_settlement_approve(*, settlement: CustomerSettlement, now: dt.datetime,
                                actor: Any = None) -> CustomerSettlement:
    """Approve a CALCULATED customer settlement (and the deferred event settlements it pays). Idempotent."""
    with transaction.atomic():
        cs = CustomerSettlement.objects.select_for_update().get(pk=settlement.pk)
        if cs.status in (CS.APPROVED, CS.EXPORTED):
            return cs
        transition(obj=cs, to=CS.APPROVED, allowed=CUSTOMER_SETTLEMENT_TRANSITIONS, now=now, actor=actor,
                   reason=f"${cs.total_amount}", extra_updates={"approved_at": now})
        deferred = EventSettlement.objects.filter(lines__customer_settlement=cs, status=ES.DEFERRED).distinct()
        for es in deferred:
            transition(obj=es, to=ES.APPROVED, allowed=EVENT_SETTLEMENT_TRANSITIONS, now=now, actor=actor,
                       reason=f"paid at season end by customer settlement {cs.pk}", extra_updates={"approved_at": now})
            es.posted_amount = es.lines.aggregate(s=Sum("amount"))["s"] or ZERO
            EventSettlement.objects.filter(pk=es.pk).update(posted_amount=es.posted_amount)
    return cs


def customer_settlements_approve(*, settlements, now: dt.datetime, actor: Any = None) -> int:
    done = 0
    for cs in settlements:
        if cs.status == CS.CALCULATED:
            customer_settlement_approve(settlement=cs, now=now, actor=actor)
            done += 1
    return done


def _accounts_for(program: Program, start: dt.date, end: dt.date, *, first: int | None = None,
                  last: int | None = None) -> list[int]:
    """Sorted ids of the accounts enrolled in ``program`` during ``[start, end)``; ``first``/``last``: only the ids
    in that inclusive range (a chunk reads its own accounts, not the program's)."""
    qs = (Enrollment.objects.filter(program=program, status__in=ENROLLED_STATUSES, effective_date__lt=end)
          .filter(Q(end_date__isnull=True) | Q(end_date__gt=start)))
    if first is not None:
        qs = qs.filter(account_id__gte=first)
    if last is not None:
        qs = qs.filter(account_id__lte=last)
    return list(qs.order_by("account_id").values_list("account_id", flat=True).distinct())


def customer_batch_start(*, program: Program, kind: str, period_kind: str, period_start: dt.date,
                         period_end: dt.date, season: Season | None, now: dt.datetime,
                         actor: Any = None) -> SettlementBatch:
    """Start a batch calculating the customer settlements of every account enrolled in ``[period_start,
    period_end)``, in chunks of accounts; a batch for the same program and period is returned as it is."""
    from .tasks import settle_customer_chunk

    lookup = {"kind": kind, "program": program}
    lookup.update({"season": season} if kind == BatchKind.SEASON else
                  {"period_start": period_start, "period_end": period_end})
    existing = SettlementBatch.objects.filter(**lookup).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            batch = SettlementBatch.objects.create(**{**lookup, "period_start": period_start, "period_end": period_end,
                                                      "season": season}, created_at=now,
                                                   actor_label=actor_label(actor)[:150])
            accounts = _accounts_for(program, period_start, period_end)
            ranges = _chunks(accounts, settings.CPM_CHUNK_SIZE)
            audit_record(obj=batch, action="create", now=now, actor=actor,
                         reason=f"{period_kind} {period_start}..{period_end}: {len(accounts)} accounts")
            _start_batch(batch, chunks=len(ranges), items=len(accounts), now=now, actor=actor)
            _enqueue_group(settle_customer_chunk, [{"batch_id": batch.pk, "account_first": a, "account_last": b,
                                                    "period_kind": period_kind, "now": now.isoformat()}
                                                   for a, b in ranges])
    except IntegrityError:
        return SettlementBatch.objects.get(**lookup)
    return batch


def customer_settle_chunk(*, batch: SettlementBatch, account_first: int, account_last: int, period_kind: str,
                          now: dt.datetime) -> dict[str, int]:
    """Calculate the customer settlements of the batch's accounts ``account_first..account_last`` in one
    transaction (``customer_settlements_calculate``); if that fails, account by account, so one account's failure
    does not stop the others (it is reported on the batch)."""
    program = batch.program
    accounts = _accounts_for(program, batch.period_start, batch.period_end, first=account_first, last=account_last)
    common = {"program": program, "period_kind": period_kind, "period_start": batch.period_start,
              "period_end": batch.period_end, "season": batch.season, "now": now, "actor": "settlement",
              "batch": batch}
    try:
        customer_settlements_calculate(account_ids=accounts, **common)
        return {"calculated": len(accounts), "failed": 0}
    except Exception:  # isolate the failing account(s) below
        log.exception("customer settlement chunk %s..%s failed; retrying account by account", account_first,
                      account_last)
    counts = {"calculated": 0, "failed": 0}
    for account in Account.objects.filter(pk__in=accounts).order_by("pk"):
        try:
            customer_settlement_calculate(account=account, **common)
            counts["calculated"] += 1
        except Exception as exc:  # one account's failure must not stop the others; reported on the batch
            log.exception("customer settlement failed for account %s", account.pk)
            counts["failed"] += 1
            SettlementBatch.objects.filter(pk=batch.pk).update(errors=[*batch.errors, f"account {account}: {exc}"])
    return counts


def season_settle(*, program: Program, season: Season, now: dt.datetime, actor: Any = None) -> SettlementBatch:
    """Season-end customer settlements for every account of the program (idempotent: one batch per season).
    Raises ``ConflictError`` before the season has ended (local date in the program's zone)."""
    if local_date(now, zone(program.time_zone)) <= season.end_date:
        raise ConflictError(f"Season {season} ends on {season.end_date}; settle it after that.", field="season")
    return customer_batch_start(program=program, kind=BatchKind.SEASON, period_kind=PeriodKind.SEASON_END,
                                period_start=season.start_date, period_end=season.end_date + dt.timedelta(days=1),
                                season=season, now=now, actor=actor)


def customer_settlements_create_due(*, now: dt.datetime, actor: Any = "settlement.tick") -> list:
    """Create what has come due: season-end settlements of ended seasons, last calendar month's billing-period
    settlements of after-event programs (a monthly billing cycle until billing cycles are fed to cpm) and final bills
    of enrollments that ended. Idempotent: existing batches and settlements are left as they are."""
    started = []
    for program in Program.objects.exclude(status="draft"):
        today = local_date(now, zone(program.time_zone))
        for season in Season.objects.filter(program=program, end_date__lt=today,
                                            end_date__gte=today - dt.timedelta(days=366)):
            if program.settlement_timing == SettlementTiming.SEASON_END or program.incentive_rules.filter(
                    kind__in=[IncentiveKind.SEASONAL, IncentiveKind.PERFORMANCE_KW, IncentiveKind.SEASON_CAP]
            ).exists():
                started.append(season_settle(program=program, season=season, now=now, actor=actor))
        if program.settlement_timing == SettlementTiming.AFTER_EVENT:
            this_month = today.replace(day=1)
            last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
            started.append(customer_batch_start(program=program, kind=BatchKind.CUSTOMER,
                                                period_kind=PeriodKind.BILLING_PERIOD, period_start=last_month,
                                                period_end=this_month, season=None, now=now, actor=actor))
        ended = Enrollment.objects.filter(program=program, status=EnrollmentStatus.UNENROLLED,
                                          end_date__isnull=False, end_date__lte=today, effective_date__isnull=False)
        for enrollment in ended.select_related("account"):
            if CustomerSettlement.objects.filter(account=enrollment.account, program=program,
                                                 period_kind=PeriodKind.FINAL_BILL,
                                                 period_end=enrollment.end_date).exists():
                continue
            last = (CustomerSettlement.objects.filter(account=enrollment.account, program=program,
                                                      period_end__lte=enrollment.end_date)
                    .order_by("-period_end").values_list("period_end", flat=True).first())
            start = max(last or enrollment.effective_date, enrollment.effective_date)
            if start < enrollment.end_date:
                started.append(customer_settlement_calculate(
                    account=enrollment.account, program=program, period_kind=PeriodKind.FINAL_BILL,
                    period_start=start, period_end=enrollment.end_date, now=now, actor=actor))
    return started


# --------------------------------------------------------------------------------------------------- export

EXPORT_COLUMNS = ["batch_id", "line_id", "account_number", "service_agreement_id", "service_point_id",
                  "program_code", "period_kind", "period_start", "period_end", "line_code", "amount",
                  "customer_settlement_id", "event_settlement_id", "reverses_line_id", "description"]


def bill_credit_export_render(export: BillCreditExport) -> str:
    """The CSV of an export batch, deterministic: same batch, same bytes (ordered by settlement and line id; no
    clock values). One row per settlement line; reversal lines are negative and name the line they reverse."""
    lines = list(SettlementLine.objects.filter(customer_settlement__export_batch=export).exclude(amount=0)
                 .select_related("account", "program", "service_point", "customer_settlement")
                 .order_by("customer_settlement_id", "id"))
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
        candidates = [sa for sa in agreements.get((x.account_id, x.service_point_id), [])
                      if sa.start_date < cs.period_end and (sa.end_date is None or sa.end_date > cs.period_start)]
        agreement = candidates[-1].agreement_id if candidates else ""
        writer.writerow([export.pk, x.pk, x.account.account_number, agreement,
                         x.service_point.service_point_id if x.service_point_id else "", x.program.code,
                         cs.period_kind, cs.period_start.isoformat(), cs.period_end.isoformat(), x.line_code,
                         f"{x.amount:.2f}", cs.pk, x.event_settlement_id or "", x.reverses_id or "", x.description])
    return buf.getvalue()


def bill_credit_export_create(*, now: dt.datetime, actor: Any = None, program: Program | None = None,
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
        _bulk_audit(model=CustomerSettlement, pks=ids, from_status=CS.APPROVED, to_status=CS.EXPORTED, now=now,
                    actor=actor, reason=f"exported in {export.file_name}")
        content = bill_credit_export_render(export)
        totals = SettlementLine.objects.filter(customer_settlement__export_batch=export).exclude(amount=0).aggregate(
            s=Sum("amount"))
        export.content = content
        export.sha256 = hashlib.sha256(content.encode()).hexdigest()
        export.line_count = content.count("\n") - 1
        export.settlement_count = len(ids)
        export.total_amount = totals["s"] or ZERO
        export.save()
        audit_record(obj=export, action="export", now=now, actor=actor,
                     reason=f"{export.settlement_count} settlements, {export.line_count} lines, ${export.total_amount}")
    return export


def bill_credit_export_acknowledge(*, export: BillCreditExport, now: dt.datetime,
                                   actor: Any = None) -> BillCreditExport:
    """Billing confirms it loaded the batch. Acknowledging twice changes nothing."""
    with transaction.atomic():
        export = BillCreditExport.objects.select_for_update().get(pk=export.pk)
        if export.status == ExportStatus.ACKNOWLEDGED:
            return export
        transition(obj=export, to=ExportStatus.ACKNOWLEDGED, allowed=EXPORT_TRANSITIONS, now=now, actor=actor,
                   reason="acknowledged by billing",
                   extra_updates={"acknowledged_at": now, "acknowledged_by_label": actor_label(actor)[:150]})
    return export


# --------------------------------------------------------------------------------------------------- tick


def settlement_tick(*, now: dt.datetime, actor: Any = "settlement.tick") -> dict[str, int]:
    """Periodic work: settle every COMPLETED event that has no settlement batch yet (after-event programs get
    CALCULATED settlements, season-end programs DEFERRED ones that feed the season's kW drop), then create the
    customer settlements that have come due. Idempotent."""
    pending = (Event.objects.filter(status=EventStatus.COMPLETED).exclude(settlement_batches__kind=BatchKind.EVENT)
               .select_related("program").order_by("end"))
    events = 0
    for event in pending:
        event_settle(event=event, now=now, actor=actor)
        events += 1
    due = customer_settlements_create_due(now=now, actor=actor)
    return {"events": events, "customer": len(due)}
