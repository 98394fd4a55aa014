"""The reservation engine: which enrolled devices an event calls, and why each other candidate is skipped.

Set-based: per span of ``CPM_CHUNK_SIZE`` candidates (consecutive subscription id ranges), a constant number of SQL
queries whatever the number of devices (candidates, history, unavailability, overlaps and existing participations
are each one query, with the span's ids as one array parameter; the decision is computed in Python by
``events.ledger``; rows are COPYed), so memory is bounded by the span. One transaction holds every span of an event
(``event_reserve``), or each chunk runs in its own transaction (``event_reservation_start`` + ``reserve_chunk`` +
``event_reservation_finish``) so job chunks (``cpm.base.jobs``) spread over workers; with a target kW the rotation
order is computed centrally by the plan. See ``events.ledger`` for the counting choice.

The steps, in reading order: the candidates (``CandidateFilters``, ``_candidate_rows`` -> ``CandidateRow``), the
plan (``_candidate_spans`` -> ``Span``), the locks, the evaluation of a span (``_evaluate``: the facts of the span
read by ``_gather`` into ``SpanFacts``, then ``_decide``: ``_first_skip`` per candidate, then the limits), the target
kW (``_choose``), and the writes (``_write`` -> ``_plan_writes``, ``_apply``: ledger rows and participations, COPY on
PostgreSQL).

Pipelined (``reserve_locked``, issue 20): the next span is read before this span is written, then decided while
PostgreSQL inserts this span's ledger rows and its writes planned while it inserts this span's participations
(``cpm.base.bulk.insert_rows_start``), so this process and the database work at the same time. Safe because a
span's writes change only this event's ledger and this span's participations of this event, which no other span
reads; a span that takes devices from lower-priority events (their participations released, which the next span's
limits count) is written before the next span is read.

Audit: the reservation ledger (one ``Reservation`` row per candidate, with the decision and the reason in words) is
itself the audit of every decision, including the participations it creates and moves. Those bulk writes run at
100,000s of rows per event, so no ``AuditEntry`` is written per new participation inside the spans: the run writes
ONE audit entry per event (``_finish_reservation``: actor, reason ``reservation``, counts by decision). A status
change of an existing participation (a re-run cancelling one that no longer fits, or re-opening one that fits
again) gets its own entry (from, to, the actor, the ledger's reason), written in one insert with the change
(``_apply``): the next run replaces the ledger row, and the participation's History page must still say it
happened. Bulk participation changes outside the engine (dispatch, cancel) are audited per row
(``events.services.common.participations_move``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, StringAgg, Value, Window
from django.db.models.functions import Cast, RowNumber

from cpm.base.audit import audit_record, audit_write
from cpm.base.bulk import insert_rows_start
from cpm.base.capabilities import Cap, require, system_actor, use_case
from cpm.base.errors import ConflictError, DomainValidationError
from cpm.base.fetch import fetch_rows
from devices.choices import DeviceStatus
from devices.models import Device
from enrollments.choices import EnrollmentStatus
from enrollments.models import Enrollment, ProgramSubscription
from programs import rules as program_rules
from programs.models import IncentiveRule

from .. import ledger, priority
from ..choices import COUNTED_EVENT_STATUSES, EventStatus, ParticipationStatus, ReservationDecision
from ..models import Event, Participation, Reservation, Unavailability
from ..selectors import ProgramContext
from ..signals import event_reserved
from .common import RELEASED, event_local_dates, require_scheduled

# Participation statuses a reservation run decides again (an opt-out or an outcome is kept as recorded).
REEVALUATED = (ParticipationStatus.RESERVED, ParticipationStatus.DISPATCHED, ParticipationStatus.CANCELLED)
# Who releases a lower-priority event's participation when the engine runs without a caller's actor (a chunk).
TAKEOVER_ACTOR = system_actor("events.reserve")


# ------------------------------------------------------------------------------------------------------ named rows
class CandidateRow(NamedTuple):
    """One candidate of a span: a subscription with its enrollment's and device's fields (device ones None for a
    device-less subscription)."""

    subscription_id: int
    enrollment_id: int
    enrollment_status: str
    enrollment_from: dt.date | None
    enrollment_to: dt.date | None
    subscription_from: dt.date
    subscription_to: dt.date | None
    device_id: int | None
    device_status: str | None
    last_seen_at: dt.datetime | None
    capacity_kw: Decimal | None
    service_point_id: int


class ExistingParticipation(NamedTuple):
    """This event's participation of a candidate, if it has one."""

    id: int
    status: str
    window: tuple[dt.datetime, dt.datetime]


class ReservationRow(NamedTuple):
    """One ledger row as written (the field names are the table's columns, in COPY order)."""

    event_id: int
    subscription_id: int
    enrollment_id: int
    device_id: int | None
    service_point_id: int
    decision: str
    detail: str
    capacity_kw: Decimal
    decided_at: dt.datetime


class NewParticipationRow(NamedTuple):
    """One participation created by a run (the field names are the table's columns, in COPY order)."""

    event_id: int
    subscription_id: int
    enrollment_id: int
    device_id: int | None
    service_point_id: int
    status: str
    start: dt.datetime
    end: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime


class Take(NamedTuple):
    """A lower-priority event's participation of a device this event takes (``events.priority``): released first,
    its ledger row saying so (``released_text``)."""

    participation_id: int
    other: priority.Ranked
    taken_text: str  # this event's side, in words
    released_text: str  # the other event's side


@dataclass(slots=True)
class Decided:
    subscription_id: int
    enrollment_id: int
    device_id: int | None
    service_point_id: int
    capacity_kw: Decimal
    season_count: int
    decision: str | None  # None = passes every check (RESERVED or TARGET_MET once the target is applied)
    detail: str
    held: bool = False  # an outcome or opt-out is recorded for this event: keeps its participation as it is
    participation_id: int | None = None  # this event's participation, if any (re-evaluated unless held)
    participation_status: str | None = None
    participation_window: tuple[dt.datetime, dt.datetime] | None = None  # its (start, end)
    takes: list[Take] | None = None  # lower-priority participations of the device this event takes when reserved
    took: bool = False  # reserved by taking it from a lower-priority event (now, or in an earlier run of this event)


# ------------------------------------------------------------------------------------------------------ candidates
@dataclass(frozen=True, slots=True)
class Span:
    """A chunk of a reservation: the candidates with ``first_id <= subscription id < end_id`` (None = unbounded).

    The spans of a plan are consecutive and open at both ends, so a candidate that appears after the plan was made
    still falls in exactly one chunk."""

    first_id: int | None = None
    end_id: int | None = None

    def filter(self, qs, field: str = "pk"):
        if self.first_id is not None:
            qs = qs.filter(**{f"{field}__gte": self.first_id})
        if self.end_id is not None:
            qs = qs.filter(**{f"{field}__lt": self.end_id})
        return qs

    def __contains__(self, subscription_id: int) -> bool:
        return ((self.first_id is None or subscription_id >= self.first_id)
                and (self.end_id is None or subscription_id < self.end_id))


