"""Event settlement: one ``EventSettlement`` per participation of a completed event (baseline, kWh avoided, money),
computed in chunks by a Celery group; approval posts its money as settlement lines, a reversal negates them.

Money: components are computed in full precision (``settlement.incentives``) and rounded once per line with
``cpm.base.money.round_money``. Corrections never edit posted money (``settlement.models.credits``: "-old, +new").
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections import defaultdict
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum

from cpm.base import bulk
from cpm.base.audit import actor_label, audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError
from cpm.base.money import ZERO, format_money, format_quantity, round_money
from cpm.base.states import check_transition, transition
from cpm.base.timeutils import format_local, local_date, zone
from events.choices import EventDirection, EventStatus, ParticipationStatus
from events.models import Event, Participation
from programs.choices import IncentiveBasis, IncentiveKind, SettlementTiming

from .. import baselines as bl
from .. import incentives as inc
from .. import measurement as meas
from ..choices import EVENT_SETTLEMENT_TRANSITIONS, LINE_CODES, BatchKind, MeasurementStatus
from ..models import CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine
from .batches import batch_fail, batch_run_chunks
from .common import CS, ES, Q4, audit_rows, chunks, enrolled_capacity, rule_specs

NOT_RESPONDED = (ParticipationStatus.NON_RESPONSIVE, ParticipationStatus.FAILED)


@use_case("event.settle", Cap.RUN_SETTLEMENT)
def event_settle(*, event: Event, now: dt.datetime, actor: Any, recalculate: bool = False) -> SettlementBatch:
    """Settle a COMPLETED event: one ``EventSettlement`` per participation (except cancelled ones), computed in
    chunks of ``settings.CPM_CHUNK_SIZE`` service points, each a chunk of the batch's job (``cpm.base.jobs``: run
    once to completion, sent again by the sweeper if its worker died); returns the batch with its progress.

    The first settlement of an event happens once (returns the existing EVENT batch); ``recalculate=True`` starts an
    EVENT_RECALC batch (new meter data or prices): unchanged settlements stay as they are, changed unapproved ones are
    updated, changed approved ones are re-opened (their reversal is posted when approved again).
    Raises ``ConflictError`` when the event is not completed. A program whose baseline overrides cannot be used
    (``measurement.baseline_problems``: stored before they were checked) gets its batch FAILED at once, the error
    naming the program, ``baseline_params`` and each key; nothing is settled and the caller (the tick) goes on.
    """
    from ..tasks import settle_event_chunk

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
            ranges = chunks(sp_ids, settings.CPM_CHUNK_SIZE)
            items = Participation.objects.filter(event=event).exclude(status=ParticipationStatus.CANCELLED).count()
            audit_record(obj=batch, action="create", now=now, actor=actor,
                         reason=f"{kind} for event {event.pk}: {items} participations in {len(ranges)} chunks")
            problems = meas.baseline_problems(event.program)
            if problems:  # every chunk would fail on them: the batch fails now, in words, and settles nothing
                batch_fail(batch_id=batch.pk, now=now, actor=actor, error=(
                    f"Program {event.program.code}: its baseline overrides (baseline_params) cannot be used: "
                    f"{' '.join(problems)} Correct them and settle the event again."))
                batch.refresh_from_db()
                return batch
            batch_run_chunks(batch, job_kind=f"{kind}_settlement", task_name=settle_event_chunk.name,
                             chunk_kwargs=[{"batch_id": batch.pk, "sp_first": a, "sp_last": b,
                                            "now": now.isoformat()} for a, b in ranges],
                             items=items, now=now, actor=actor)
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


class _Existing(NamedTuple):
    """An event settlement already stored for a participation of the chunk."""

    pk: int
    fingerprint: str
    status: str


_Json = bulk.RawJson  # JSON text already encoded (written as is by COPY; decoded for the ORM)
_DUMPS = json.dumps


def _num(value: float, digits: int):
    return None if value != value else round(value, digits)


def _float_json(value: float, digits: int) -> str:
    """``json.dumps(_num(value, digits))`` for one float, without the encoder's per-call overhead."""
    if value - value == 0:  # finite: JSON writes a float as its repr
        return repr(round(value, digits))
    return _DUMPS(_num(value, digits))


