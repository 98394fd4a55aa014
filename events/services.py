"""Events: the write path (create, modify, schedule, reserve, dispatch, tick, cancel, opt-out, outcomes).

Every service takes ``now`` (aware UTC) and ``actor`` (User, job name or None) keyword-only, owns its transaction,
and records status changes through ``cpm.base.states.transition`` (audited). Times are stored in UTC; the program's IANA
zone is used for local days, windows, weeks and seasons.

Reservation (``event_reserve``) is set-based: per span of ``CPM_CHUNK_SIZE`` candidates (consecutive subscription
id ranges), a constant number of SQL queries whatever the number of devices (candidates, history, unavailability,
overlaps and existing participations are each one query, with the span's ids as one array parameter; the decision is
computed in Python by ``events.ledger``; rows are COPYed), so memory is bounded by the span. One transaction holds
every span of an event, or each chunk runs in its own transaction (``event_reservation_start`` + ``reserve_chunk``
+ ``event_reservation_finish``) so a Celery chord can spread the chunks over workers; with a target kW the rotation
order is computed centrally by the plan. See ``events.ledger`` for the counting choice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import IntegrityError, connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, StringAgg, Value, Window
from django.db.models.functions import Cast, RowNumber

from cpm.base.audit import audit_record
from cpm.base.errors import ConflictError, DomainValidationError, NotFound, TransitionNotAllowed
from cpm.base.states import check_transition, transition
from cpm.base.tasks import enqueue_on_commit
from cpm.base.timeutils import zone
from devices.choices import DeviceStatus
from devices.models import Aggregator, Device
from enrollments.choices import EnrollmentStatus
from enrollments.models import Enrollment, ProgramSubscription
from programs import calendars
from programs import rules as program_rules
from programs.choices import ProgramStatus, SettlementTiming
from programs.models import Program

from . import ledger
from .choices import (
    COUNTED_EVENT_STATUSES,
    EVENT_TRANSITIONS,
    PARTICIPATION_TRANSITIONS,
    DeliveryStatus,
    DispatchKind,
    EventCategory,
    EventStatus,
    OptOutChannel,
    ParticipationStatus,
    ReservationDecision,
)
from .models import DispatchMessage, Event, EventRevision, OptOut, Participation, Reservation, Unavailability
from .selectors import ProgramContext, opt_out_refusals
from .signals import event_completed

logger = logging.getLogger(__name__)

WRITE_BATCH = 5000
MAX_DELIVERY_ATTEMPTS = 5
# Participation statuses that hold a device (the exclusion constraint uses the same condition).
RELEASED = ParticipationStatus.CANCELLED
# Opt-out channels that are requests (refused after the cut-off); the others report what happened at the device.
REQUEST_CHANNELS = (OptOutChannel.CSR, OptOutChannel.PORTAL, OptOutChannel.AGGREGATOR_API)
# Participation statuses a reservation run decides again (an opt-out or an outcome is kept as recorded).
REEVALUATED = (ParticipationStatus.RESERVED, ParticipationStatus.DISPATCHED, ParticipationStatus.CANCELLED)
EDITABLE_FIELDS = ("name", "category", "direction", "start", "end", "notification_at", "target_territories",
                   "target_substations", "target_feeders", "target_device_types", "target_kw")


def event_local_dates(event: Event, tz: ZoneInfo) -> tuple[dt.date, dt.date]:
    """First and last local dates the event touches (end is exclusive: an event ending at midnight stays on its
    start day)."""
    return (event.start.astimezone(tz).date(),
            (event.end - dt.timedelta(microseconds=1)).astimezone(tz).date())


def _to_utc(value: dt.datetime, tz: ZoneInfo, field: str) -> dt.datetime:
    """An aware datetime in UTC; a naive one is local wall-clock time in the program's zone, refused when it does
    not exist (spring DST gap) or is ambiguous (autumn repeated hour) without an offset."""
    if not isinstance(value, dt.datetime):
        raise DomainValidationError({field: ["Enter a date and time."]})
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(dt.UTC)
    first = value.replace(tzinfo=tz, fold=0)
    second = value.replace(tzinfo=tz, fold=1)
    if first.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise DomainValidationError({field: [f"{value:%Y-%m-%d %H:%M} does not exist in {tz.key} (DST change)."]})
    if first.utcoffset() != second.utcoffset():
        raise DomainValidationError({field: [f"{value:%Y-%m-%d %H:%M} occurs twice in {tz.key} (DST change); "
                                             "give a UTC offset."]})
    return first.astimezone(dt.UTC)


def _snapshot(event: Event, device_ids: list[int]) -> dict[str, Any]:
    return {
        "name": event.name, "category": event.category, "direction": event.direction,
        "start": event.start.isoformat(), "end": event.end.isoformat(),
        "notification_at": event.notification_at.isoformat(), "status": event.status,
        "target_territories": event.target_territories, "target_substations": event.target_substations,
        "target_feeders": event.target_feeders, "target_device_types": event.target_device_types,
        "target_devices": sorted(device_ids),
        "target_kw": None if event.target_kw is None else str(event.target_kw),
    }


def _validate_window(event: Event) -> None:
    errors: dict[str, list[str]] = {}
    if event.end <= event.start:
        errors["end"] = ["end must be after start."]
    if event.notification_at > event.start:
        errors["notification_at"] = ["notification_at must be at or before start."]
    if event.target_kw is not None and event.target_kw <= 0:
        errors["target_kw"] = ["target_kw must be positive."]
    if errors:
        raise DomainValidationError(errors)


# ------------------------------------------------------------------------------------------------- create / modify
@transaction.atomic
def event_create(
    *,
    program: Program,
    name: str,
    start: dt.datetime,
    end: dt.datetime,
    notification_at: dt.datetime | None = None,
    category: str = EventCategory.ECONOMIC,
    direction: str = "reduce",
    target_territories: list[str] | None = None,
    target_substations: list[str] | None = None,
    target_feeders: list[str] | None = None,
    target_device_types: list[str] | None = None,
    target_device_ids: list[int] | None = None,
    target_kw: Decimal | None = None,
    now: dt.datetime,
    actor: Any = None,
) -> Event:
    """Create a DRAFT event. ``start``/``end``/``notification_at``: aware instants, or naive local wall-clock times
    in the program's zone (refused if skipped or repeated by a DST change). ``notification_at`` defaults to
    ``start``. Targeting lists empty = every enrolled device. Raises ``DomainValidationError`` naming the field."""
    if program.status == ProgramStatus.CLOSED:
        raise ConflictError(f"Program {program.code} is closed.")
    tz = zone(program.time_zone)
    start_utc = _to_utc(start, tz, "start")
    event = Event(
        program=program, name=name, category=category, direction=direction, start=start_utc,
        end=_to_utc(end, tz, "end"),
        notification_at=_to_utc(notification_at, tz, "notification_at") if notification_at else start_utc,
        target_territories=list(target_territories or []), target_substations=list(target_substations or []),
        target_feeders=list(target_feeders or []), target_device_types=list(target_device_types or []),
        target_kw=target_kw,
    )
    _validate_window(event)
    event.save()
    if target_device_ids:
        _set_target_devices(event, target_device_ids)
    audit_record(obj=event, action="create", now=now, actor=actor, to_status=event.status,
                 changes=_snapshot(event, list(target_device_ids or [])))
    return event


def _set_target_devices(event: Event, device_ids: list[int]) -> None:
    found = set(Device.objects.filter(pk__in=device_ids).values_list("pk", flat=True))
    missing = sorted(set(device_ids) - found)
    if missing:
        raise DomainValidationError({"target_devices": [f"Unknown device ids: {missing[:20]}."]})
    event.target_devices.set(sorted(found))


# Changes that move devices in or out: the reservation runs again for them.
RESERVATION_FIELDS = ("start", "end", "target_territories", "target_substations", "target_feeders",
                      "target_device_types", "target_devices", "target_kw")


def event_update(
    *,
    event: Event,
    changes: dict[str, Any],
    now: dt.datetime,
    actor: Any = None,
    reason: str = "",
) -> Event:
    """Modify an event (fields in ``EDITABLE_FIELDS`` and ``target_device_ids``); window times as in
    ``event_create``.

    A DRAFT event is edited in place. After scheduling (SCHEDULED or DISPATCHED), in one transaction: the previous
    version is kept as an ``EventRevision`` and ``revision`` increases by one; the participation rules are checked
    again (unless an emergency override; ``DomainValidationError`` keyed by the rule field); when the window or the
    targeting changed, the reservation runs again for the new window (same checks as ``event_reserve``,
    idempotent): devices that still fit keep their participation (moved to the new window), devices that no longer
    fit get their skip reason in the ledger and their participation CANCELLED, newly fitting devices are added
    (DISPATCHED at once in a dispatched event). A DISPATCHED event then sends one MODIFY message per aggregator
    (its devices taking part, and those released). ACTIVE, COMPLETED and CANCELLED events cannot be modified
    (``TransitionNotAllowed``). No change at all: nothing happens (no revision).
    """
    unknown = set(changes) - set(EDITABLE_FIELDS) - {"target_device_ids"}
    if unknown:
        raise DomainValidationError({sorted(unknown)[0]: ["This field cannot be changed."]})
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        if event.status not in (EventStatus.DRAFT, EventStatus.SCHEDULED, EventStatus.DISPATCHED):
            raise TransitionNotAllowed(f"Event {event} is {event.status} and can no longer be modified.",
                                       from_status=event.status, to_status=event.status)
        tz = zone(event.program.time_zone)
        old_devices = list(event.target_devices.values_list("pk", flat=True))
        before = _snapshot(event, old_devices)
        for key, value in changes.items():
            if key == "target_device_ids":
                continue
            if key in ("start", "end", "notification_at"):
                value = _to_utc(value, tz, key)
            setattr(event, key, value)
        _validate_window(event)
        new_devices = changes.get("target_device_ids")
        after = _snapshot(event, new_devices if new_devices is not None else old_devices)
        if after == before:
            return event
        live = event.status != EventStatus.DRAFT
        if live:
            if event.start <= now and (before["start"], before["end"]) != (after["start"], after["end"]):
                raise DomainValidationError({"start": ["A scheduled event's window can only move to the future."]})
            ctx = ProgramContext.load(event.program)
            if not event.overrides_rules:
                _check_rules(event, ctx, now=now)
            EventRevision.objects.create(event=event, revision=event.revision, snapshot=before, changed_at=now,
                                         changed_by=_actor_name(actor), reason=reason[:500])
            event.revision += 1
        event.save()
        if new_devices is not None:
            _set_target_devices(event, new_devices)
        counts = None
        if live and any(before[f] != after[f] for f in RESERVATION_FIELDS):
            counts = _reserve_locked(event, ctx, now=now)
            _finish_reservation(event, counts, now=now, actor=actor)
        audit_record(obj=event, action="update", now=now, actor=actor, reason=reason,
                     changes={"before": before, "after": after, "revision": event.revision,
                              "reservation_counts": counts})
        if event.status == EventStatus.DISPATCHED:
            _create_dispatch_messages(event, kind=DispatchKind.MODIFY, now=now)
    return event


def _actor_name(actor: Any) -> str:
    from cpm.base.audit import actor_label

    return actor_label(actor)[:150]


# --------------------------------------------------------------------------------------------------------- schedule
def _rule_violations(event: Event, ctx: ProgramContext, *, now: dt.datetime) -> list[program_rules.Violation]:
    """The event against the program's seasons and the participation rule in effect on its local start day
    (``programs.rules.check_event_against_rule``, holidays from the program's calendar). Notice is measured from
    ``max(now, notification_at)`` to start: a notification already late gives less notice."""
    local_start = event.start.astimezone(ctx.tz)
    notice = (event.start - max(now, event.notification_at)).total_seconds() / 60
    return program_rules.check_event_against_rule(
        ctx.rule_on(local_start.date()), start_local=local_start, end_local=event.end.astimezone(ctx.tz),
        is_holiday=partial(calendars.is_holiday, ctx.program.holiday_calendar), notice_minutes=notice,
        seasons=ctx.seasons)


def _violation_errors(violations: list[program_rules.Violation]) -> dict[str, list[str]]:
    """``{rule field: [messages]}`` for ``DomainValidationError`` (a field may be broken twice, e.g. two days)."""
    errors: dict[str, list[str]] = {}
    for v in violations:
        errors.setdefault(v.field, []).append(v.message)
    return errors


def _check_rules(event: Event, ctx: ProgramContext, *, now: dt.datetime) -> None:
    violations = _rule_violations(event, ctx, now=now)
    if violations:
        raise DomainValidationError(_violation_errors(violations), code="participation_rule")


def event_schedule(
    *,
    event: Event,
    now: dt.datetime,
    actor: Any = None,
    override_rules: bool = False,
    override_reason: str = "",
) -> Event:
    """DRAFT -> SCHEDULED, then reserve devices (Celery task after commit).

    The program must be ACTIVE (``ConflictError``) and the event must start in the future. The program's
    participation rules (season, allowed days and holidays, window, duration, notice) are checked; violations are
    refused with ``DomainValidationError`` keyed by the rule's field name. An EMERGENCY event may be scheduled over
    the rules with ``override_rules=True`` and a reason; the override and the rules overridden are audited.
    """
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        program = event.program
        if program.status != ProgramStatus.ACTIVE:
            raise ConflictError(f"Program {program.code} is {program.status}; events can be scheduled only in an "
                                "active program.")
        if event.start <= now:
            raise DomainValidationError({"start": ["The event must start in the future."]})
        ctx = ProgramContext.load(program)
        violations = _rule_violations(event, ctx, now=now)
        extra: dict[str, Any] = {}
        if violations:
            if not override_rules:
                raise DomainValidationError(_violation_errors(violations), code="participation_rule")
            if event.category != EventCategory.EMERGENCY:
                raise DomainValidationError({"override_rules": ["Only an emergency event may override the "
                                                                "participation rules."]})
            if not override_reason.strip():
                raise DomainValidationError({"override_reason": ["Give the reason for overriding the rules."]})
            extra = {"overrides_rules": True, "override_reason": override_reason[:500]}
            audit_record(obj=event, action="override", now=now, actor=actor, reason=override_reason,
                         changes={"violations": [f"{v.field}: {v.message}" for v in violations]})
        transition(obj=event, to=EventStatus.SCHEDULED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason=override_reason if violations else "scheduled", extra_updates=extra)
        from .tasks import reserve_event

        enqueue_on_commit(reserve_event, event_id=event.pk)
    return event


# ------------------------------------------------------------------------------------------------------ reservation
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


def _candidate_rows(filters: CandidateFilters, span: Span | None, *, lock: bool) -> list[tuple]:
    """The span's candidates as rows (subscription, enrollment, device fields), in subscription id order.

    Table by table, each on its primary key (the span's id range, then its enrollments' and devices' ids as one
    array each): a join would hash the whole enrollment and device tables for every span. ``lock``: row locks on
    the span's devices (device-less subscriptions: the subscriptions) in id order, taken before the enrollment and
    device rows are read."""
    subs = list((span.filter(ProgramSubscription.objects.filter(filters.subscription)) if span is not None else
                 ProgramSubscription.objects.filter(filters.subscription)).order_by("pk").values_list(
        "pk", "enrollment_id", "start_date", "end_date", "device_id"))
    if not subs:
        return []
    device_ids = sorted({s[4] for s in subs if s[4] is not None})
    if lock:
        _lock_rows(Device.objects.filter(pk__any=device_ids))
        _lock_rows(ProgramSubscription.objects.filter(pk__any=[s[0] for s in subs if s[4] is None]))
    enrollments = {pk: rest for pk, *rest in Enrollment.objects.filter(
        filters.enrollment, pk__any=sorted({s[1] for s in subs})).values_list(
        "pk", "status", "effective_date", "end_date", "service_point_id")}
    devices = {pk: rest for pk, *rest in Device.objects.filter(filters.device, pk__any=device_ids).values_list(
        "pk", "status", "last_seen_at", "capacity_kw")}
    no_device = (None, None, None) if not filters.device.children else None  # targeted types need a device
    rows = []
    for sid, eid, s_from, s_to, did in subs:
        enrollment = enrollments.get(eid)
        device = devices.get(did) if did is not None else no_device
        if enrollment is None or device is None:
            continue
        e_status, e_from, e_to, sp_id = enrollment
        rows.append((sid, eid, e_status, e_from, e_to, s_from, s_to, did, *device, sp_id))
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


def _evaluate(event: Event, ctx: ProgramContext, *, now: dt.datetime, span: Span | None = None,
              lock: bool) -> list[Decided]:
    """Decide every candidate of ``span`` (all when None) without the target kW: a constant number of queries
    (locks, candidates, events of the history window, per-enrollment history, unavailability, overlaps, this
    event's participations). The per-candidate queries take the span's ids as one array parameter each
    (``__any``), so they probe the indexes for the span's rows instead of scanning every participation."""
    program = ctx.program
    first, last = event_local_dates(event, ctx.tz)
    rows = _candidate_rows(CandidateFilters.of(event, ctx), span, lock=lock)
    if not rows:
        return []
    enrollment_ids = sorted({r[1] for r in rows})
    device_ids = sorted({r[7] for r in rows if r[7] is not None})
    deviceless_sp_ids = sorted({r[11] for r in rows if r[7] is None})
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
    past = {eid: ctx.ledger_event(eid, s, e) for eid, s, e in Event.objects.filter(
        program_id=program.pk, status__in=COUNTED_EVENT_STATUSES, start__lt=win_end, end__gt=win_start,
    ).exclude(pk=event.pk).order_by().values_list("pk", "start", "end")}
    history: dict[int, frozenset[int]] = {}
    opted: dict[int, frozenset[int]] = {}
    if past:
        as_text = Cast("event_id", CharField())
        for enrollment_id, evs, outs in (
            Participation.objects.filter(event_id__any=list(past), enrollment_id__any=enrollment_ids)
            .exclude(status=RELEASED).values("enrollment_id")
            .annotate(evs=StringAgg(as_text, Value(",")),
                      outs=StringAgg(as_text, Value(","), filter=Q(status=ParticipationStatus.OPTED_OUT)))
            .order_by().values_list("enrollment_id", "evs", "outs")
        ):
            history[enrollment_id] = frozenset(map(int, evs.split(","))) if evs else frozenset()
            opted[enrollment_id] = frozenset(map(int, outs.split(","))) if outs else frozenset()
    unavailable: dict[tuple[int, int | None], str] = {}
    for enrollment_id, device_id, u_start, u_end, why in Unavailability.objects.filter(
            enrollment_id__any=enrollment_ids, start__lt=event.end, end__gt=event.start,
    ).order_by().values_list("enrollment_id", "device_id", "start", "end", "reason"):
        text = (f"Customer declared unavailable {u_start.astimezone(ctx.tz):%Y-%m-%d %H:%M} to "
                f"{u_end.astimezone(ctx.tz):%Y-%m-%d %H:%M}" + (f" ({why})." if why else "."))
        unavailable.setdefault((enrollment_id, device_id), text)
    busy_device: dict[int, str] = {}
    busy_sp: dict[int, str] = {}
    # A participation holds its event's window (moved with it), so only events overlapping this one can hold an
    # overlapping participation: those events first (a few rows of the event table), then their participations of
    # the span's devices; never a scan of every participation by time.
    others = {pk: (name, code) for pk, name, code in Event.objects.exclude(pk=event.pk).exclude(
        status=EventStatus.CANCELLED).filter(start__lt=event.end, end__gt=event.start).order_by().values_list(
        "pk", "name", "program__code")}
    for device_id, sp_id, other_id in (Participation.objects.filter(event_id__any=list(others)).exclude(
            status=RELEASED).filter(start__lt=event.end, end__gt=event.start).filter(
            Q(device_id__any=device_ids) | Q(device__isnull=True, service_point_id__any=deviceless_sp_ids))
            .order_by().values_list("device_id", "service_point_id", "event_id") if others else ()):
        other_name, other_code = others[other_id]
        text = f"Already reserved for event #{other_id} '{other_name}' of program {other_code} at the same time."
        if device_id is not None:
            busy_device.setdefault(device_id, text)
        else:
            busy_sp.setdefault(sp_id, text)
    # This event's participations in the span: one range of the (event, subscription) index, not a probe per id.
    mine = Participation.objects.filter(event_id=event.pk)
    existing = {sid: (pid, status, (p_start, p_end)) for sid, pid, status, p_start, p_end in
                (span.filter(mine, "subscription_id") if span is not None else mine)
                .order_by().values_list("subscription_id", "pk", "status", "start", "end")}

    online_since = now - dt.timedelta(minutes=program.device_online_threshold_minutes)
    out: list[Decided] = []
    # Participants with the same history get the same limit decision: compute it once per distinct history
    # (a handful of combinations for most programs) instead of once per device.
    by_history: dict[tuple[frozenset, frozenset], tuple[int, tuple[str, str] | None]] = {}
    empty: frozenset[int] = frozenset()
    for (sid, enrollment_id, e_status, e_from, e_to, s_from, s_to, device_id, d_status, last_seen, cap,
         sp_id) in rows:
        key = (history.get(enrollment_id, empty), opted.get(enrollment_id, empty))
        known = by_history.get(key)
        if known is None:
            hist = [past[i] for i in key[0]]
            season_count = sum(1 for h in hist if period.contains(h.local_day))
            skip = ledger.limit_decision(target=target, season=period, limits=limits, history=hist,
                                         opted_out=[past[i] for i in key[1]])
            known = by_history[key] = (season_count, skip)
        season_count, limit_skip = known
        d = Decided(sid, enrollment_id, device_id, sp_id, cap if cap is not None else Decimal("0"), season_count,
                    None, "")
        current = existing.get(sid)
        if current:
            d.participation_id, d.participation_status, d.participation_window = current
            if current[1] not in REEVALUATED:
                d.held = True
                d.detail = f"Reserved; participation already {current[1]}."
                out.append(d)
                continue
        d.decision, d.detail = _first_skip(
            ctx=ctx, first=first, last=last, e_status=e_status, e_from=e_from, e_to=e_to, s_from=s_from, s_to=s_to,
            device_id=device_id, d_status=d_status, last_seen=last_seen, online_since=online_since,
            threshold=program.device_online_threshold_minutes, unavailable=unavailable,
            enrollment_id=enrollment_id, busy=busy_device.get(device_id) if device_id else busy_sp.get(sp_id),
        ) or (None, "")
        if d.decision is None:
            if limit_skip:
                d.decision, d.detail = limit_skip
            else:
                d.detail = f"{season_count} other event(s) so far in {period.name}."
        out.append(d)
    return out


def _first_skip(*, ctx, first, last, e_status, e_from, e_to, s_from, s_to, device_id, d_status, last_seen,
                online_since, threshold, unavailable, enrollment_id, busy) -> tuple[str, str] | None:
    if e_status != EnrollmentStatus.ACTIVE:
        return ReservationDecision.NOT_ELIGIBLE, f"Enrollment is {e_status}."
    if e_from is None or e_from > first:
        return ReservationDecision.NOT_ELIGIBLE, f"Enrollment starts {e_from}, after the event day {first}."
    if e_to is not None and e_to <= last:
        return ReservationDecision.NOT_ELIGIBLE, f"Enrollment ends {e_to}, before the event ends on {last}."
    if s_from > first:
        return ReservationDecision.NOT_ELIGIBLE, f"Subscription starts {s_from}, after the event day {first}."
    if s_to is not None and s_to <= last:
        return ReservationDecision.NOT_ELIGIBLE, f"Subscription ends {s_to}, before the event ends on {last}."
    if ctx.program.requires_device and device_id is None:
        return ReservationDecision.NOT_ELIGIBLE, "The program needs a device and the subscription has none."
    if device_id is not None:
        if d_status != DeviceStatus.ACTIVE:
            return ReservationDecision.NOT_ELIGIBLE, f"Device status is {d_status}."
        if last_seen is None:
            return ReservationDecision.OFFLINE, "Device has never been seen online."
        if last_seen < online_since:
            return ReservationDecision.OFFLINE, (f"Device last seen {last_seen:%Y-%m-%d %H:%M} UTC, more than "
                                                 f"{threshold} minutes before reservation.")
    text = unavailable.get((enrollment_id, None)) or (device_id and unavailable.get((enrollment_id, device_id)))
    if text:
        return ReservationDecision.UNAVAILABLE, text
    if busy:
        return ReservationDecision.OVERLAP, busy
    return None


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
    already = sum(float(d.capacity_kw) for d in held)
    chosen = ledger.pick_until_target(((sid, cap[sid]) for sid in order), max(float(target_kw) - already, 0.0))
    return chosen | {d.subscription_id for d in held}


def _write(event: Event, decided: list[Decided], chosen: set[int] | None, *, now: dt.datetime,
           replace: bool) -> dict[str, int]:
    """Write the ledger rows of these candidates (``replace``: their earlier rows are deleted first; otherwise the
    caller has cleared the event's ledger); create participations for the newly reserved (RESERVED, or DISPATCHED
    in a dispatched event) and re-open those cancelled by an earlier revision; CANCEL the participations (reserved
    or dispatched) of those no longer reserved, whose ledger row says why; move the candidates' other
    participations (held ones too) to the event's window. A constant number of statements (COPY on PostgreSQL);
    the updates only when there is something to update."""
    if not decided:
        return {}
    live_status = (ParticipationStatus.RESERVED if event.status == EventStatus.SCHEDULED
                   else ParticipationStatus.DISPATCHED)
    counts: dict[str, int] = {}
    reservations: list[tuple] = []
    new_participations: list[tuple] = []
    release: list[int] = []
    reopen: list[int] = []
    move: list[int] = []  # participations kept, in another window (the event was moved)
    window = (event.start, event.end)
    target_note = (f"Target {event.target_kw} kW met by devices ranked before it (least called this season "
                   "first, then larger capacity).") if event.target_kw is not None else ""
    for d in decided:
        decision, detail = d.decision, d.detail
        if decision is None:
            if d.held or chosen is None or d.subscription_id in chosen:
                decision = ReservationDecision.RESERVED
            else:
                decision, detail = ReservationDecision.TARGET_MET, target_note
        decision = str(decision)
        counts[decision] = counts.get(decision, 0) + 1
        reservations.append((event.pk, d.subscription_id, d.enrollment_id, d.device_id, d.service_point_id,
                             decision, detail[:300], d.capacity_kw, now))
        if d.held:  # its status stays; its window follows the event
            if d.participation_window != window:
                move.append(d.participation_id)
            continue
        if decision == ReservationDecision.RESERVED:
            if d.participation_id is None:
                new_participations.append((event.pk, d.subscription_id, d.enrollment_id, d.device_id,
                                           d.service_point_id, live_status.value, event.start, event.end, now, now))
            elif d.participation_status == RELEASED:
                reopen.append(d.participation_id)
            elif d.participation_window != window:
                move.append(d.participation_id)
        elif d.participation_id is not None and d.participation_status != RELEASED:
            release.append(d.participation_id)
    if replace:
        Reservation.objects.filter(event_id=event.pk,
                                   subscription_id__any=[d.subscription_id for d in decided]).delete()
    _insert(Reservation, ["event_id", "subscription_id", "enrollment_id", "device_id", "service_point_id",
                          "decision", "detail", "capacity_kw", "decided_at"], reservations)
    try:
        with transaction.atomic():
            # Release first, then move the window, then add: the exclusion constraint sees no transient overlap.
            if release:
                Participation.objects.filter(pk__any=release).update(status=RELEASED, updated_at=now)
            if move:
                Participation.objects.filter(pk__any=move).update(start=event.start, end=event.end, updated_at=now)
            if reopen:
                Participation.objects.filter(pk__any=reopen).update(status=live_status, start=event.start,
                                                                    end=event.end, updated_at=now)
            _insert(Participation, ["event_id", "subscription_id", "enrollment_id", "device_id", "service_point_id",
                                    "status", "start", "end", "created_at", "updated_at"], new_participations)
    except IntegrityError as exc:
        # The exclusion constraint caught a concurrent reservation the locks did not serialize, or a participation
        # whose outcome is already recorded (kept as it is) would overlap another event in the new window.
        raise ConflictError("A device would take part in two overlapping events (reserved concurrently, or an "
                            "opted-out device moved into another event's window); run the reservation again or "
                            "cancel and re-create the event.") from exc
    return counts


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


def _add_counts(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    for key, n in part.items():
        total[key] = total.get(key, 0) + n
    return total


def _target_choice(event: Event, ctx: ProgramContext, spans: list[Span], *, now: dt.datetime) -> set[int] | None:
    """The subscription ids a target kW reserves (``_choose`` over every candidate: the rotation order is global),
    None without a target. Evaluated span by span; only the passing and held candidates are kept."""
    if event.target_kw is None:
        return None
    keep: list[Decided] = []
    for span in spans:
        for d in _evaluate(event, ctx, now=now, span=span, lock=False):
            if d.held or d.decision is None:
                d.detail = ""  # not needed for the choice: keep the list small
                keep.append(d)
    return _choose(keep, event.target_kw)


def _reserve_locked(event: Event, ctx: ProgramContext, *, now: dt.datetime,
                    chunk_size: int | None = None) -> dict[str, int]:
    """The whole reservation of an event inside the caller's transaction (event row locked by the caller).

    Every candidate's device (or subscription) row is locked first, in id order; the ledger is then decided and
    written span by span (``chunk_size``, default ``CPM_CHUNK_SIZE`` candidates), so memory is bounded by the
    span, not by the program. Ex-candidates are released before any new participation is added."""
    spans = _candidate_spans(event, ctx, chunk_size or settings.CPM_CHUNK_SIZE)
    _lock_candidates(_candidates_qs(event, ctx))
    chosen = _target_choice(event, ctx, spans, now=now)
    Reservation.objects.filter(event_id=event.pk).delete()
    counts = _write(event, _stale_decisions(event, ctx), None, now=now, replace=False)
    for span in spans:
        _add_counts(counts, _write(event, _evaluate(event, ctx, now=now, span=span, lock=False), chosen, now=now,
                                   replace=False))
    return counts


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _insert(model, columns: list[str], rows: list[tuple]) -> None:
    """Insert many rows: COPY on PostgreSQL (one statement, fastest), ``bulk_create`` elsewhere.

    Row values are ints, None, Decimals, str or aware datetimes (formatted once per distinct value)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(columns, row, strict=True))) for row in rows],
                                  batch_size=WRITE_BATCH)
        return
    # Keyed by type and value: 3 == Decimal("3.000") == True in Python, but their COPY texts differ ("3", "3.000").
    cache: dict = {(type(None), None): "\\N"}

    def text(value) -> str:
        key = (value.__class__, value)
        try:
            return cache[key]
        except KeyError:
            pass
        except TypeError:  # unhashable: never the case for these rows
            return str(value)
        if isinstance(value, str):
            out = value.translate(_COPY_ESCAPES)
        elif isinstance(value, dt.datetime):
            out = value.isoformat()
        else:
            out = str(value)
        if len(cache) < 50_000:
            cache[key] = out
        return out

    table = connection.ops.quote_name(model._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(model._meta.get_field(c.removesuffix("_id")).column
                                               if c.endswith("_id") else c) for c in columns)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for start in range(0, len(rows), WRITE_BATCH):
            copy.write("".join("\t".join(map(text, row)) + "\n" for row in rows[start:start + WRITE_BATCH]))


def reserve_chunk(*, event_id: int, first_id: int | None, end_id: int | None, chosen_ids: list[int] | None,
                  now: dt.datetime) -> dict[str, int]:
    """Reserve one chunk of candidates (subscription ids ``first_id <= id < end_id``, None = unbounded) in its own
    transaction, under row locks.

    ``chosen_ids``: the ids of this chunk the central plan picked for the target kW (None = no target: reserve all
    that pass). A candidate that passed in the plan but fails now (e.g. reserved meanwhile for an overlapping
    event) gets its new skip reason. Returns counts by decision; an event no longer SCHEDULED gives ``{}``.
    """
    with transaction.atomic():
        event = Event.objects.select_related("program").get(pk=event_id)
        if event.status != EventStatus.SCHEDULED:
            return {}
        ctx = ProgramContext.load(event.program)
        decided = _evaluate(event, ctx, now=now, span=Span(first_id, end_id), lock=True)
        return _write(event, decided, None if chosen_ids is None else set(chosen_ids), now=now, replace=True)


@dataclass(frozen=True, slots=True)
class ReservationChunk:
    """One chunk of a distributed reservation: the span's bounds and the target-kW choice within it."""

    first_id: int | None
    end_id: int | None
    chosen_ids: list[int] | None


def event_reservation_start(*, event: Event, now: dt.datetime, chunk_size: int) -> list[ReservationChunk]:
    """The central step of a chunked reservation (``reserve_chunk`` per chunk, then ``event_reservation_finish``):
    consecutive spans of at most ``chunk_size`` candidates (one query) and, with a target kW, the global choice
    (the rotation order needs every candidate), split per span. Ex-candidates' ledger rows go and their live
    participations are CANCELLED (own transaction). Raises ``TransitionNotAllowed`` unless SCHEDULED."""
    event = Event.objects.select_related("program").get(pk=event.pk)
    _require_scheduled(event)
    ctx = ProgramContext.load(event.program)
    spans = _candidate_spans(event, ctx, chunk_size)
    chosen = _target_choice(event, ctx, spans, now=now)
    with transaction.atomic():
        _drop_stale(event, ctx, now=now)
    return [ReservationChunk(span.first_id, span.end_id,
                             None if chosen is None else sorted(sid for sid in chosen if sid in span))
            for span in spans]


def event_reservation_finish(*, event_id: int, counts: list[dict[str, int]], now: dt.datetime, actor: Any = None
                             ) -> dict[str, int]:
    """Last step of a chunked reservation: sum the chunks' counts by decision, mark the event reserved, audit."""
    total: dict[str, int] = {}
    for part in counts:
        _add_counts(total, part)
    with transaction.atomic():
        _finish_reservation(Event.objects.get(pk=event_id), total, now=now, actor=actor)
    return total


def _require_scheduled(event: Event) -> None:
    if event.status != EventStatus.SCHEDULED:
        raise TransitionNotAllowed(f"Event {event} is {event.status}; devices are reserved only for a scheduled "
                                   "event.", from_status=event.status, to_status=event.status)


def event_reserve(*, event: Event, now: dt.datetime, actor: Any = None, chunk_size: int | None = None
                  ) -> dict[str, int]:
    """Reserve devices for a SCHEDULED event and write a decision for every candidate (re-runnable, idempotent).

    ``chunk_size`` None: one transaction (decided and written span by span of ``CPM_CHUNK_SIZE`` candidates, a
    constant number of queries per span, memory bounded by the span). Otherwise the plan is computed centrally and
    each chunk of ``chunk_size`` runs in its own transaction with its own locks, as the Celery chord does
    (``tasks.reserve_event_distributed``). Ledger rows of subscriptions that are no longer candidates (targeting
    changed) are removed with their provisional participations.
    Raises ``TransitionNotAllowed`` unless the event is SCHEDULED. Returns counts by decision.
    """
    event = Event.objects.select_related("program").get(pk=event.pk)
    _require_scheduled(event)
    if chunk_size is None:
        ctx = ProgramContext.load(event.program)
        with transaction.atomic():
            Event.objects.select_for_update().filter(pk=event.pk).values_list("pk").first()
            counts = _reserve_locked(event, ctx, now=now)
            _finish_reservation(event, counts, now=now, actor=actor)
        return counts
    chunks = event_reservation_start(event=event, now=now, chunk_size=chunk_size)
    parts = [reserve_chunk(event_id=event.pk, first_id=c.first_id, end_id=c.end_id, chosen_ids=c.chosen_ids, now=now)
             for c in chunks]
    return event_reservation_finish(event_id=event.pk, counts=parts, now=now, actor=actor)


def _drop_stale(event: Event, ctx: ProgramContext, *, now: dt.datetime) -> None:
    """Before a chunked run: ledger rows of ex-candidates go (one statement); their live participations are
    CANCELLED, with a NOT_ELIGIBLE row saying why."""
    Reservation.objects.filter(event_id=event.pk).filter(~_is_candidate(event, ctx)).delete()
    _write(event, _stale_decisions(event, ctx), None, now=now, replace=True)


def _finish_reservation(event: Event, counts: dict[str, int], *, now: dt.datetime, actor: Any) -> None:
    Event.objects.filter(pk=event.pk).update(reserved_at=now)
    event.reserved_at = now
    audit_record(obj=event, action="update", now=now, actor=actor or "events.reserve", reason="reservation",
                 changes={"reservation_counts": counts})


# ---------------------------------------------------------------------------------------------- dispatch messages
def _message_payload(event: Event, kind: str, devices: list[str], released: list[str] | None = None
                     ) -> dict[str, Any]:
    payload = {
        "event_id": event.pk, "program": event.program.code, "kind": kind, "revision": event.revision,
        "name": event.name, "category": event.category, "direction": event.direction,
        "start": event.start.isoformat(), "end": event.end.isoformat(),
        "notification_at": event.notification_at.isoformat(),
        "target_kw": None if event.target_kw is None else str(event.target_kw),
        "devices": sorted(devices),
    }
    if released is not None:
        payload["released_devices"] = sorted(released)
    return payload


def _create_dispatch_messages(event: Event, *, kind: str, now: dt.datetime) -> list[int]:
    """One message per aggregator for (event, kind, revision); idempotent (unique constraint).

    DISPATCH: aggregators of the devices taking part (not opted out). CANCEL: every aggregator with a device in the
    event. MODIFY: aggregators with devices taking part and every aggregator already sent this event, with
    ``released_devices`` (its devices whose participation was cancelled, e.g. no longer fitting the new window).
    Messages to aggregators with a webhook are delivered by a task after commit; the others are POLL_ONLY."""
    by_agg: dict[int, list[str]] = {}
    released: dict[int, list[str]] = {}
    hooks: dict[int, str] = {}
    for status, agg_id, dev, hook in Participation.objects.filter(event_id=event.pk, device__isnull=False).values_list(
            "status", "device__aggregator_id", "device__aggregator_device_id", "device__aggregator__webhook_url"):
        hooks[agg_id] = hook
        if kind == DispatchKind.CANCEL or status not in (RELEASED, ParticipationStatus.OPTED_OUT):
            by_agg.setdefault(agg_id, []).append(dev)
        elif status == RELEASED:
            released.setdefault(agg_id, []).append(dev)
    recipients = set(by_agg)
    if kind == DispatchKind.MODIFY:
        recipients |= set(DispatchMessage.objects.filter(event_id=event.pk).values_list("aggregator_id", flat=True))
    msgs = [DispatchMessage(event_id=event.pk, aggregator_id=agg_id, kind=kind, revision=event.revision,
                            payload=_message_payload(event, kind, by_agg.get(agg_id, []),
                                                     released.get(agg_id, []) if kind == DispatchKind.MODIFY
                                                     else None),
                            delivery_status=DeliveryStatus.PENDING if hooks.get(agg_id) else DeliveryStatus.POLL_ONLY,
                            created_at=now) for agg_id in sorted(recipients)]
    DispatchMessage.objects.bulk_create(msgs, ignore_conflicts=True)
    pending = list(DispatchMessage.objects.filter(event_id=event.pk, kind=kind, revision=event.revision,
                                                  delivery_status=DeliveryStatus.PENDING).values_list("pk", flat=True))
    from .tasks import deliver_dispatch_message

    for pk in pending:
        enqueue_on_commit(deliver_dispatch_message, message_id=pk)
    return pending


def _urlopen(request: urllib.request.Request, timeout: float):  # seam for tests
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - URL set by an administrator


def dispatch_message_deliver(*, message: DispatchMessage, now: dt.datetime) -> bool:
    """POST one dispatch message to its aggregator's webhook (JSON; ``X-CPM-Signature`` = HMAC-SHA256 of the body
    with the aggregator's webhook secret). Records the attempt; after ``MAX_DELIVERY_ATTEMPTS`` failures the
    message is FAILED. Returns True when delivered (or nothing left to do)."""
    message = DispatchMessage.objects.select_related("aggregator").get(pk=message.pk)
    if message.delivery_status != DeliveryStatus.PENDING:
        return True
    agg = message.aggregator
    body = json.dumps(message.payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "cpm-dispatch/1"}
    if agg.webhook_secret:
        headers["X-CPM-Signature"] = hmac.new(agg.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    error = ""
    try:
        with _urlopen(urllib.request.Request(agg.webhook_url, data=body, headers=headers, method="POST"),
                      timeout=10) as resp:
            status = getattr(resp, "status", 200)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = str(exc)[:500] or exc.__class__.__name__
    attempts = message.attempts + 1
    if not error:
        new_status = DeliveryStatus.DELIVERED
    elif attempts >= MAX_DELIVERY_ATTEMPTS:
        new_status = DeliveryStatus.FAILED
    else:
        new_status = DeliveryStatus.PENDING
    DispatchMessage.objects.filter(pk=message.pk).update(delivery_status=new_status, attempts=attempts,
                                                         last_attempt_at=now, last_error=error)
    return new_status != DeliveryStatus.PENDING


# ---------------------------------------------------------------------------------------------- status changes
def event_dispatch(*, event: Event, now: dt.datetime, actor: Any = None) -> Event:
    """SCHEDULED -> DISPATCHED: reserved participations become DISPATCHED and each aggregator gets a DISPATCH
    message. If the reservation never ran (task lost), it runs first."""
    if Event.objects.filter(pk=event.pk, reserved_at__isnull=True, status=EventStatus.SCHEDULED).exists():
        event_reserve(event=event, now=now, actor=actor)
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        transition(obj=event, to=EventStatus.DISPATCHED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason="notification time")
        n = Participation.objects.filter(event=event, status=ParticipationStatus.RESERVED).update(
            status=ParticipationStatus.DISPATCHED, updated_at=now)
        audit_record(obj=event, action="update", now=now, actor=actor, reason="participations dispatched",
                     changes={"participations_dispatched": n})
        _create_dispatch_messages(event, kind=DispatchKind.DISPATCH, now=now)
    return event


def event_activate(*, event: Event, now: dt.datetime, actor: Any = None) -> Event:
    """DISPATCHED -> ACTIVE (at start)."""
    with transaction.atomic():
        event = Event.objects.select_for_update().get(pk=event.pk)
        return transition(obj=event, to=EventStatus.ACTIVE, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                          reason="start time")


def event_complete(*, event: Event, now: dt.datetime, actor: Any = None) -> Event:
    """ACTIVE -> COMPLETED (at end); an after-event program's event is handed to settlement once
    (``settlement_handed_off_at``; ``events.signals.event_completed`` sent after commit)."""
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        transition(obj=event, to=EventStatus.COMPLETED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason="end time")
        _hand_off(event, now=now)
    return event


def _hand_off(event: Event, *, now: dt.datetime) -> bool:
    if event.program.settlement_timing != SettlementTiming.AFTER_EVENT:
        return False
    if not Event.objects.filter(pk=event.pk, status=EventStatus.COMPLETED,
                                settlement_handed_off_at__isnull=True).update(settlement_handed_off_at=now):
        return False
    event.settlement_handed_off_at = now
    event_id = event.pk
    transaction.on_commit(lambda: event_completed.send(sender=Event, event_id=event_id))
    return True


def event_cancel(*, event: Event, reason: str, now: dt.datetime, actor: Any = None) -> Event:
    """Cancel an event before it completes (reason required): every participation not yet final is CANCELLED
    (devices released; the event no longer counts toward limits, opt-out allowances or payments), and aggregators
    that were sent the event get a CANCEL message."""
    if not (reason or "").strip():
        raise DomainValidationError({"reason": ["Give the reason for cancelling."]})
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        was_sent = event.status in (EventStatus.DISPATCHED, EventStatus.ACTIVE)
        transition(obj=event, to=EventStatus.CANCELLED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason=reason, extra_updates={"cancel_reason": reason[:500]})
        if was_sent:
            _create_dispatch_messages(event, kind=DispatchKind.CANCEL, now=now)
        n = Participation.objects.filter(event=event).exclude(status=RELEASED).update(
            status=RELEASED, updated_at=now)
        audit_record(obj=event, action="update", now=now, actor=actor, reason=reason,
                     changes={"participations_cancelled": n})
    return event


def events_tick(*, now: dt.datetime) -> dict[str, int]:
    """The scheduling tick (UTC, every minute): DISPATCHED at notification time, ACTIVE at start, COMPLETED at
    end, and completed after-event events handed to settlement. Idempotent; each event in its own transaction
    (one failing event is logged and does not stop the others)."""
    done = {"dispatched": 0, "activated": 0, "completed": 0, "handed_off": 0}
    steps = (
        ("dispatched", EventStatus.SCHEDULED, "notification_at", event_dispatch),
        ("activated", EventStatus.DISPATCHED, "start", event_activate),
        ("completed", EventStatus.ACTIVE, "end", event_complete),
    )
    for key, status, field, service in steps:
        for event in Event.objects.filter(status=status, **{f"{field}__lte": now}).order_by(field, "pk"):
            try:
                service(event=event, now=now, actor="events.tick")
                done[key] += 1
            except (TransitionNotAllowed, ConflictError) as exc:
                logger.warning("events.tick: event %s: %s", event.pk, exc)
    for event in Event.objects.filter(status=EventStatus.COMPLETED, settlement_handed_off_at__isnull=True,
                                      program__settlement_timing=SettlementTiming.AFTER_EVENT).select_related(
                                      "program"):
        with transaction.atomic():
            done["handed_off"] += _hand_off(event, now=now)
    return done


# -------------------------------------------------------------------------------------------------------- opt-outs
def participation_opt_out(
    *,
    participation: Participation,
    channel: str,
    at: dt.datetime | None = None,
    now: dt.datetime,
    actor: Any = None,
    reason: str = "",
) -> OptOut:
    """Record an opt-out of a participation at ``at`` (default ``now``); the minutes before it are kept
    (``Participation.opted_out_at``) for proration.

    Requests (CSR page, portal, aggregator API) are refused (``ConflictError``, code ``opt_out_cutoff`` or
    ``opt_out_allowance``) after the program's cut-off (``opt_out_cutoff_minutes`` before start) and, when the rule
    sets ``refuse_opt_out_beyond_allowance``, once the allowance is used: a count per season, or a percentage of
    the season's event hours (``programs.rules.check_opt_out_request``, through ``events.selectors
    .opt_out_refusals`` so the CSR page shows the same answer).
    Reports of what happened at the device (aggregator outcome report, device override) are recorded whatever the
    time, and counted. Opting out twice returns the first opt-out (idempotent). Cancelled events: ``ConflictError``.
    """
    at = at or now
    with transaction.atomic():
        p = Participation.objects.select_for_update().select_related("event__program").get(pk=participation.pk)
        # Serialize opt-outs of the same enrollment so two requests cannot both take the last allowance.
        Enrollment.objects.select_for_update().filter(pk=p.enrollment_id).values_list("pk").first()
        event = p.event
        existing = OptOut.objects.filter(participation=p).first()
        if existing:
            return existing
        if event.status == EventStatus.CANCELLED or p.status == RELEASED:
            raise ConflictError(f"Event #{event.pk} '{event.name}' was cancelled; there is nothing to opt out of.")
        check_transition(allowed=PARTICIPATION_TRANSITIONS, current=p.status, to=ParticipationStatus.OPTED_OUT,
                         label=f"Participation #{p.pk}")
        if at >= event.end:
            raise DomainValidationError({"at": [f"The event ended at {event.end.isoformat()}; an opt-out must be "
                                                "before the end."]})
        if channel in REQUEST_CHANNELS:
            # The same check as the CSR page's upcoming participations (events.selectors.opt_out_refusals).
            refusal = opt_out_refusals([p], at=at)[p.pk]
            if refusal is not None:
                raise ConflictError(refusal.message, code=refusal.code)
        user = actor if getattr(actor, "pk", None) is not None and hasattr(actor, "get_username") else None
        opt_out = OptOut.objects.create(participation=p, channel=channel, at=at, recorded_by=user,
                                        reason=(reason or "")[:300])
        transition(obj=p, to=ParticipationStatus.OPTED_OUT, allowed=PARTICIPATION_TRANSITIONS, now=now, actor=actor,
                   reason=f"opt-out via {channel}" + (f": {reason}" if reason else ""),
                   extra_updates={"opted_out_at": at})
        return opt_out


OUTCOME_STATUSES = (ParticipationStatus.PARTICIPATED, ParticipationStatus.OPTED_OUT,
                    ParticipationStatus.NON_RESPONSIVE, ParticipationStatus.FAILED)


def participation_outcomes_report(
    *,
    aggregator: Aggregator,
    outcomes: list[dict[str, Any]],
    now: dt.datetime,
    actor: Any = None,
) -> list[dict[str, Any]]:
    """Record per-device outcomes reported by an aggregator, each row on its own (per-row result, nothing
    half-written for a row). A row: ``event`` (id), ``device`` (the aggregator's device id), ``revision``,
    ``status`` (participated, opted_out, non_responsive, failed), optional ``opted_out_at`` (aware).

    Idempotent per (event, device, revision): the same report again is ``unchanged``. Returns
    ``[{"index", "event", "device", "result": "recorded"|"unchanged"|"error", "detail"}]``.
    """
    keys = {(int(o["event"]), str(o["device"])) for o in outcomes}
    found = {
        (p.event_id, p.device.aggregator_device_id): p
        for p in Participation.objects.filter(
            event_id__in={k[0] for k in keys}, device__aggregator=aggregator,
            device__aggregator_device_id__in={k[1] for k in keys}).select_related("event", "device")
    }
    results = []
    for index, row in enumerate(outcomes):
        key = (int(row["event"]), str(row["device"]))
        base = {"index": index, "event": key[0], "device": key[1]}
        p = found.get(key)
        status, revision = row["status"], int(row["revision"])
        if p is None:
            results.append({**base, "result": "error", "detail": "This device is not reserved for this event."})
            continue
        if revision > p.event.revision or revision < 1:
            results.append({**base, "result": "error",
                            "detail": f"Unknown revision {revision} (event is at revision {p.event.revision})."})
            continue
        if p.outcome_revision == revision and p.status == status:
            results.append({**base, "result": "unchanged", "detail": ""})
            continue
        try:
            with transaction.atomic():
                if status == ParticipationStatus.OPTED_OUT:
                    participation_opt_out(participation=p, channel=OptOutChannel.AGGREGATOR_REPORT,
                                          at=row.get("opted_out_at") or now, now=now, actor=actor,
                                          reason="aggregator outcome report")
                    Participation.objects.filter(pk=p.pk).update(outcome_revision=revision, outcome_reported_at=now)
                else:
                    locked = Participation.objects.select_for_update().get(pk=p.pk)
                    transition(obj=locked, to=status, allowed=PARTICIPATION_TRANSITIONS, now=now, actor=actor,
                               reason=f"aggregator {aggregator.code} outcome, revision {revision}",
                               extra_updates={"outcome_revision": revision, "outcome_reported_at": now})
            results.append({**base, "result": "recorded", "detail": ""})
        except (ConflictError, DomainValidationError) as exc:
            results.append({**base, "result": "error", "detail": exc.message})
    return results


# ------------------------------------------------------------------------------------------------- unavailability
@transaction.atomic
def unavailability_create(
    *,
    enrollment: Enrollment,
    start: dt.datetime,
    end: dt.datetime,
    device: Device | None = None,
    reason: str = "",
    now: dt.datetime,
    actor: Any = None,
) -> Unavailability:
    """Record a customer-declared period ``[start, end)`` (aware) when the enrollment's devices (or one device)
    must not be called. The device must be subscribed in the enrollment (``DomainValidationError``)."""
    errors: dict[str, list[str]] = {}
    if end <= start:
        errors["end"] = ["end must be after start."]
    if end <= now:
        errors["end"] = ["The period is already over."]
    if device is not None and not ProgramSubscription.objects.filter(enrollment=enrollment, device=device).exists():
        errors["device"] = [f"Device {device.pk} is not subscribed in enrollment {enrollment.pk}."]
    if errors:
        raise DomainValidationError(errors)
    item = Unavailability.objects.create(enrollment=enrollment, device=device, start=start, end=end,
                                         reason=(reason or "")[:300])
    audit_record(obj=item, action="create", now=now, actor=actor, reason=reason,
                 changes={"start": start.isoformat(), "end": end.isoformat(), "device": device and device.pk})
    return item


def get_or_404(model, pk) -> Any:
    try:
        return model.objects.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound(f"{model._meta.verbose_name} {pk} not found.") from exc