@dataclass(frozen=True, slots=True)
class CandidateFilters:
    """What makes a subscription a candidate of an event, as conditions on each model's own fields: the
    subscription's, its enrollment's (program, status, dates, the targeted territories/substations/feeders of its
    premise) and its device's (targeted device types). ``queryset`` joins them (set-level uses: spans, locks,
    ex-candidates); a span's rows are fetched table by table with the same conditions (``_candidate_rows``)."""

    subscription: Q
    enrollment: Q
    device: Q

    @classmethod
    def of(cls, event: Event, ctx: ProgramContext) -> CandidateFilters:
        first, last = event_local_dates(event, ctx.tz)
        subscription = Q(start_date__lte=last) & (Q(end_date__isnull=True) | Q(end_date__gt=first))
        enrollment = (Q(program_id=event.program_id,
                        status__in=(EnrollmentStatus.ACTIVE, EnrollmentStatus.SUSPENDED))
                      & (Q(end_date__isnull=True) | Q(end_date__gt=first)))
        premise = "service_point__premise__"
        for field, values in (("service_territory", event.target_territories),
                              ("substation", event.target_substations), ("feeder", event.target_feeders)):
            if values:
                enrollment &= Q(**{f"{premise}{field}__in": values})
        device = Q(device_type__in=event.target_device_types) if event.target_device_types else Q()
        through = Event.target_devices.through.objects.filter(event_id=event.pk)
        if through.exists():
            subscription &= Q(device_id__in=through.values("device_id"))
        return cls(subscription, enrollment, device)

    def queryset(self, span: Span | None = None):
        qs = ProgramSubscription.objects.filter(self.subscription, _prefixed(self.enrollment, "enrollment__"),
                                                _prefixed(self.device, "device__"))
        return span.filter(qs) if span is not None else qs


def _prefixed(q: Q, prefix: str) -> Q:
    """``q`` with every lookup moved under a relation (``Q(status=...)`` -> ``Q(enrollment__status=...)``)."""
    out = Q()
    out.connector, out.negated = q.connector, q.negated
    out.children = [_prefixed(c, prefix) if isinstance(c, Q) else (prefix + c[0], c[1]) for c in q.children]
    return out


def _candidates_qs(event: Event, ctx: ProgramContext, span: Span | None = None):
    """Subscriptions of the program's ACTIVE/SUSPENDED enrollments overlapping the event's local dates, inside the
    event's targeting (whole-event coverage and device checks are decided in Python, with a reason)."""
    return CandidateFilters.of(event, ctx).queryset(span)


def _candidate_rows(filters: CandidateFilters, span: Span | None, *, lock: bool,
                    ids: frozenset[int] | None = None) -> list[CandidateRow]:
    """The span's candidates as rows (subscription, enrollment, device fields), in subscription id order; ``ids``:
    only those subscriptions (in any span).

    Table by table, each on its primary key (the span's id range, then its enrollments' and devices' ids as one
    array each): a join would hash the whole enrollment and device tables for every span. ``lock``: row locks on
    the span's devices (device-less subscriptions: the subscriptions) in id order, taken before the enrollment and
    device rows are read."""
    subs_qs = ProgramSubscription.objects.filter(filters.subscription)
    if span is not None:
        subs_qs = span.filter(subs_qs)
    if ids is not None:
        subs_qs = subs_qs.filter(pk__any=ids)
    subs = fetch_rows(subs_qs.order_by("pk").values_list("pk", "enrollment_id", "start_date", "end_date", "device_id"))
    if not subs:
        return []
    # Id sets (not lists): Django resolves a list parameter element by element (``cpm.base.lookups``).
    device_ids = frozenset(s[4] for s in subs if s[4] is not None)
    if lock:
        _lock_rows(Device.objects.filter(pk__any=device_ids))
        _lock_rows(ProgramSubscription.objects.filter(pk__any=frozenset(s[0] for s in subs if s[4] is None)))
    enrollments = {pk: rest for pk, *rest in fetch_rows(Enrollment.objects.filter(
        filters.enrollment, pk__any=frozenset(s[1] for s in subs)).values_list(
        "pk", "status", "effective_date", "end_date", "service_point_id"))}
    devices = {pk: rest for pk, *rest in fetch_rows(Device.objects.filter(
        filters.device, pk__any=device_ids).values_list("pk", "status", "last_seen_at", "capacity_kw"))}
    no_device = (None, None, None) if not filters.device.children else None  # targeted types need a device
    rows = []
    for sid, eid, s_from, s_to, did in subs:
        enrollment = enrollments.get(eid)
        device = devices.get(did) if did is not None else no_device
        if enrollment is None or device is None:
            continue
        e_status, e_from, e_to, sp_id = enrollment
        d_status, last_seen, cap = device
        rows.append(CandidateRow(sid, eid, e_status, e_from, e_to, s_from, s_to, did, d_status, last_seen, cap,
                                 sp_id))
    return rows


def _candidate_spans(event: Event, ctx: ProgramContext, chunk_size: int) -> list[Span]:
    """Consecutive spans of at most ``chunk_size`` candidates each, covering every subscription id.

    One query: the id of every ``chunk_size``-th candidate by ``ROW_NUMBER() OVER (ORDER BY id)``, so the plan
    holds N / chunk_size ids, not N."""
    if chunk_size < 1:
        raise DomainValidationError({"chunk_size": ["must be at least 1"]})
    firsts = list(_candidates_qs(event, ctx).alias(row=Window(RowNumber(), order_by=F("pk").asc()))
                  .annotate(slot=(F("row") - 1) % chunk_size).filter(slot=0).order_by("pk")
                  .values_list("pk", flat=True))
    bounds = [None, *firsts[1:], None]
    return [Span(lo, hi) for lo, hi in zip(bounds, bounds[1:], strict=False)] if firsts else []


# ----------------------------------------------------------------------------------------------------------- locks
def _lock_candidates(cands) -> None:
    """Row locks on the candidates' devices (device programs) and subscriptions (device-less), in id order, so two
    reservations touching the same device or participant serialize (no deadlock: same order everywhere)."""
    _lock_rows(Device.objects.filter(pk__in=cands.filter(device__isnull=False).values("device_id")))
    _lock_rows(ProgramSubscription.objects.filter(pk__in=cands.filter(device__isnull=True).values("pk")))


def _lock_rows(qs) -> None:
    """``SELECT ... FOR UPDATE`` of ``qs`` in id order; the locked rows are counted in the database, not fetched, so
    memory does not grow with the program."""
    try:
        sql, params = qs.order_by("pk").select_for_update().values("pk").query.sql_with_params()
    except EmptyResultSet:  # nothing to lock (an empty id list)
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql}) AS locked", params)


# ------------------------------------------------------------------------------------------------------ evaluation
@dataclass(slots=True)
class SpanChecks:
    """The facts a span's candidates are checked against (``_first_skip``), gathered once per span."""

    first: dt.date  # the event's first and last local dates
    last: dt.date
    requires_device: bool
    online_since: dt.datetime
    online_threshold_minutes: int
    tz: dt.tzinfo  # the program's zone: every time in a reason is written in it
    unavailable: dict[tuple[int, int | None], str]  # (enrollment, device or None for all) -> the reason in words
    busy_device: dict[int, str]  # device -> the overlapping event in words
    busy_service_point: dict[int, str]  # device-less participant's service point -> idem
    take_device: dict[int, list[Take]]  # device -> lower-priority participations this event may take
    take_service_point: dict[int, list[Take]]  # device-less participant's service point -> idem
    taken_device: dict[int, list[str]]  # device -> taken by an earlier run of this event, in words (a re-run)
    taken_service_point: dict[int, list[str]]
    declined: str = ""  # the program declines this event (no incentive): the reason in words
    has_target: bool = False  # the event has a target kW (a held participation's row says whether it counts)


@dataclass(slots=True)
class LimitChecks:
    """The program's limits for this event and the participants' history in the window the limits look at."""

    target: ledger.LedgerEvent
    period: ledger.Period
    limits: ledger.Limits
    past: dict[int, ledger.LedgerEvent]  # counted events of the program in the history window
    history: dict[int, frozenset[int]]  # enrollment -> past events it took part in
    opted: dict[int, frozenset[int]]  # enrollment -> past events it opted out of
    tz: dt.tzinfo = dt.UTC  # the program's zone: a reason names another event's times in it