# Plausibility bound of a service point's measured values (kW, kWh per interval, kWh avoided in one event): beyond
# it the meter data is absurd (a 1e300 kWh reading) and the participation is not settled (its own error), rather than
# failing its whole chunk on a decimal overflow. Ten million kWh avoided in one event is a very large power plant.
PLAUSIBLE_LIMIT = 1e7
# Largest computed amount of one settlement (``EventSettlement.amount``: 12 digits, 2 decimals).
AMOUNT_LIMIT = Decimal("1e10")


def _implausible(m: meas.ChunkMeasurement) -> tuple[np.ndarray, np.ndarray]:
    """Service points of the chunk whose measurement cannot be settled (vectorised, before any Decimal): a value
    beyond ``PLAUSIBLE_LIMIT`` or infinite in the per-interval values, kWh avoided or kW drop, or an infinite
    adjustment. Returns (bad mask, the largest magnitude per row). NaN means unknown (insufficient data), not bad."""
    with np.errstate(invalid="ignore", over="ignore"):
        worst = np.fmax(np.abs(m.kwh_avoided), np.abs(m.kw_drop_avg))  # fmax: NaN (unknown) gives way
        for series in (m.baseline_kw, m.adjusted_baseline_kw, m.actual_kw, m.reduction_kwh):
            if series.ndim == 2 and series.shape[1]:
                worst = np.fmax(worst, np.fmax.reduce(np.abs(series), axis=1))
        bad = (worst > PLAUSIBLE_LIMIT) | np.isinf(m.adjustment)
    return bad, worst


def _error_text(worst: float) -> str:
    return (f"implausible meter data: a measured value of {worst:.6g} (kW or kWh) is beyond the plausible "
            f"{PLAUSIBLE_LIMIT:g}; check this service point's interval readings of the baseline days and the event "
            f"day, then recalculate the event")


# Engine reasons a day was left out that the explanation lists day by day (weekends and days not needed are not).
_LISTED = {bl.R_HOLIDAY: "holiday", bl.R_EVENT_DAY: "event day", bl.R_ABNORMAL: "abnormal day",
           bl.R_MISSING: "missing data", bl.R_LOW_USAGE: "low usage"}


def _day_fragments(m: meas.ChunkMeasurement) -> tuple[list[str], list[int], list[str], list[list[tuple]]]:
    """Per distinct row of engine day reasons: the JSON fragment of ``selected_days`` + ``day_reasons``, the
    explanation text of the selected days and the listed excluded days ``(date, code)`` (most recent first); returns
    (fragments, index per row, texts, excluded). Most service points of a chunk share a few patterns, so each is
    encoded once."""
    if m.day_reason is None or not len(m.participation_ids):
        return ['"selected_days": []'], [0] * len(m.participation_ids), [""], [[]]
    reasons = np.ascontiguousarray(m.day_reason, dtype=np.int8)
    # Rows as one opaque value each (a byte string of the codes): a 1-D unique, far cheaper than ``axis=0``.
    if reasons.shape[1]:
        keys = reasons.view(np.dtype((np.void, reasons.shape[1]))).reshape(-1)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    else:  # no candidate days: one (empty) pattern
        first, inverse = np.zeros(1, dtype=np.intp), np.zeros(len(reasons), dtype=np.intp)
    fragments, texts, excluded = [], [], []
    for row in reasons[first]:
        selected = [m.cand_days[d].isoformat() for d in np.flatnonzero(row == bl.R_SELECTED)]
        codes = "".join(str(int(c)) for c in row)
        fragments.append(f'"selected_days": {_DUMPS(selected)}, "day_reasons": "{codes}"')
        texts.append(f"{len(selected)} days, {selected[-1]} to {selected[0]}" if selected else "no days")
        excluded.append([(m.cand_days[d], int(c)) for d, c in enumerate(row.tolist()) if c in _LISTED])
    return fragments, inverse.reshape(-1).tolist(), texts, excluded


def _excluded_days(m: meas.ChunkMeasurement, k: int, days: list[tuple]) -> list[tuple[dt.date, str]]:
    """Row ``k``'s excluded days with their reasons in words: an abnormal day's recorded (or detected) reason, a day
    without any reading named as such."""
    abnormal = m.abnormal[k] if m.abnormal else {}
    empty = m.no_reading_days[k] if m.no_reading_days else ()
    out = []
    for day, code in days:
        if code == bl.R_ABNORMAL:
            out.append((day, abnormal.get(day, "abnormal day")))
        elif code == bl.R_MISSING and day in empty:
            out.append((day, meas.NO_READINGS))
        else:
            out.append((day, _LISTED[code]))
    return out


