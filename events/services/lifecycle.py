"""The event lifecycle: create and modify (revisions), schedule under the program's participation rules, and the
status changes dispatch, activate, complete (hand-off to settlement) and cancel.

Every service takes ``now`` (aware UTC) and a required ``actor`` keyword-only, is a use case guarded by
``Cap.MANAGE_EVENTS`` (``cpm.base.capabilities``), owns its transaction and records status changes through
``cpm.base.states.transition`` (audited). Bulk participation changes (dispatch, cancel) write one audit entry per
participation (``common.participations_move``). Times are stored in UTC; the program's IANA zone is used for local
days, windows and seasons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q

from cpm.base.audit import audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError, TransitionNotAllowed
from cpm.base.states import check_transition, transition
from cpm.base.tasks import enqueue_on_commit
from cpm.base.timeutils import format_local, zone
from devices.models import Device
from programs import calendars
from programs import rules as program_rules
from programs.choices import DeviceType, ProgramStatus, SettlementTiming
from programs.models import Program

from ..choices import (
    EVENT_TRANSITIONS,
    DispatchKind,
    EventCategory,
    EventStatus,
    ParticipationStatus,
    ReservationDecision,
)
from ..models import Event, EventRevision, Participation, Reservation
from ..selectors import ProgramContext
from ..signals import event_cancelled, event_completed, event_dispatched, event_modified
from .common import RELEASED, actor_name, participations_move, to_utc
from .dispatch import create_dispatch_messages
from .release import dispatch_recheck
from .reservation import RELEASED_BY, event_reserve, finish_reservation, reserve_locked

EDITABLE_FIELDS = ("name", "category", "direction", "start", "end", "notification_at", "target_territories",
                   "target_substations", "target_feeders", "target_device_types", "target_kw")
# Changes that move devices in or out: the reservation runs again for them.
RESERVATION_FIELDS = ("start", "end", "target_territories", "target_substations", "target_feeders",
                      "target_device_types", "target_devices", "target_kw")
# Skip reasons another event of the program causes by counting toward the participant's limits.
LIMIT_DECISIONS = (ReservationDecision.DAY_LIMIT, ReservationDecision.WEEK_LIMIT, ReservationDecision.SEASON_LIMIT,
                   ReservationDecision.HOURS_LIMIT, ReservationDecision.DAY_HOURS_LIMIT, ReservationDecision.REST,
                   ReservationDecision.CONSECUTIVE_DAYS, ReservationDecision.OPT_OUT_ALLOWANCE_USED)


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


# The fields as the API names them; a form passes its own labels (``event_values_errors``).
API_LABELS = {"start": "start", "end": "end", "notification_at": "notification_at", "target_kw": "target_kw"}


def event_values_errors(*, start: dt.datetime, end: dt.datetime, notification_at: dt.datetime | None,
                        target_kw: Decimal | None = None,
                        labels: Mapping[str, str] = API_LABELS) -> dict[str, list[str]]:
    """What is wrong with an event window ``[start, end)``, its notice time (aware, or all naive in one zone;
    ``notification_at`` None = at ``start``) and its target (kW, None = none): ``{"end": [...],
    "notification_at": [...], "target_kw": [...]}``, empty when nothing is. The messages name the fields by
    ``labels`` (``start``, ``end``, ``notification_at``, ``target_kw`` to names): the API's by default ("end must be
    after start."), the form's labels on a form ("End must be after Start."). ``event_create`` and ``event_update``
    refuse with the same errors (API names)."""
    errors: dict[str, list[str]] = {}
    if end <= start:
        errors["end"] = [f"{labels['end']} must be after {labels['start']}."]
    if notification_at is not None and notification_at > start:
        errors["notification_at"] = [f"{labels['notification_at']} must be at or before {labels['start']}."]
    if target_kw is not None and target_kw <= 0:
        errors["target_kw"] = [f"{labels['target_kw']} must be positive."]
    return errors


def _validate_window(event: Event) -> None:
    errors = event_values_errors(start=event.start, end=event.end, notification_at=event.notification_at,
                                 target_kw=event.target_kw)
    unknown = [t for t in event.target_device_types if t not in DeviceType.values]
    if unknown:
        errors["target_device_types"] = [f"Unknown device type {unknown[0]!r}; the device types are "
                                         f"{', '.join(DeviceType.values)}."]
    if errors:
        raise DomainValidationError(errors)


def _set_target_devices(event: Event, device_ids: list[int]) -> None:
    found = set(Device.objects.filter(pk__in=device_ids).values_list("pk", flat=True))
    missing = sorted(set(device_ids) - found)
    if missing:
        raise DomainValidationError({"target_devices": [f"Unknown device ids: {missing[:20]}."]})
    event.target_devices.set(sorted(found))


# ------------------------------------------------------------------------------------------------- create / modify
@use_case("event.create", Cap.MANAGE_EVENTS)
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
    actor: Any,
) -> Event:
    """Create a DRAFT event. ``start``/``end``/``notification_at``: aware instants, or naive local wall-clock times
    in the program's zone (refused if skipped or repeated by a DST change). ``notification_at`` defaults to
    ``start``. Targeting lists empty = every enrolled device. Raises ``DomainValidationError`` naming the field."""
    if program.status == ProgramStatus.CLOSED:
        raise ConflictError(f"Program {program.code} is closed.")
    tz = zone(program.time_zone)
    start_utc = to_utc(start, tz, "start")
    event = Event(
        program=program, name=name, category=category, direction=direction, start=start_utc,
        end=to_utc(end, tz, "end"),
        notification_at=to_utc(notification_at, tz, "notification_at") if notification_at else start_utc,
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


def _apply_changes(event: Event, changes: dict[str, Any]) -> None:
    """Set the changed fields on ``event`` (window times to UTC as in ``event_create``) and validate the window."""
    tz = zone(event.program.time_zone)
    for key, value in changes.items():
        if key == "target_device_ids":
            continue
        if key in ("start", "end", "notification_at"):
            value = to_utc(value, tz, key)
        setattr(event, key, value)
    _validate_window(event)


def _new_revision(event: Event, ctx: ProgramContext, *, before: dict, after: dict, now: dt.datetime, actor: Any,
                  reason: str) -> None:
    """A scheduled event changes: the window may only move to the future, the rules are checked again (unless an
    emergency override), and the previous version is kept as an ``EventRevision``.

    An event that has begun (its start passed, the tick not yet run: still DISPATCHED) may not change whom it
    calls (targeting, target kW), as an ACTIVE event may not: the reservation run again would add devices
    DISPATCHED for the whole window, from its start (settled as having taken part before they were called), and
    cancel dispatched ones under way."""
    if event.start <= now and (before["start"], before["end"]) != (after["start"], after["end"]):
        raise DomainValidationError({"start": ["A scheduled event's window can only move to the future."]})
    if event.start <= now:
        changed = [f for f in RESERVATION_FIELDS if f in before and before[f] != after[f]]
        if changed:
            began = format_local(event.start, zone(event.program.time_zone))
            raise DomainValidationError({changed[0]: [
                f"The event began at {began}: the devices it calls can no longer change."]})
    if not event.overrides_rules:
        _check_rules(event, ctx, now=now)
    EventRevision.objects.create(event=event, revision=event.revision, snapshot=before, changed_at=now,
                                 changed_by=actor_name(actor), reason=reason[:500])
    event.revision += 1


@use_case("event.update", Cap.MANAGE_EVENTS)
def event_update(
    *,
    event: Event,
    changes: dict[str, Any],
    now: dt.datetime,
    actor: Any,
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
    (its devices taking part, and those released). An emergency scheduled over the rules that is changed to another
    category loses the override and is checked against the rules. ACTIVE, COMPLETED and CANCELLED events cannot be
    modified (``TransitionNotAllowed``). No change at all: nothing happens (no revision).
    """
    unknown = set(changes) - set(EDITABLE_FIELDS) - {"target_device_ids"}
    if unknown:
        raise DomainValidationError({sorted(unknown)[0]: ["This field cannot be changed."]})
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        if event.status not in (EventStatus.DRAFT, EventStatus.SCHEDULED, EventStatus.DISPATCHED):
            raise TransitionNotAllowed(f"Event {event} is {event.status} and can no longer be modified.",
                                       from_status=event.status, to_status=event.status)
        old_devices = list(event.target_devices.values_list("pk", flat=True))
        before = _snapshot(event, old_devices)
        _apply_changes(event, changes)
        new_devices = changes.get("target_device_ids")
        after = _snapshot(event, new_devices if new_devices is not None else old_devices)
        if after == before:
            return event
        live = event.status != EventStatus.DRAFT
        # The override of the rules belongs to an emergency: an event changed to another category loses it and is
        # checked against the rules like any other (refused by rule field, nothing changed).
        override_cleared = live and event.overrides_rules and event.category != EventCategory.EMERGENCY
        if override_cleared:
            event.overrides_rules, event.override_reason = False, ""
        if live:
            ctx = ProgramContext.load(event.program)
            _new_revision(event, ctx, before=before, after=after, now=now, actor=actor, reason=reason)
        event.save()
        if new_devices is not None:
            _set_target_devices(event, new_devices)
        counts, again = None, []
        if live and any(before[f] != after[f] for f in RESERVATION_FIELDS):
            # The events this one's participants were skipped from as it stood: reserved again once it has moved,
            # shrunk or called other devices (a limit or a device it no longer takes may now be free there).
            again = _skipped_for(event)
            counts = reserve_locked(event, ctx, now=now, actor=actor)
            finish_reservation(event, counts, now=now, actor=actor)
        audit_record(obj=event, action="update", now=now, actor=actor, reason=reason,
                     changes={"before": before, "after": after, "revision": event.revision,
                              "reservation_counts": counts,
                              **({"reserved_again": again} if again else {}),
                              **({"override_cleared": True} if override_cleared else {})})
        _reserve_again(again, now=now)
        if event.status == EventStatus.DISPATCHED:
            create_dispatch_messages(event, kind=DispatchKind.MODIFY, now=now)
        event_modified.send(sender=Event, event_id=event.pk, revision=event.revision, now=now, actor=actor)
    return event