def _limit_checks(event: Event, ctx: ProgramContext, enrollment_ids: list[int]) -> LimitChecks:
    """The rule in effect on the event's day, its limits, and the history of the span's enrollments (two queries:
    the program's counted events in the window the limits look at, then one aggregate per enrollment)."""
    target = ctx.ledger_event(event.pk, event.start, event.end)
    period = ctx.period_of(target.local_day)
    rule = ctx.rule_on(target.local_day)
    kind, allowance = program_rules.opt_out_allowance(rule)
    limits = ledger.Limits.from_rule(rule, allowance_kind=kind, allowance=allowance)
    around = dt.timedelta(days=limits.lookaround_days)
    win_first = min(period.first, target.local_day - around)
    win_last = max(period.last, target.local_day + around)
    win_start = dt.datetime.combine(win_first, dt.time(0), tzinfo=ctx.tz)
    win_end = dt.datetime.combine(win_last + dt.timedelta(days=1), dt.time(0), tzinfo=ctx.tz)
    past = {eid: ctx.ledger_event(eid, s, e, name) for eid, s, e, name in Event.objects.filter(
        program_id=ctx.program.pk, status__in=COUNTED_EVENT_STATUSES, start__lt=win_end, end__gt=win_start,
    ).exclude(pk=event.pk).order_by().values_list("pk", "start", "end", "name")}
    history: dict[int, frozenset[int]] = {}
    opted: dict[int, frozenset[int]] = {}
    if past:
        as_text = Cast("event_id", CharField())
        for enrollment_id, evs, outs in fetch_rows(
            Participation.objects.filter(event_id__any=list(past), enrollment_id__any=frozenset(enrollment_ids))
            .exclude(status=RELEASED).values("enrollment_id")
            .annotate(evs=StringAgg(as_text, Value(",")),
                      outs=StringAgg(as_text, Value(","), filter=Q(status=ParticipationStatus.OPTED_OUT)))
            .order_by().values_list("enrollment_id", "evs", "outs")
        ):
            history[enrollment_id] = frozenset(map(int, evs.split(","))) if evs else frozenset()
            opted[enrollment_id] = frozenset(map(int, outs.split(","))) if outs else frozenset()
    return LimitChecks(target, period, limits, past, history, opted, ctx.tz)


def _unavailability(event: Event, ctx: ProgramContext, enrollment_ids: list[int]) -> dict[tuple[int, int | None], str]:
    """Customer-declared unavailability overlapping the event, keyed by (enrollment, device or None), in words."""
    unavailable: dict[tuple[int, int | None], str] = {}
    for enrollment_id, device_id, u_start, u_end, why in Unavailability.objects.filter(
            enrollment_id__any=frozenset(enrollment_ids), start__lt=event.end, end__gt=event.start,
    ).order_by().values_list("enrollment_id", "device_id", "start", "end", "reason"):
        text = (f"Customer declared unavailable {u_start.astimezone(ctx.tz):%Y-%m-%d %H:%M %Z} to "
                f"{u_end.astimezone(ctx.tz):%Y-%m-%d %H:%M %Z}" + (f" ({why})." if why else "."))
        unavailable.setdefault((enrollment_id, device_id), text)
    return unavailable


def _ranked(event: Event, program) -> priority.Ranked:
    return priority.Ranked(event.pk, event.name, program.code, event.category, event.direction,
                           program.event_priority)


class Overlaps(NamedTuple):
    """The span's devices (and device-less service points) held by overlapping events (``_overlaps``)."""

    busy_device: dict[int, str]  # device -> the overlapping event that keeps it, in words
    busy_service_point: dict[int, str]
    take_device: dict[int, list[Take]]  # device -> lower-priority participations this event takes when reserved
    take_service_point: dict[int, list[Take]]
    takeable: frozenset[int]  # the overlapping events this event may take devices from (lower priority, SCHEDULED)
    taken_device: dict[int, list[str]]  # device -> this event's earlier takes of it (a re-run), in words
    taken_service_point: dict[int, list[str]]


def _overlaps(event: Event, this: priority.Ranked, device_ids: list[int], deviceless_sp_ids: list[int]) -> Overlaps:
    """The span's devices (and device-less service points) held by an overlapping event: those this event may not
    have, in words, and those it takes from lower-priority events (``events.priority``: the holder's participation
    is RESERVED in a SCHEDULED event of lower priority; one holder it may not take keeps the device).

    A participation holds its event's window (moved with it), so only events overlapping this one can hold an
    overlapping participation: those events first (a few rows of the event table), then their participations of
    the span's devices; never a scan of every participation by time. No overlapping event: one query, as before."""
    busy: tuple[dict[int, str], dict[int, str]] = ({}, {})
    takes: tuple[dict[int, list[Take]], dict[int, list[Take]]] = ({}, {})
    others = {pk: (priority.Ranked(pk, name, code, category, direction, prio), status)
              for pk, name, code, category, direction, prio, status in Event.objects.exclude(pk=event.pk).exclude(
                  status=EventStatus.CANCELLED).filter(start__lt=event.end, end__gt=event.start).order_by()
              .values_list("pk", "name", "program__code", "category", "direction", "program__event_priority",
                           "status")}
    for pid, p_status, device_id, sp_id, other_id in (
            Participation.objects.filter(event_id__any=list(others)).exclude(status=RELEASED)
            .filter(start__lt=event.end, end__gt=event.start)
            .filter(Q(device_id__any=frozenset(device_ids))
                    | Q(device__isnull=True, service_point_id__any=frozenset(deviceless_sp_ids)))
            .order_by("pk").values_list("pk", "status", "device_id", "service_point_id", "event_id")
            if others else ()):
        other, other_status = others[other_id]
        side, key = (0, device_id) if device_id is not None else (1, sp_id)
        if (priority.outranks(this, other) and p_status == ParticipationStatus.RESERVED
                and other_status == EventStatus.SCHEDULED):
            takes[side].setdefault(key, []).append(Take(pid, other, _taken_text(this, other),
                                                        _released_text(this, other)))
        else:
            busy[side].setdefault(key, _held_text(this, other))
    for side in (0, 1):
        for key in busy[side]:
            takes[side].pop(key, None)
    takeable = frozenset(pk for pk, (other, status) in others.items()
                         if status == EventStatus.SCHEDULED and priority.outranks(this, other))
    return Overlaps(busy[0], busy[1], takes[0], takes[1], takeable,
                    *_taken_before(this, {pk: others[pk][0] for pk in takeable}, device_ids, deviceless_sp_ids))