def _net_text(net: tuple[list, list], counted: int) -> tuple[str, str]:
    """(inputs fragment, explanation) of a net-metered row: both channels over the event window."""
    delivered, received = net
    d = [None if v != v else round(v, 4) for v in delivered]
    r = [None if v != v else round(v, 4) for v in received]
    fragment = f'"net_load": {{"delivered_kwh": {_DUMPS(d)}, "received_kwh": {_DUMPS(r)}}}, '
    d_sum = sum(v for v in delivered[:counted] if v == v)
    r_sum = sum(v for v in received[:counted] if v == v)
    text = (f" Net load = delivered - received (both channels read): delivered {d_sum:.4f} kWh, received "
            f"{r_sum:.4f} kWh, net {d_sum - r_sum:.4f} kWh in the counted intervals.")
    return fragment, text


def _reported_text(reported: dict | None) -> str:
    """Explanation of an aggregator-reported row (``measurement._measure_reported``)."""
    if reported is None:
        return "Aggregator-reported kW drop (no meter, no baseline): nothing reported for this service point."
    n_all = reported["intervals_reported"] + reported["intervals_missing"]
    text = (f"Aggregator-reported kW drop (no meter, no baseline; record version {reported['record_version']} "
            f"of load {reported['load_id']}): {reported['intervals_reported']} of {n_all} intervals of "
            f"{reported['interval_seconds']} s reported, {reported['intervals_missing']} missing (not counted, never "
            f"zero); {format_quantity(reported['completeness_pct'], places=2, trim=True)}% of the counted event "
            "time reported")
    if reported["hours_not_covered"]:
        text += f" ({format_quantity(reported['hours_not_covered'], 'h', places=4, trim=True)} not in the report)"
    if reported["kw_drop_max"] is not None:
        text += (f"; kW drop max {format_quantity(reported['kw_drop_max'], 'kW', places=4, trim=True)}, min "
                 f"{format_quantity(reported['kw_drop_min'], 'kW', places=4, trim=True)}, average "
                 f"{format_quantity(reported['kw_drop_avg_reported'], 'kW', places=4, trim=True)} while reported")
    return text + "."


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
    bad_mask, worst = _implausible(m)
    kwh_avoided, kw_drop, reduction, adjustment = m.kwh_avoided, m.kw_drop_avg, m.reduction_kwh, m.adjustment
    bad: list[str] = [""] * n
    if bad_mask.any():  # route them to the error path: zeros into the Decimal and money steps
        for k in np.flatnonzero(bad_mask).tolist():
            bad[k] = _error_text(float(worst[k]))
        kwh_avoided, kw_drop = np.where(bad_mask, 0.0, kwh_avoided), np.where(bad_mask, 0.0, kw_drop)
        reduction = np.where(bad_mask[:, None], 0.0, reduction)
        adjustment = np.where(bad_mask, np.nan, adjustment)
    kwh = [Decimal(f"{v:.4f}") for v in kwh_avoided.tolist()]
    kw = [Decimal(f"{v:.4f}") for v in kw_drop.tolist()]
    ok = m.ok.tolist()
    counted = m.counted.tolist()
    interval_kwh: list = []
    if any(r.basis == IncentiveBasis.PRICE_SET for r in rules):
        red = reduction.tolist()
        if m.method == meas.METHOD_REPORTED:  # an interval nobody reported adds nothing (missing, not zero kWh)
            red = [[0.0 if v != v else v for v in row] for row in red]
        interval_kwh = [[Decimal(f"{v:.6f}") for v in red[k][:counted[k]]] for k in range(n)]
    outcomes = inc.EventOutcomes(
        kwh_avoided=kwh, fraction=fraction, opted_out=opted_out,
        responded=[p.status not in NOT_RESPONDED for p in parts],
        capacity=[capacity.get(p.enrollment_id, _NO_CAPACITY) for p in parts], interval_starts=m.starts,
        interval_kwh=interval_kwh, charges_negative_performance=program.charges_negative_performance,
        reduces_load=event.direction != EventDirection.INCREASE)
    columns, errors = inc.event_components_batch(outcomes, rules)

    # Chunk-wide parts of the inputs.
    head = (f'{{"method": {_DUMPS(m.method)}, "baseline_params": {_DUMPS(program.baseline_params or {})}, '
            f'"interval_minutes": {m.interval_minutes}, "start": "{m.starts[0].isoformat() if m.starts else ""}", '
            f'"event_minutes": {round(event_minutes, 2)}, '
            f'"first_candidate_day": {_DUMPS(m.cand_days[0].isoformat() if m.cand_days else None)}, ')
    day_frag, day_index, day_text, day_excluded = _day_fragments(m)
    pattern_excluded: dict[int, str] = {}  # excluded-days text per pattern without row-specific reasons
    values = np.round(np.stack([m.baseline_kw, m.adjusted_baseline_kw, m.actual_kw, m.reduction_kwh], axis=1), 4)
    if bad_mask.any():
        values[np.isinf(values)] = np.nan  # JSON has no infinity: unknown
    has_nan = np.isnan(values).any(axis=(1, 2)).tolist()
    values_list = values.tolist()
    adjustment = adjustment.tolist()
    timing_target = ES.DEFERRED if program.settlement_timing == SettlementTiming.SEASON_END else ES.CALCULATED
    is_device = m.method == meas.METHOD_DEVICE
    is_reported = m.method == meas.METHOD_REPORTED
    x_of_y = "" if is_device or is_reported else f"{m.params['x']} of {m.params['y']}"
    detail_json = functools.cache(_DUMPS)  # a chunk's details repeat: each encoded once
    out = []
    for k, p in enumerate(parts):
        error = bad[k]
        note = error or (m.detail[k] if not ok[k] else (str(errors[k]) if errors[k] is not None else ""))
        comps, rounded = [], []
        if ok[k] and errors[k] is None and not error:
            for col in columns:
                amount = col.amount[k]
                if amount is not None:
                    qty, rate = col.quantity[k], col.rate[k]
                    cents = round_money(amount)
                    rounded.append(cents)
                    comps.append({"kind": col.kind, "amount": str(amount), "description": col.description[k],
                                  "quantity": None if qty is None else str(qty), "unit": col.unit[k],
                                  "rate": None if rate is None else str(rate), "rule_id": col.rule_id,
                                  "rounded": str(cents)})
        target = ES.PENDING if note else timing_target
        amount = sum(rounded, ZERO)
        if abs(amount) >= AMOUNT_LIMIT:  # beyond what a settlement can hold: its own error, no money
            error = note = (f"implausible amount ${amount:.2f} (beyond ${AMOUNT_LIMIT:,.0f}); check this service "
                            f"point's interval readings and the incentive rules, then recalculate the event")
            comps, rounded, amount, target = [], [], ZERO, ES.PENDING
        rows = values_list[k]
        if has_nan[k]:
            series = [_DUMPS([None if v != v else v for v in r]) for r in rows]
        else:  # what json.dumps writes for a list of finite floats (float repr), without its per-call overhead
            series = ["[" + ", ".join(map(repr, r)) + "]" for r in rows]
        adj = adjustment[k]
        extra, excluded_text, net_text = "", "", ""
        reported = m.reported[k] if is_reported and m.reported else None
        if reported is not None:
            extra += f'"reported": {_DUMPS(reported)}, '
        if not (is_device or is_reported):
            pattern = day_index[k]
            listed = day_excluded[pattern]
            row_specific = bool(m.abnormal and m.abnormal[k]) or bool(m.no_reading_days and m.no_reading_days[k])
            if listed and row_specific:
                named = _excluded_days(m, k, listed)
                abnormal_named = [(d, r) for (d, r), (_, c) in zip(named, listed, strict=True)
                                  if c == bl.R_ABNORMAL]
                if abnormal_named:
                    extra += ('"abnormal_days": '
                              + _DUMPS([{"day": d.isoformat(), "reason": r} for d, r in abnormal_named]) + ", ")
                excluded_text = "; ".join(f"{d} {r}" for d, r in named)
            elif listed:
                excluded_text = pattern_excluded.get(pattern)
                if excluded_text is None:
                    excluded_text = pattern_excluded[pattern] = "; ".join(f"{d} {_LISTED[c]}" for d, c in listed)
            if m.net and m.net[k] is not None:
                fragment, net_text = _net_text(m.net[k], counted[k])
                extra += fragment
                if not program.counts_reduction_below_zero_net_load:
                    net_text += " Reduction below zero net load does not count (program setting)."
            elif m.net_metered and m.net_metered[k]:
                net_text = " Net metered: no received-channel readings, so net load = delivered."
                if not program.counts_reduction_below_zero_net_load:
                    net_text += " Reduction below zero net load does not count (program setting)."
        if m.adjustment_missing and m.adjustment_missing[k]:
            extra += '"adjustment_not_measured": true, '
        shared = m.shared[k] if m.shared else ""  # one meter or one report at the service point, counted once
        if shared:
            extra += f'"meter_shared": {_DUMPS(shared)}, '
        inputs = _Json(
            f'{head}"baseline_kw": {series[0]}, "adjusted_baseline_kw": {series[1]}, '
            f'"actual_kw": {series[2]}, "reduction_kwh": {series[3]}, {extra}'
            f'"participated": [0, {counted[k]}], {day_frag[day_index[k]]}, '
            f'"adjustment": {_float_json(adj, 6)}, "detail": {detail_json(m.detail[k])}, '
            f'"minutes_participated": {minutes[k]}, "participation_status": "{p.status}"}}')
        components = _Json(_DUMPS(comps))
        mstatus = (MeasurementStatus.ERROR if error else
                   MeasurementStatus.OK if ok[k] else MeasurementStatus.INSUFFICIENT_DATA)
        if is_device:
            text = "Device telemetry (no load baseline): kWh avoided = metered device discharge in the event."
        elif is_reported:
            text = _reported_text(reported)
            if shared:
                text += f" {shared[0].upper()}{shared[1:]}."
        else:
            if m.adjustment_missing and m.adjustment_missing[k]:
                text = (f"{m.method}: baseline = {x_of_y} similar days ({day_text[day_index[k]]}); day-of "
                        "adjustment not measured (the event day's readings are missing in the adjustment hours): "
                        f"baseline not adjusted ({1 if adj != adj else format_quantity(adj, places=4, trim=True)}).")
            else:
                text = (f"{m.method}: baseline = {x_of_y} similar days ({day_text[day_index[k]]}); day-of "
                        f"adjustment {'none' if adj != adj else format_quantity(adj, places=4, trim=True)}.")
            if excluded_text:
                text += f" Days left out: {excluded_text}."
            text += net_text
            if shared:
                text += f" {shared[0].upper()}{shared[1:]}."
        text += (f" {format_quantity(kwh[k], 'kWh', max_places=4)} avoided over {counted[k]} intervals of "
                 f"{m.interval_minutes} min; average kW drop {format_quantity(kw[k], 'kW')} over the event "
                 "window.")
        if opted_out[k]:
            text += (f" Opted out at {format_local(p.opted_out_at, event.program.time_zone)}: participated "
                     f"{format_quantity(fraction[k] * 100, '%', places=1, trim=True)} of the event."
                     if p.opted_out_at else " Opted out.")
        if error:
            text += f" Not settled: {error}."
        elif note:
            text += f" Pending: {note}."
        for c, cents in zip(comps, rounded, strict=True):
            text += f" {c['kind']}: {c['description']} -> {format_money(cents)}."
        text += f" Total {format_money(amount)} ({target})."
        digest = hashlib.sha256(
            (f"{target}|{mstatus}|{kwh[k]}|{kw[k]}|{fraction[k]}|{opted_out[k]}|{amount}|{components}|{inputs}"
             + (f"|{error}" if error else "")).encode()).hexdigest()
        out.append({"status": target, "measurement_status": mstatus, "method": m.method, "kwh_avoided": kwh[k],
                    "kw_drop_avg": kw[k], "participation_fraction": fraction[k], "opted_out": opted_out[k],
                    "amount": amount, "components": components, "inputs": inputs, "explanation": text,
                    "error": error, "fingerprint": digest})
    return out