def _skipped_for(event: Event) -> list[int]:
    """The other SCHEDULED events whose ledger skipped a participant because of this event as it stands: a limit of
    the program (day, week, season, hours, rest, consecutive days, opt-out allowance) of an enrollment this event
    counts for, or an overlap on a device (or device-less service point) this event holds. Called before the event
    is cancelled or changed; those events are reserved again after commit (``_reserve_again``), so a device the
    event no longer counts for or holds is called there, and their ledger no longer names it. Earliest first."""
    counted = Participation.objects.filter(event_id=event.pk).exclude(status=RELEASED)
    limit = Q(event__program_id=event.program_id, decision__in=LIMIT_DECISIONS,
              enrollment_id__in=counted.values("enrollment_id"))
    overlap = Q(decision=ReservationDecision.OVERLAP) & (
        Q(device_id__in=counted.filter(device__isnull=False).values("device_id"))
        | Q(device__isnull=True, service_point_id__in=counted.filter(device__isnull=True).values("service_point_id")))
    # The scheduled events first (few), then their ledgers by the (event, decision) index: never a scan of every
    # event's ledger.
    scheduled = list(Event.objects.filter(status=EventStatus.SCHEDULED).exclude(pk=event.pk)
                     .values_list("pk", flat=True))
    if not scheduled:
        return []
    skipped = set(Reservation.objects.filter(event_id__in=scheduled).filter(limit | overlap)
                  .values_list("event_id", flat=True).distinct())
    return list(Event.objects.filter(pk__in=skipped).order_by("start", "pk").values_list("pk", flat=True))