def _taken_before(this: priority.Ranked, takeable: dict[int, priority.Ranked], device_ids: list[int],
                  deviceless_sp_ids: list[int]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """The span's devices (and device-less service points) an earlier run of this event took from the overlapping
    lower-priority events (their ledger rows RELEASED by it: ``_take_over``), with the sentence the take wrote, so a
    re-run says the same. No query without such events."""
    found: tuple[dict[int, list[str]], dict[int, list[str]]] = ({}, {})
    if not takeable:
        return found
    for device_id, sp_id, other_id in (
            Reservation.objects.filter(event_id__any=list(takeable), decision=ReservationDecision.RELEASED,
                                       detail__startswith=f"{RELEASED_BY}event #{this.id} '")
            .filter(Q(device_id__any=frozenset(device_ids))
                    | Q(device__isnull=True, service_point_id__any=frozenset(deviceless_sp_ids)))
            .order_by("event_id").values_list("device_id", "service_point_id", "event_id")):
        other = takeable[other_id]
        side, key = (0, device_id) if device_id is not None else (1, sp_id)
        found[side].setdefault(key, []).append(_taken_text(this, other))
    return found


RELEASED_BY = "Released: taken by "  # how a taken participation's ledger row starts (``_released_text``)


def _taken_text(this: priority.Ranked, other: priority.Ranked) -> str:
    """The taking event's side of a take-over, in words (its ledger row; a re-run repeats it: ``_taken_before``)."""
    return (f"Taken from {other.words()} (higher priority wins: {priority.why_higher(this, other)})."
            + priority.direction_note(this, other))


def _released_text(this: priority.Ranked, other: priority.Ranked) -> str:
    """The other event's side, in words: starts with ``RELEASED_BY`` and the taking event's ``words()``."""
    return (f"{RELEASED_BY}{this.words()}, which overlaps it with higher priority "
            f"({priority.why_higher(this, other)})." + priority.direction_note(other, this))


def _held_text(this: priority.Ranked, other: priority.Ranked) -> str:
    """Why ``other`` keeps the device, in words (the plain sentence at equal priority in the same direction)."""
    note = priority.direction_note(this, other)
    if priority.outranks(other, this):
        return (f"Already reserved for {other.words()} at the same time, which has higher priority "
                f"({priority.why_higher(other, this)}).{note}")
    if priority.outranks(this, other):
        return (f"Already dispatched for {other.words()} at the same time: this event has higher priority "
                f"({priority.why_higher(this, other)}), but a device already dispatched stays in its event.{note}")
    text = f"Already reserved for {other.words()} at the same time."
    return f"{text}{note} At equal priority the event reserved first keeps the device." if note else text


def _declined(event: Event, ctx: ProgramContext) -> str:
    """The reason in words when the program declines this event (``declines_events_without_incentive`` and no
    incentive rule in effect on its first local day pays it: ``events.priority.pays_event``), else "". No query
    when the program does not decline."""
    program = ctx.program
    if not program.declines_events_without_incentive:
        return ""
    day = event.start.astimezone(ctx.tz).date()
    rules = IncentiveRule.objects.filter(Q(season__isnull=True) | Q(season__start_date__lte=day,
                                                                     season__end_date__gte=day),
                                         program_id=program.pk).values_list("kind", "amount", "price_set_id")
    if priority.pays_event(event.direction, ((k, a, p is not None) for k, a, p in rules)):
        return ""
    return priority.declined_text(program.code, event.direction)


def _existing_participations(event: Event, span: Span | None, ids: frozenset[int] | None = None
                             ) -> dict[int, ExistingParticipation]:
    """This event's participations in the span, by subscription: one range of the (event, subscription) index,
    not a probe per id; ``ids``: of those subscriptions only."""
    mine = Participation.objects.filter(event_id=event.pk)
    if ids is not None:
        mine = mine.filter(subscription_id__any=ids)
    return {sid: ExistingParticipation(pid, status, (p_start, p_end)) for sid, pid, status, p_start, p_end in
            fetch_rows((span.filter(mine, "subscription_id") if span is not None else mine)
                       .order_by().values_list("subscription_id", "pk", "status", "start", "end"))}


@dataclass(slots=True)
class SpanFacts:
    """What a span's decisions are made from (``_gather``): its candidates and the facts they are checked against."""

    rows: list[CandidateRow]
    checks: SpanChecks
    limits: LimitChecks
    existing: dict[int, ExistingParticipation]
    contested: Contested | None = None  # only where this event may take participations that count toward limits


@dataclass(slots=True)
class Contested:
    """The span's enrollments' participations in lower-priority overlapping events of the program that this event
    may take (those events count toward the enrollment's limits unless this event takes every one of them), and
    the candidates of those enrollments outside the span whose takes decide it (``_gather``)."""

    participations: dict[int, dict[int, set[int]]]  # enrollment -> other event -> its participation ids there
    outside: list[CandidateRow]  # candidates of the span's enrollments in other spans holding some of them
    outside_existing: dict[int, ExistingParticipation]


def _contested(event: Event, ctx: ProgramContext, filters: CandidateFilters, rows: list[CandidateRow],
               limits: LimitChecks, overlaps: Overlaps) -> Contested | None:
    """The participations a take-over would free the limits of (``Contested``), None when there are none (no
    query: no overlapping lower-priority event of this program). One query, and three more reads (candidates,
    their overlaps, their participations in this event) when some of them belong to candidates outside the span."""
    events = [pk for pk in overlaps.takeable if pk in limits.past]
    if not events:
        return None
    by_enrollment: dict[int, dict[int, set[int]]] = {}
    holders: set[int] = set()
    for pid, enrollment_id, event_id, subscription_id in fetch_rows(
            Participation.objects.filter(event_id__any=events,
                                         enrollment_id__any=frozenset(r.enrollment_id for r in rows))
            .exclude(status=RELEASED).order_by().values_list("pk", "enrollment_id", "event_id", "subscription_id")):
        by_enrollment.setdefault(enrollment_id, {}).setdefault(event_id, set()).add(pid)
        holders.add(subscription_id)
    if not by_enrollment:
        return None
    outside_ids = frozenset(holders - {r.subscription_id for r in rows})
    outside: list[CandidateRow] = []
    existing: dict[int, ExistingParticipation] = {}
    if outside_ids:
        outside = _candidate_rows(filters, None, lock=False, ids=outside_ids)
        more = _overlaps(event, _ranked(event, ctx.program),
                         sorted({r.device_id for r in outside if r.device_id is not None}),
                         sorted({r.service_point_id for r in outside if r.device_id is None}))
        for name in ("busy_device", "busy_service_point", "take_device", "take_service_point"):
            mine = getattr(overlaps, name)
            for key, value in getattr(more, name).items():
                mine.setdefault(key, value)
        existing = _existing_participations(event, None, frozenset(r.subscription_id for r in outside))
    return Contested(by_enrollment, outside, existing)


def _gather(event: Event, ctx: ProgramContext, *, now: dt.datetime, span: Span | None, lock: bool
            ) -> SpanFacts | None:
    """The facts of ``span`` (all candidates when None), None when it has no candidate: a constant number of queries
    (locks, candidates, events of the history window, per-enrollment history, unavailability, overlaps, this
    event's participations). The per-candidate queries take the span's ids as one array parameter each
    (``__any``), so they probe the indexes for the span's rows instead of scanning every participation."""
    program = ctx.program
    first, last = event_local_dates(event, ctx.tz)
    filters = CandidateFilters.of(event, ctx)
    rows = _candidate_rows(filters, span, lock=lock)
    if not rows:
        return None
    enrollment_ids = sorted({r.enrollment_id for r in rows})
    device_ids = sorted({r.device_id for r in rows if r.device_id is not None})
    deviceless_sp_ids = sorted({r.service_point_id for r in rows if r.device_id is None})
    limits = _limit_checks(event, ctx, enrollment_ids)
    overlaps = _overlaps(event, _ranked(event, program), device_ids, deviceless_sp_ids)
    contested = _contested(event, ctx, filters, rows, limits, overlaps)
    checks = SpanChecks(
        first=first, last=last, requires_device=program.requires_device,
        online_since=now - dt.timedelta(minutes=program.device_online_threshold_minutes),
        online_threshold_minutes=program.device_online_threshold_minutes, tz=ctx.tz,
        unavailable=_unavailability(event, ctx, enrollment_ids), busy_device=overlaps.busy_device,
        busy_service_point=overlaps.busy_service_point, take_device=overlaps.take_device,
        take_service_point=overlaps.take_service_point, taken_device=overlaps.taken_device,
        taken_service_point=overlaps.taken_service_point, declined=_declined(event, ctx),
        has_target=event.target_kw is not None)
    return SpanFacts(rows, checks, limits, _existing_participations(event, span), contested)


def _decide(facts: SpanFacts | None) -> list[Decided]:
    """The decisions of a span from its facts (no query)."""
    return [] if facts is None else _decide_rows(facts.rows, facts.checks, facts.limits, facts.existing,
                                                 facts.contested)


def _evaluate(event: Event, ctx: ProgramContext, *, now: dt.datetime, span: Span | None = None,
              lock: bool) -> list[Decided]:
    """Decide every candidate of ``span`` (all when None) without the target kW (``_gather``, then ``_decide``)."""
    return _decide(_gather(event, ctx, now=now, span=span, lock=lock))


def _decide_rows(rows: list[CandidateRow], checks: SpanChecks, limits: LimitChecks,
                 existing: dict[int, ExistingParticipation], contested: Contested | None = None) -> list[Decided]:
    """One ``Decided`` per candidate: held as it is (an outcome or opt-out recorded), else the first failed check
    (``_first_skip``), else the limits, else passing.

    The limits are the enrollment's: every candidate of an enrollment is checked against the same history, the
    events it takes part in as this event leaves them. A lower-priority event this event takes devices from no
    longer counts when this event takes EVERY participation the enrollment has there (each held by a candidate that
    passes the checks before the limits, in this span or another: ``contested``); one it keeps a device in still
    counts, for all its candidates. So the decision does not depend on how the candidates are split into spans or
    chunks, nor on their order, and a re-run (the takes done) decides the same."""
    by_history: dict[tuple[frozenset, frozenset], tuple[int, int, tuple[str, str] | None]] = {}
    empty: frozenset[int] = frozenset()
    period = limits.period
    take_device, take_sp = checks.take_device, checks.take_service_point
    taken_device, taken_sp = checks.taken_device, checks.taken_service_point
    freed = _freed(rows, checks, existing, contested) if contested is not None else {}
    out: list[Decided] = []
    for row in rows:
        # Participants with the same history get the same limit decision: computed once per distinct history
        # (a handful of combinations for most programs) instead of once per device.
        key = (limits.history.get(row.enrollment_id, empty), limits.opted.get(row.enrollment_id, empty))
        gone = freed.get(row.enrollment_id)
        if gone:  # the events it is taken from no longer count toward the enrollment's limits
            key = (key[0] - gone, key[1] - gone)
        known = by_history.get(key)
        if known is None:
            known = by_history[key] = _limit_decision(limits, key)
        season_count, later, limit_skip = known
        cap = row.capacity_kw
        d = Decided(row.subscription_id, row.enrollment_id, row.device_id, row.service_point_id,
                    cap if cap is not None else Decimal("0"), season_count, None, "")
        current = existing.get(row.subscription_id)
        if current:
            d.participation_id, d.participation_status, d.participation_window = current
            if current.status not in REEVALUATED:
                d.held = True
                d.detail = _held_detail(current.status, has_target=checks.has_target)
                out.append(d)
                continue
        d.decision, d.detail = _first_skip(row, checks) or (None, "")
        if d.decision is None:
            if limit_skip:
                d.decision, d.detail = limit_skip
            else:
                d.detail = f"{season_count - later} other event(s) so far in {period.name}" + (
                    f", and {later} more scheduled after this one." if later else ".")
                # Only where lower-priority overlapping events hold (or held) some of the span's devices.
                takes = before = None
                if take_device or take_sp:
                    takes = _of_candidate(row, take_device, take_sp)
                if taken_device or taken_sp:
                    before = _of_candidate(row, taken_device, taken_sp)
                if takes or before:
                    d.takes, d.took = takes, True
                    d.detail = " ".join([*(before or ()), *(t.taken_text for t in takes or ()), d.detail])
        out.append(d)
    return out


# A participation whose outcome is recorded, in words; only one that took part delivers toward a target kW.
_HELD_WORDS = {
    ParticipationStatus.PARTICIPATED: "took part",
    ParticipationStatus.OPTED_OUT: "the customer opted out",
    ParticipationStatus.NON_RESPONSIVE: "the device did not respond",
    ParticipationStatus.FAILED: "the device reported a failure",
}


def _held_detail(status: str, *, has_target: bool) -> str:
    """The ledger sentence of a candidate whose outcome (or opt-out) is recorded for this event: kept as it is."""
    text = f"Reserved earlier; {_HELD_WORDS.get(status, status)}, kept as recorded"
    if has_target and status != ParticipationStatus.PARTICIPATED:
        text += " (does not count toward the target kW)"
    return text + "."


def _of_candidate(row: CandidateRow, by_device: dict, by_service_point: dict):
    """A candidate's entry in a pair of dicts keyed by device and by (device-less) service point, or None."""
    return (by_device.get(row.device_id) if row.device_id is not None
            else by_service_point.get(row.service_point_id))


def _freed(rows: list[CandidateRow], checks: SpanChecks, existing: dict[int, ExistingParticipation],
           contested: Contested) -> dict[int, frozenset[int]]:
    """Per enrollment, the lower-priority events this event takes EVERY participation of (``contested``): each one
    held by a candidate of the enrollment (in this span, or in another: ``contested.outside``) that is not held and
    passes the checks before the limits (``_first_skip``), so it takes it when reserved."""
    taken: dict[int, set[int]] = {}
    for group, mine in ((rows, existing), (contested.outside, contested.outside_existing)):
        for row in group:
            current = mine.get(row.subscription_id)
            if (current is not None and current.status not in REEVALUATED) or _first_skip(row, checks) is not None:
                continue
            takes = _of_candidate(row, checks.take_device, checks.take_service_point)
            if takes:
                taken.setdefault(row.enrollment_id, set()).update(t.participation_id for t in takes)
    return {enrollment_id: frozenset(pk for pk, pids in by_event.items() if pids <= taken.get(enrollment_id, set()))
            for enrollment_id, by_event in contested.participations.items()}


def _limit_decision(limits: LimitChecks, key: tuple[frozenset[int], frozenset[int]]
                    ) -> tuple[int, int, tuple[str, str] | None]:
    """(events of the season, those of them starting after this event, the limit skip or None) for a history
    (events taken part in, opted out of). The rotation counts them all; the ledger says which come later."""
    hist = [limits.past[i] for i in key[0]]
    in_season = [h for h in hist if limits.period.contains(h.local_day)]
    later = sum(1 for h in in_season if h.start > limits.target.start)
    skip = ledger.limit_decision(target=limits.target, season=limits.period, limits=limits.limits, history=hist,
                                 opted_out=[limits.past[i] for i in key[1]], tz=limits.tz)
    return len(in_season), later, skip


# The checks of one candidate, in the order the ledger reports them (the first failing one is the reason).
def _enrollment_skip(row: CandidateRow, c: SpanChecks) -> tuple[str, str] | None:
    """The enrollment must be active and cover the whole event, and so must the subscription."""
    if row.enrollment_status != EnrollmentStatus.ACTIVE:
        return ReservationDecision.NOT_ELIGIBLE, f"Enrollment is {row.enrollment_status}."
    if row.enrollment_from is None or row.enrollment_from > c.first:
        return ReservationDecision.NOT_ELIGIBLE, (f"Enrollment starts {row.enrollment_from}, after the event day "
                                                  f"{c.first}.")
    if row.enrollment_to is not None and row.enrollment_to <= c.last:
        return ReservationDecision.NOT_ELIGIBLE, (f"Enrollment ends {row.enrollment_to}, before the event ends on "
                                                  f"{c.last}.")
    if row.subscription_from > c.first:
        return ReservationDecision.NOT_ELIGIBLE, (f"Subscription starts {row.subscription_from}, after the event day "
                                                  f"{c.first}.")
    if row.subscription_to is not None and row.subscription_to <= c.last:
        return ReservationDecision.NOT_ELIGIBLE, (f"Subscription ends {row.subscription_to}, before the event ends "
                                                  f"on {c.last}.")
    return None


def _device_skip(row: CandidateRow, c: SpanChecks) -> tuple[str, str] | None:
    """A device program needs a device; a device must be active and seen online recently."""
    if c.requires_device and row.device_id is None:
        return ReservationDecision.NOT_ELIGIBLE, "The program needs a device and the subscription has none."
    if row.device_id is not None:
        if row.device_status != DeviceStatus.ACTIVE:
            return ReservationDecision.NOT_ELIGIBLE, f"Device status is {row.device_status}."
        last_seen = row.last_seen_at
        if last_seen is None:
            return ReservationDecision.OFFLINE, "Device has never been seen online."
        if last_seen < c.online_since:
            return ReservationDecision.OFFLINE, (f"Device last seen {last_seen.astimezone(c.tz):%Y-%m-%d %H:%M %Z}, "
                                                 f"more than {c.online_threshold_minutes} minutes before "
                                                 f"reservation.")
    return None


def _availability_skip(row: CandidateRow, c: SpanChecks) -> tuple[str, str] | None:
    """Not when the customer declared the enrollment (or this device) unavailable, nor when already called by an
    overlapping event."""
    eid, device_id = row.enrollment_id, row.device_id
    text = c.unavailable.get((eid, None)) or (device_id and c.unavailable.get((eid, device_id)))
    if text:
        return ReservationDecision.UNAVAILABLE, text
    busy = c.busy_device.get(device_id) if device_id else c.busy_service_point.get(row.service_point_id)
    if busy:
        return ReservationDecision.OVERLAP, busy
    return None


def _first_skip(row: CandidateRow, c: SpanChecks) -> tuple[str, str] | None:
    """The first check the candidate fails, as (decision, reason in words), or None when it passes them all: the
    program declining the event first (it concerns every candidate), then the candidate's own checks."""
    if c.declined:
        return ReservationDecision.NO_INCENTIVE, c.declined
    return _enrollment_skip(row, c) or _device_skip(row, c) or _availability_skip(row, c)


# ------------------------------------------------------------------------------------------------------- target kW
def _choose(decided: list[Decided], target_kw: Decimal | None) -> set[int] | None:
    """Subscription ids to reserve under a target kW (rotation order), or None = every passing candidate."""
    if target_kw is None:
        return None
    held = [d for d in decided if d.held]
    passing = [d for d in decided if d.decision is None and not d.held]
    # Devices already told (dispatched) keep their place before the others when a dispatched event is modified.
    told = [d for d in passing if d.participation_status == ParticipationStatus.DISPATCHED]
    rest = [d for d in passing if d.participation_status != ParticipationStatus.DISPATCHED]
    order = [sid for group in (told, rest)
             for sid in ledger.rotation_order((d.subscription_id, d.season_count, float(d.capacity_kw))
                                              for d in group)]
    cap = {d.subscription_id: float(d.capacity_kw) for d in passing}
    # Only a held participation that took part delivers: an opted-out, non-responsive or failed device's capacity
    # is not there, so the next devices in rotation order make up the target.
    already = sum(float(d.capacity_kw) for d in held if d.participation_status == ParticipationStatus.PARTICIPATED)
    chosen = ledger.pick_until_target(((sid, cap[sid]) for sid in order), max(float(target_kw) - already, 0.0))
    return chosen | {d.subscription_id for d in held}


def _target_choice(event: Event, ctx: ProgramContext, spans: list[Span], *, now: dt.datetime) -> set[int] | None:
    """The subscription ids a target kW reserves (``_choose`` over every candidate: the rotation order is global),
    None without a target. Evaluated span by span; only the passing and held candidates are kept.

    An enrollment the choice reserves a device of is taken whole from lower-priority events: its passing candidates
    that take a device from one (or took it in an earlier run of this event) are reserved too, beyond the target.
    The limits of its chosen candidates were decided with those events freed (``_freed``); leaving those devices
    there would keep the enrollment in both events."""
    if event.target_kw is None:
        return None
    keep: list[Decided] = []
    for span in spans:
        for d in _evaluate(event, ctx, now=now, span=span, lock=False):
            if d.held or d.decision is None:
                d.detail = ""  # not needed for the choice: keep the list small
                keep.append(d)
    chosen = _choose(keep, event.target_kw)
    takers = [d for d in keep if d.took and d.subscription_id not in chosen]
    if takers:
        reserved = {d.enrollment_id for d in keep if d.subscription_id in chosen}
        chosen |= {d.subscription_id for d in takers if d.enrollment_id in reserved}
    return chosen


# ---------------------------------------------------------------------------------------------------------- writes
@dataclass(slots=True)
class WritePlan:
    """What ``_write`` does for a span: the ledger rows and the participations to add, release, re-open or move."""

    counts: dict[str, int]
    reservations: list[ReservationRow]
    new_participations: list[NewParticipationRow]
    release: list[int]
    reopen: list[int]
    move: list[int]  # participations kept, in another window (the event was moved)
    take: list[Take]  # lower-priority events' participations released for this event's new or re-opened ones
    # Why each participation of ``release`` is cancelled (its audit entry's reason).
    reasons: dict[int, str] = dataclasses.field(default_factory=dict)


def _plan_writes(event: Event, decided: list[Decided], chosen: set[int] | None, *, now: dt.datetime,
                 live_status: str) -> WritePlan:
    """The final decision of each candidate (the target kW applied) and what it changes."""
    plan = WritePlan({}, [], [], [], [], [], [])
    counts = plan.counts
    # Per-run constants hoisted out of the loop (``event.pk`` is a property; a TextChoices member's ``str`` is a
    # Python call): the same values, 100,000s of times cheaper.
    event_id, start, end = event.pk, event.start, event.end
    window = (start, end)
    reserved, target_met = ReservationDecision.RESERVED.value, ReservationDecision.TARGET_MET.value
    reservations, new_participations = plan.reservations, plan.new_participations
    target_note = (f"Target {event.target_kw} kW met by devices ranked before it (least called this season "
                   "first, then larger capacity).") if event.target_kw is not None else ""
    for d in decided:
        decision, detail = d.decision, d.detail
        if decision is None:
            if d.held or chosen is None or d.subscription_id in chosen:
                decision = reserved
            else:
                decision, detail = target_met, target_note
        elif type(decision) is not str:
            decision = decision.value  # a ReservationDecision member: its value, as str() gives
        counts[decision] = counts.get(decision, 0) + 1
        reservations.append(ReservationRow(event_id, d.subscription_id, d.enrollment_id, d.device_id,
                                           d.service_point_id, decision, detail[:300], d.capacity_kw, now))
        if d.held:  # its status stays; its window follows the event
            if d.participation_window != window:
                plan.move.append(d.participation_id)
            continue
        if decision == reserved:
            if d.takes:
                plan.take.extend(d.takes)
            if d.participation_id is None:
                new_participations.append(NewParticipationRow(
                    event_id, d.subscription_id, d.enrollment_id, d.device_id, d.service_point_id, live_status,
                    start, end, now, now))
            elif d.participation_status == RELEASED:
                plan.reopen.append(d.participation_id)
            elif d.participation_window != window:
                plan.move.append(d.participation_id)
        elif d.participation_id is not None and d.participation_status != RELEASED:
            plan.release.append(d.participation_id)
            plan.reasons[d.participation_id] = (f"Event revision {event.revision}: {decision}"
                                                + (f": {detail}" if detail else ""))
    return plan


def _write(event: Event, decided: list[Decided], chosen: set[int] | None, *, now: dt.datetime,
           replace: bool, actor: Any = None, within: Span | None = None) -> dict[str, int]:
    """Write the ledger rows of these candidates (``replace``: their earlier rows are deleted first, by id and, when
    the candidates are a span's, ``within`` its id range; otherwise the caller has cleared the event's ledger);
    create participations for the newly reserved (RESERVED, or DISPATCHED in a dispatched event) and re-open those
    cancelled by an earlier revision; CANCEL the participations (reserved or dispatched) of those no longer
    reserved, whose ledger row says why; move the candidates' other participations (held ones too) to the event's
    window. A constant number of statements (COPY on PostgreSQL); the updates only when there is something to
    update. The ledger rows are the audit of the decisions; a cancelled or re-opened participation also gets one
    audit entry (``_apply``; module docstring). Devices taken from lower-priority events: their participations
    there are released first (audited per row by ``actor``, default ``TAKEOVER_ACTOR``; their ledger rows say which
    event took them), in the same transaction, before this event's are added (the no-overlap check sees no overlap)."""
    if not decided:
        return {}
    plan = _plan_writes(event, decided, chosen, now=now, live_status=_live_status(event))
    if replace:
        earlier = Reservation.objects.filter(event_id=event.pk,
                                             subscription_id__any=frozenset(d.subscription_id for d in decided))
        # The span's id range bounds the delete to one range of the (event, subscription) index whatever the
        # statistics say: with the array alone PostgreSQL, having analyzed the event's ledger empty, scanned every
        # row the earlier chunks had written (20 s of a reservation of 1,000,000 in chunks).
        (within.filter(earlier, "subscription_id") if within is not None else earlier).delete()
    return _apply(event, plan, now=now, actor=actor)


def _live_status(event: Event) -> str:
    """The status of a participation reserved now: RESERVED, or DISPATCHED in an event already dispatched."""
    return (ParticipationStatus.RESERVED if event.status == EventStatus.SCHEDULED
            else ParticipationStatus.DISPATCHED).value


def _apply(event: Event, plan: WritePlan, *, now: dt.datetime, actor: Any = None,
           while_ledger: Callable[[], None] | None = None,
           while_participations: Callable[[], None] | None = None) -> dict[str, int]:
    """Write a span's plan (``_write``): its ledger rows, then the participations' releases, moves, re-openings and
    new rows. ``while_ledger`` / ``while_participations``: Python work (no query) run while the database inserts
    the ledger rows / the new participations (``cpm.base.bulk.insert_rows_start``)."""
    with insert_rows_start(Reservation, list(ReservationRow._fields), plan.reservations):
        if while_ledger is not None:
            while_ledger()
    try:
        with transaction.atomic():
            # Release first, then move the window, then add: the no-overlap check (each statement's rows, at its end)
            # sees no transient overlap.
            if plan.take:
                _take_over(plan.take, now=now, actor=actor or TAKEOVER_ACTOR)
            if plan.release:
                was = list(Participation.objects.filter(pk__any=plan.release).values_list("pk", "status"))
                Participation.objects.filter(pk__any=plan.release).update(status=RELEASED, updated_at=now)
                audit_write(model=Participation, rows=[(pk, status, RELEASED, plan.reasons.get(pk, ""))
                                                       for pk, status in was], now=now, actor=actor or TAKEOVER_ACTOR)
            if plan.move:
                Participation.objects.filter(pk__any=plan.move).update(start=event.start, end=event.end,
                                                                       updated_at=now)
            if plan.reopen:
                live = _live_status(event)
                Participation.objects.filter(pk__any=plan.reopen).update(status=live, start=event.start,
                                                                         end=event.end, updated_at=now)
                audit_write(model=Participation, rows=[(pk, RELEASED, live, f"Event revision {event.revision}: "
                                                                            "reserved again.")
                                                       for pk in plan.reopen], now=now, actor=actor or TAKEOVER_ACTOR)
            with insert_rows_start(Participation, list(NewParticipationRow._fields), plan.new_participations):
                if while_participations is not None:
                    while_participations()
    except IntegrityError as exc:
        # The no-overlap check (migration 0011) caught a concurrent reservation the locks did not serialize, or a
        # participation whose outcome is already recorded (kept as it is) would overlap another event in the new
        # window.
        raise ConflictError("A device would take part in two overlapping events (reserved concurrently, or an "
                            "opted-out device moved into another event's window); run the reservation again or "
                            "cancel and re-create the event.") from exc
    return plan.counts


def _take_over(takes: list[Take], *, now: dt.datetime, actor: Any) -> None:
    """Release the lower-priority participations this event takes (still RESERVED in a SCHEDULED event: one
    dispatched meanwhile stays, and the insert that follows is refused by the no-overlap check, a conflict to
    run again)."""
    from .release import release_participations

    texts = {t.participation_id: t.released_text for t in takes}
    release_participations(Participation.objects.filter(pk__in=sorted(texts), status=ParticipationStatus.RESERVED,
                                                        event__status=EventStatus.SCHEDULED),
                           reason=lambda r: texts[r.participation_id], now=now, actor=actor)


# ------------------------------------------------------------------------------------------------- ex-candidates
def _is_candidate(event: Event, ctx: ProgramContext) -> Exists:
    """For rows with a ``subscription_id`` (ledger rows, participations): whether it is a candidate now.

    ``~_is_candidate(...)`` is a NOT EXISTS (an anti-join, which PostgreSQL can hash in batches), not a
    ``NOT IN (subquery)``: with a million candidates that subquery does not fit ``work_mem`` as a hash and runs once
    per row."""
    return Exists(_candidates_qs(event, ctx).filter(pk=OuterRef("subscription_id")))


def _stale_decisions(event: Event, ctx: ProgramContext) -> list[Decided]:
    """Live (reserved or dispatched) participations of subscriptions that are no longer candidates of the event
    (targeting changed, enrollment or subscription ended): NOT_ELIGIBLE ledger rows, so ``_write`` cancels them."""
    return [Decided(sid, eid, dev, sp, cap if cap is not None else Decimal("0"), 0, ReservationDecision.NOT_ELIGIBLE,
                    f"No longer a candidate in revision {event.revision} (targeting, enrollment or subscription "
                    "changed).", participation_id=pid, participation_status=status)
            for pid, sid, eid, dev, sp, cap, status in Participation.objects.filter(
                event_id=event.pk, status__in=(ParticipationStatus.RESERVED, ParticipationStatus.DISPATCHED))
            .filter(~_is_candidate(event, ctx)).order_by("pk").values_list(
                "pk", "subscription_id", "enrollment_id", "device_id", "service_point_id", "device__capacity_kw",
                "status")]


def _drop_stale(event: Event, ctx: ProgramContext, *, now: dt.datetime) -> None:
    """Before a chunked run: ledger rows of ex-candidates go (one statement); their live participations are
    CANCELLED, with a NOT_ELIGIBLE row saying why."""
    Reservation.objects.filter(event_id=event.pk).filter(~_is_candidate(event, ctx)).delete()
    _write(event, _stale_decisions(event, ctx), None, now=now, replace=True)


def _add_counts(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    for key, n in part.items():
        total[key] = total.get(key, 0) + n
    return total


# ------------------------------------------------------------------------------------------------------------ runs
def reserve_locked(event: Event, ctx: ProgramContext, *, now: dt.datetime,
                   chunk_size: int | None = None, actor: Any = None) -> dict[str, int]:
    """The whole reservation of an event inside the caller's transaction (event row locked by the caller; the
    caller checked the actor: ``event_reserve``, ``event_update``).

    Every candidate's device (or subscription) row is locked first, in id order; the ledger is then decided and
    written span by span (``chunk_size``, default ``CPM_CHUNK_SIZE`` candidates), so memory is bounded by the
    span, not by the program. Ex-candidates are released before any new participation is added."""
    spans = _candidate_spans(event, ctx, chunk_size or settings.CPM_CHUNK_SIZE)
    _lock_candidates(_candidates_qs(event, ctx))
    chosen = _target_choice(event, ctx, spans, now=now)
    Reservation.objects.filter(event_id=event.pk).delete()
    counts = _write(event, _stale_decisions(event, ctx), None, now=now, replace=False, actor=actor)
    if not spans:
        return counts
    ahead = _Ahead(event, chosen, now=now, live_status=_live_status(event))
    plan = ahead.plan_of(_evaluate(event, ctx, now=now, span=spans[0], lock=False))
    for following in [*spans[1:], None]:
        if following is None or plan.take:
            # The last span; or one whose writes release other events' participations, which the next span's
            # history reads: written before the next span is read.
            _add_counts(counts, _apply(event, plan, now=now, actor=actor))
            if following is not None:
                plan = ahead.plan_of(_evaluate(event, ctx, now=now, span=following, lock=False))
            continue
        # Pipelined: the next span is read before this one is written (these writes touch only this event's ledger
        # and this span's participations, which it does not read); it is decided while the database inserts this
        # span's ledger rows, and its writes planned while the database inserts this span's participations.
        ahead.facts = _gather(event, ctx, now=now, span=following, lock=False)
        _add_counts(counts, _apply(event, plan, now=now, actor=actor, while_ledger=ahead.decide,
                                   while_participations=ahead.plan))
        plan = ahead.planned
    return counts


class _Ahead:
    """The next span's decisions and write plan, computed while the database inserts this span's rows."""

    def __init__(self, event: Event, chosen: set[int] | None, *, now: dt.datetime, live_status: str):
        self.event, self.chosen, self.now, self.live_status = event, chosen, now, live_status
        self.facts: SpanFacts | None = None
        self.decided: list[Decided] = []
        self.planned: WritePlan | None = None

    def plan_of(self, decided: list[Decided]) -> WritePlan:
        return _plan_writes(self.event, decided, self.chosen, now=self.now, live_status=self.live_status)

    def decide(self) -> None:
        self.decided, self.facts = _decide(self.facts), None

    def plan(self) -> None:
        self.planned, self.decided = self.plan_of(self.decided), []


def evaluate_span(event: Event, span: Span, *, now: dt.datetime) -> list[Decided]:
    """The decisions of one span (under row locks), for a caller that decides a few candidates alone (a
    replacement device: ``events.services.release``); the caller holds the event row lock."""
    return _evaluate(event, ProgramContext.load(event.program), now=now, span=span, lock=True)


def write_decisions(event: Event, decided: list[Decided], *, now: dt.datetime, actor: Any) -> dict[str, int]:
    """Write ``evaluate_span``'s decisions (their earlier ledger rows replaced; no target kW choice)."""
    return _write(event, decided, None, now=now, replace=True, actor=actor)


def finish_reservation(event: Event, counts: dict[str, int], *, now: dt.datetime, actor: Any) -> None:
    """Mark the event reserved and write the run's one audit entry (actor, counts by decision)."""
    Event.objects.filter(pk=event.pk).update(reserved_at=now)
    event.reserved_at = now
    audit_record(obj=event, action="update", now=now, actor=actor, reason="reservation",
                 changes={"reservation_counts": counts})
    event_reserved.send(sender=Event, event=event, now=now, actor=actor)


def reserve_chunk(*, event_id: int, first_id: int | None, end_id: int | None, chosen_ids: list[int] | None,
                  now: dt.datetime) -> dict[str, int]:
    """Reserve one chunk of candidates (subscription ids ``first_id <= id < end_id``, None = unbounded) in its own
    transaction, under row locks.

    An internal step of the ``event.reserve`` use case, whose actor was checked when it started
    (``event_reservation_start``): it takes no actor and writes no audit entry (the ledger rows are the record of
    its decisions; ``event_reservation_finish`` writes the run's audit entry).

    ``chosen_ids``: the ids of this chunk the central plan picked for the target kW (None = no target: reserve all
    that pass). A candidate that passed in the plan but fails now (e.g. reserved meanwhile for an overlapping
    event) gets its new skip reason. Returns counts by decision; an event no longer SCHEDULED gives ``{}``.
    """
    with transaction.atomic():
        event = Event.objects.select_related("program").get(pk=event_id)
        if event.status != EventStatus.SCHEDULED:
            return {}
        ctx = ProgramContext.load(event.program)
        span = Span(first_id, end_id)
        decided = _evaluate(event, ctx, now=now, span=span, lock=True)
        return _write(event, decided, None if chosen_ids is None else set(chosen_ids), now=now, replace=True,
                      within=span)


@dataclass(frozen=True, slots=True)
class ReservationChunk:
    """One chunk of a distributed reservation: the span's bounds and the target-kW choice within it."""

    first_id: int | None
    end_id: int | None
    chosen_ids: list[int] | None


def event_reservation_start(*, event: Event, now: dt.datetime, chunk_size: int, actor: Any
                            ) -> list[ReservationChunk]:
    """The central step of a chunked reservation (``reserve_chunk`` per chunk, then ``event_reservation_finish``):
    consecutive spans of at most ``chunk_size`` candidates (one query) and, with a target kW, the global choice
    (the rotation order needs every candidate), split per span. Ex-candidates' ledger rows go and their live
    participations are CANCELLED (own transaction). Raises ``TransitionNotAllowed`` unless SCHEDULED.

    The first step of the ``event.reserve`` use case: ``actor`` must hold its capability (``PermissionDenied``)."""
    require(actor, Cap.MANAGE_EVENTS, use_case="event.reserve")
    event = Event.objects.select_related("program").get(pk=event.pk)
    require_scheduled(event)
    ctx = ProgramContext.load(event.program)
    spans = _candidate_spans(event, ctx, chunk_size)
    chosen = _target_choice(event, ctx, spans, now=now)
    with transaction.atomic():
        _drop_stale(event, ctx, now=now)
    return [ReservationChunk(span.first_id, span.end_id,
                             None if chosen is None else sorted(sid for sid in chosen if sid in span))
            for span in spans]


def event_reservation_finish(*, event_id: int, counts: list[dict[str, int]], now: dt.datetime, actor: Any
                             ) -> dict[str, int]:
    """Last step of a chunked reservation: sum the chunks' counts by decision, mark the event reserved, audit
    (one entry for the run, by ``actor``, who must hold the ``event.reserve`` capability)."""
    require(actor, Cap.MANAGE_EVENTS, use_case="event.reserve")
    total: dict[str, int] = {}
    for part in counts:
        _add_counts(total, part)
    with transaction.atomic():
        finish_reservation(Event.objects.get(pk=event_id), total, now=now, actor=actor)
    return total


@use_case("event.reserve", Cap.MANAGE_EVENTS)
def event_reserve(*, event: Event, now: dt.datetime, actor: Any, chunk_size: int | None = None
                  ) -> dict[str, int]:
    """Reserve devices for a SCHEDULED event and write a decision for every candidate (re-runnable, idempotent).

    ``chunk_size`` None: one transaction (decided and written span by span of ``CPM_CHUNK_SIZE`` candidates, a
    constant number of queries per span, memory bounded by the span). Otherwise the plan is computed centrally and
    each chunk of ``chunk_size`` runs in its own transaction with its own locks, as the job chunks on workers do
    (``tasks.reserve_event_distributed``). Ledger rows of subscriptions that are no longer candidates (targeting
    changed) are removed with their provisional participations.
    Raises ``TransitionNotAllowed`` unless the event is SCHEDULED. Returns counts by decision.
    """
    event = Event.objects.select_related("program").get(pk=event.pk)
    require_scheduled(event)
    if chunk_size is None:
        ctx = ProgramContext.load(event.program)
        with transaction.atomic():
            Event.objects.select_for_update().filter(pk=event.pk).values_list("pk").first()
            counts = reserve_locked(event, ctx, now=now, actor=actor)
            finish_reservation(event, counts, now=now, actor=actor)
        return counts
    chunks = event_reservation_start(event=event, now=now, chunk_size=chunk_size, actor=actor)
    parts = [reserve_chunk(event_id=event.pk, first_id=c.first_id, end_id=c.end_id, chosen_ids=c.chosen_ids, now=now)
             for c in chunks]
    return event_reservation_finish(event_id=event.pk, counts=parts, now=now, actor=actor)