_NO_CAPACITY = inc.EnrolledCapacity()


def event_settle_chunk(*, batch: SettlementBatch, sp_first: int, sp_last: int, now: dt.datetime,
                       actor: Any, errors: list[dict] | None = None) -> dict[str, int]:
    """Settle the participations of the batch's event at service points ``sp_first..sp_last`` (inclusive ids).

    Creates missing settlements (COPY on PostgreSQL), leaves unchanged ones (same fingerprint) untouched, updates
    changed unapproved ones and re-opens changed approved ones (revision + 1, status back to CALCULATED/DEFERRED,
    audited with ``actor``). A constant number of queries whatever the chunk size. Returns counts.

    A service point that cannot be settled (implausible meter data: ``_implausible``) does not fail the chunk: its
    settlement stays PENDING with measurement status ERROR, its ``error`` in words and no money; it is counted as
    failed and appended to ``errors`` as ``{service_point_id, participation_id, error}`` (recorded on the batch).

    An internal step of ``event_settle`` (checked when the batch started): run by its Celery task with that task's
    system actor; no capability check here.
    """
    event = Event.objects.select_related("program").get(pk=batch.event_id)
    program = event.program
    tz = zone(program.time_zone)
    event_day = local_date(event.start, tz)
    parts = [_Part(row) for row in Participation.objects.filter(
        event=event, service_point_id__gte=sp_first, service_point_id__lte=sp_last)
        .exclude(status=ParticipationStatus.CANCELLED).order_by("service_point_id", "id").values_list(*_Part.FIELDS)]
    counts = {"calculated": 0, "unchanged": 0, "corrected": 0, "pending": 0, "failed": 0}
    if not parts:
        return counts
    measured = meas.measure_event(event=event, participations=parts, now=now)  # one per interval grid
    rules = rule_specs(program, kinds=[IncentiveKind.PERFORMANCE_KWH, IncentiveKind.PER_EVENT,
                                       IncentiveKind.OPT_OUT_PENALTY], on_day=event_day,
                       price_window=(event.start, event.end))
    capacity = {}
    if any(r.kind == IncentiveKind.PER_EVENT and r.basis in inc.CAPACITY_BASES for r in rules):
        capacity = enrolled_capacity(sorted({p.enrollment_id for p in parts}), start=event_day,
                                     end=event_day + dt.timedelta(days=1))
    existing = {pid: _Existing(pk, fingerprint, status) for pk, pid, fingerprint, status in
                EventSettlement.objects.filter(event=event, service_point_id__gte=sp_first,
                                               service_point_id__lte=sp_last)
                .values_list("pk", "participation_id", "fingerprint", "status")}
    by_pk = {p.pk: p for p in parts}
    by_participation = {}
    for m in measured:
        group = [by_pk[pk] for pk in m.participation_ids]
        by_participation.update(zip(m.participation_ids, _settlement_rows(
            event=event, parts=group, m=m, rules=rules, capacity=capacity), strict=True))
    records = [by_participation[p.pk] for p in parts]
    creates, changed = [], {}
    for p, fields in zip(parts, records, strict=True):
        failed = bool(fields["error"])
        if failed:
            counts["failed"] += 1
            if errors is not None:
                errors.append({"service_point_id": p.service_point_id, "participation_id": p.pk,
                               "error": fields["error"]})
        elif fields["status"] == ES.PENDING:
            counts["pending"] += 1
        known = existing.get(p.pk)
        if known is None:
            creates.append(dict(
                batch_id=batch.pk, event_id=event.pk, participation_id=p.pk, program_id=program.pk,
                enrollment_id=p.enrollment_id, account_id=p.account_id, service_point_id=p.service_point_id,
                device_id=p.device_id, revision=1, posted_amount=ZERO, approved_at=None,
                event_day=event_day, calculated_at=now, created_at=now, updated_at=now, **fields))
            counts["calculated"] += fields["status"] != ES.PENDING
        elif known.fingerprint == fields["fingerprint"] or known.status == ES.REVERSED:
            counts["unchanged"] += not failed
        elif known.status == ES.APPROVED and fields["status"] == ES.PENDING:
            counts["unchanged"] += not failed  # corrected data became insufficient: approved money stays; reported
        else:
            changed[known.pk] = fields
    updates, reopened = [], defaultdict(list)
    with transaction.atomic():
        # Locked and read in this transaction: an approval committed since ``existing`` was read is seen (the row
        # is then re-opened as a correction of approved money, never written back over APPROVED as unapproved).
        for es in (EventSettlement.objects.select_for_update().filter(pk__in=list(changed)).order_by("pk")
                   if changed else ()):
            fields = changed[es.pk]
            if es.status == ES.REVERSED or (es.status == ES.APPROVED and fields["status"] == ES.PENDING):
                continue  # as decided above for these statuses: approved money stays
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
        bulk.insert_dicts(EventSettlement, creates)
        if updates:
            EventSettlement.objects.bulk_update(updates, [*records[0].keys(), "revision", "batch", "calculated_at",
                                                          "updated_at"], batch_size=1000)
        for (frm, to), pks in reopened.items():
            reason = (f"recalculated by batch {batch.pk}"
                      + (" (correction after approval)" if frm == ES.APPROVED else ""))
            audit_rows(model=EventSettlement, rows=[(pk, frm, to, reason) for pk in pks], now=now, actor=actor)
        if updates:
            _recalculate_holding(event_settlement_ids=[es.pk for es in updates], now=now, actor=actor)
    return counts