def _reserve_again(event_ids: list[int], *, now: dt.datetime) -> None:
    """Run the reservation of these scheduled events again after commit, in the order given (idempotent)."""
    from ..tasks import reserve_event

    for other_id in event_ids:
        enqueue_on_commit(reserve_event, event_id=other_id, now=now.isoformat())


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


def _override(event: Event, violations: list[program_rules.Violation], *, override_rules: bool,
              override_reason: str, now: dt.datetime, actor: Any) -> dict[str, Any]:
    """An emergency event scheduled over the rules: refused unless asked for, for an emergency, with a reason; the
    override and the rules overridden are audited. Returns the event fields that record it."""
    if not override_rules:
        raise DomainValidationError(_violation_errors(violations), code="participation_rule")
    if event.category != EventCategory.EMERGENCY:
        raise DomainValidationError({"override_rules": ["Only an emergency event may override the "
                                                        "participation rules."]})
    if not override_reason.strip():
        raise DomainValidationError({"override_reason": ["Give the reason for overriding the rules."]})
    audit_record(obj=event, action="override", now=now, actor=actor, reason=override_reason,
                 changes={"violations": [f"{v.field}: {v.message}" for v in violations]})
    return {"overrides_rules": True, "override_reason": override_reason[:500]}


@use_case("event.schedule", Cap.MANAGE_EVENTS)
def event_schedule(
    *,
    event: Event,
    now: dt.datetime,
    actor: Any,
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
        violations = _rule_violations(event, ProgramContext.load(program), now=now)
        extra: dict[str, Any] = {}
        if violations:
            extra = _override(event, violations, override_rules=override_rules, override_reason=override_reason,
                              now=now, actor=actor)
        transition(obj=event, to=EventStatus.SCHEDULED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason=override_reason if violations else "scheduled", extra_updates=extra)
        from ..tasks import reserve_event

        # The reservation decides as of the scheduling instant (a simulated clock in the demo: a 2011 event is
        # reserved in 2011, not on the day the demo runs).
        enqueue_on_commit(reserve_event, event_id=event.pk, now=now.isoformat())
    return event


# ---------------------------------------------------------------------------------------------- status changes
@use_case("event.dispatch", Cap.MANAGE_EVENTS)
def event_dispatch(*, event: Event, now: dt.datetime, actor: Any) -> Event:
    """SCHEDULED -> DISPATCHED: reserved participations become DISPATCHED (one audit entry each) and each
    aggregator gets a DISPATCH message. If the reservation never ran (task lost), it runs first.

    Re-check first (``release.dispatch_recheck``): a reserved participation no longer valid (enrollment not active
    or ended, subscription ended, device not active, unavailability declared over the event) is RELEASED with its
    reason and not sent."""
    if Event.objects.filter(pk=event.pk, reserved_at__isnull=True, status=EventStatus.SCHEDULED).exists():
        event_reserve(event=event, now=now, actor=actor)
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        # Refused before anything moves; the one audit entry of the change carries what it did to participations.
        check_transition(allowed=EVENT_TRANSITIONS, current=event.status, to=EventStatus.DISPATCHED,
                         label=f"Event {event}")
        released = dispatch_recheck(event, now=now, actor=actor)
        n = participations_move(Participation.objects.filter(event=event, status=ParticipationStatus.RESERVED),
                                to=ParticipationStatus.DISPATCHED, now=now, actor=actor,
                                reason=f"event #{event.pk} dispatched")
        transition(obj=event, to=EventStatus.DISPATCHED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason="notification time",
                   changes={"participations_dispatched": n, "participations_released": len(released)})
        create_dispatch_messages(event, kind=DispatchKind.DISPATCH, now=now)
        event_dispatched.send(sender=Event, event_id=event.pk, now=now, actor=actor)
    return event


@use_case("event.activate", Cap.MANAGE_EVENTS)
def event_activate(*, event: Event, now: dt.datetime, actor: Any) -> Event:
    """DISPATCHED -> ACTIVE (at start)."""
    with transaction.atomic():
        event = Event.objects.select_for_update().get(pk=event.pk)
        return transition(obj=event, to=EventStatus.ACTIVE, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                          reason="start time")


@use_case("event.complete", Cap.MANAGE_EVENTS)
def event_complete(*, event: Event, now: dt.datetime, actor: Any) -> Event:
    """ACTIVE -> COMPLETED (at end); an after-event program's event is handed to settlement once
    (``settlement_hand_off``)."""
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        transition(obj=event, to=EventStatus.COMPLETED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason="end time")
        settlement_hand_off(event, now=now)
    return event


def settlement_hand_off(event: Event, *, now: dt.datetime) -> bool:
    """Hand a COMPLETED event of an after-event program to settlement, once: ``settlement_handed_off_at`` is set
    and ``events.signals.event_completed`` is sent after commit. A step of ``event_complete`` and of the tick (which
    checked their actor). Returns whether it was handed off now."""
    if event.program.settlement_timing != SettlementTiming.AFTER_EVENT:
        return False
    if not Event.objects.filter(pk=event.pk, status=EventStatus.COMPLETED,
                                settlement_handed_off_at__isnull=True).update(settlement_handed_off_at=now):
        return False
    event.settlement_handed_off_at = now
    event_id = event.pk
    transaction.on_commit(lambda: event_completed.send(sender=Event, event_id=event_id))
    return True


@use_case("event.cancel", Cap.MANAGE_EVENTS)
def event_cancel(*, event: Event, reason: str, now: dt.datetime, actor: Any) -> Event:
    """Cancel an event before it completes (reason required): every participation not yet final is CANCELLED
    (devices released, one audit entry per participation with the actor and the reason; the event no longer counts
    toward limits, opt-out allowances or payments), and aggregators that were sent the event get a CANCEL
    message. Lower-priority events still scheduled that this event took devices from are reserved again after
    commit, so the devices go back to them."""
    if not (reason or "").strip():
        raise DomainValidationError({"reason": ["Give the reason for cancelling."]})
    with transaction.atomic():
        event = Event.objects.select_for_update().select_related("program").get(pk=event.pk)
        was_sent = event.status in (EventStatus.DISPATCHED, EventStatus.ACTIVE)
        # Refused before anything moves; the one audit entry of the change carries what it did to participations.
        check_transition(allowed=EVENT_TRANSITIONS, current=event.status, to=EventStatus.CANCELLED,
                         label=f"Event {event}")
        skipped = _skipped_for(event)
        n = participations_move(Participation.objects.filter(event=event).exclude(status=RELEASED), to=RELEASED,
                                now=now, actor=actor, reason=reason)
        # Devices this event took from lower-priority events still scheduled go back to them: their reservation
        # runs again after commit (idempotent; a fresh decision for every candidate).
        # So do devices skipped from other scheduled events because this one counted toward their limits or held
        # them at the same time (``_skipped_for``): the event no longer counts.
        given_back = sorted(set(Reservation.objects.filter(
            decision=ReservationDecision.RELEASED, detail__startswith=f"{RELEASED_BY}event #{event.pk} '",
            event__status=EventStatus.SCHEDULED).values_list("event_id", flat=True)))
        again = [*given_back, *(pk for pk in skipped if pk not in given_back)]
        transition(obj=event, to=EventStatus.CANCELLED, allowed=EVENT_TRANSITIONS, now=now, actor=actor,
                   reason=reason, extra_updates={"cancel_reason": reason[:500]},
                   changes={"participations_cancelled": n, **({"reserved_again": again} if again else {})})
        if was_sent:
            create_dispatch_messages(event, kind=DispatchKind.CANCEL, now=now)
        _reserve_again(again, now=now)
        event_cancelled.send(sender=Event, event_id=event.pk, reason=reason, now=now, actor=actor)
    return event