def _recalculate_holding(*, event_settlement_ids: list[int], now: dt.datetime, actor: Any) -> None:
    """Recalculate the customer settlements not yet approved that hold lines of these (just changed) event
    settlements: a season settlement carries each deferred event settlement's components as lines, so a correction
    of a deferred event settlement (or its return to PENDING) must change what the season settlement pays before it
    is approved; otherwise the approval would pay the old amount and mark the event settlement approved with money
    that is not its own. One query when none holds them."""
    from .customer_settlement import _settlements_calculate

    groups: dict[tuple, list[int]] = defaultdict(list)
    for account_id, *key in (CustomerSettlement.objects.filter(
            lines__event_settlement_id__in=event_settlement_ids, status__in=[CS.PENDING, CS.CALCULATED])
            .values_list("account_id", "program_id", "period_kind", "period_start", "period_end", "season_id")
            .distinct().order_by()):
        groups[tuple(key)].append(account_id)
    if not groups:
        return
    from programs.models import Program, Season

    programs = Program.objects.in_bulk({k[0] for k in groups})
    seasons = Season.objects.in_bulk({k[4] for k in groups if k[4]})
    for (program_id, period_kind, start, end, season_id), accounts in sorted(groups.items(), key=str):
        _settlements_calculate(account_ids=accounts, program=programs[program_id], period_kind=period_kind,
                               period_start=start, period_end=end, now=now, actor=actor,
                               season=seasons.get(season_id))


def _post_lines(es: EventSettlement, *, now, customer_settlement: CustomerSettlement | None = None) -> None:
    """Post the settlement's components as lines; if it had live lines (approved before), post a reversal of each
    (-old) and the new lines (+new), unless the amounts are the same (then nothing is posted). Its live lines may
    be the lines a season settlement not yet approved holds of a deferred settlement: they are its money now, so
    ``posted_amount`` reads their net (it read $0.00 for an approved settlement whose line the season pays)."""
    live = list(es.lines.filter(reverses__isnull=True, reversed_by__isnull=True))
    wanted = [c for c in es.components if Decimal(c["rounded"]) != 0]
    if sorted((x.kind, x.amount) for x in live) == sorted((c["kind"], Decimal(c["rounded"])) for c in wanted):
        posted = es.lines.aggregate(s=Sum("amount"))["s"] or ZERO
        if posted != es.posted_amount:
            EventSettlement.objects.filter(pk=es.pk).update(posted_amount=posted)
            es.posted_amount = posted
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


@use_case("event_settlement.approve", Cap.APPROVE_SETTLEMENTS)
def event_settlement_approve(*, settlement: EventSettlement, now: dt.datetime, actor: Any, reason: str = "",
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


@use_case("event_settlements.approve", Cap.APPROVE_SETTLEMENTS)
def event_settlements_approve(*, settlements, now: dt.datetime, actor: Any) -> int:
    """Approve many event settlements (admin and API bulk action), each as ``event_settlement_approve`` (one audit
    entry ``event_settlement.approved`` per settlement, with the actor and reason); returns how many were approved
    now."""
    done = 0
    for es in settlements:
        if es.status in (ES.CALCULATED, ES.DEFERRED):
            event_settlement_approve(settlement=es, now=now, actor=actor)
            done += 1
    return done


@use_case("event_settlement.reverse", Cap.APPROVE_SETTLEMENTS)
def event_settlement_reverse(*, settlement: EventSettlement, reason: str, now: dt.datetime,
                             actor: Any) -> EventSettlement:
    """Reverse an APPROVED event settlement entirely (settled in error): a negative line for each live line;
    status REVERSED; a customer settlement not yet approved that holds its lines is recalculated with the reversal.
    ``reason`` is required. Raises ``DomainValidationError`` / ``TransitionNotAllowed``."""
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
        # A customer settlement not yet approved that holds the reversed lines takes their reversal now: it no
        # longer bills a credit settled in error (to take it back on the next bill).
        _recalculate_holding(event_settlement_ids=[es.pk], now=now, actor=actor)
    return es


