"""Reservations follow the customer: releases of participations that are no longer valid.

A participation of an event not yet completed (SCHEDULED, DISPATCHED or ACTIVE) is RELEASED (``common.RELEASED``,
through ``PARTICIPATION_TRANSITIONS``, one audit entry per row with the actor and the reason) when:

- its enrollment ends (unenrolled, account closed: ``enrollments.signals.enrollment_ended``) from the end date on;
- its subscription ends (device removed, replaced, subscription ended: ``enrollments.signals.subscription_ended``)
  from the end date on; a replacement device (a subscription of the same enrollment starting the day the old one
  ended) takes the old device's place in events not yet dispatched (the reservation engine decides it, its ledger
  row names the device it replaces);
- its device goes inactive or is retired (``devices.signals.device_status_changed``), for events not yet begun
  (one under way keeps what the device delivered before);
- the customer declares unavailability over it (``optouts.unavailability_create``); a participation already under
  way then is opted out at that time instead (it keeps what it delivered: ``release_for_unavailability``);
- ``event_dispatch`` finds it no longer valid (``dispatch_recheck``);
- a higher-priority overlapping event takes the device (``reservation``, ``events.priority``).

The event's ledger row of the candidate (one per (event, subscription)) becomes a RELEASED decision with the
reason in words ("Released: enrollment ended on 2026-07-14 (customer request)."); the participation's audit entries
keep the history (reserved or dispatched -> cancelled, by whom, why). If the event was already sent to the
aggregators, each aggregator with released devices gets a RELEASE message listing them.

The signal receivers react to another user's change, so they act as the named system actor ``events.release``
(``RELEASE_ACTOR``); each runs in its own transaction after the change committed.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from cpm.base.audit import audit_bulk, audit_record
from cpm.base.capabilities import system_actor
from cpm.base.errors import TransitionNotAllowed
from cpm.base.states import check_transition
from cpm.base.tasks import enqueue_on_commit
from cpm.base.timeutils import local_midnight, zone
from devices.choices import DeviceStatus
from devices.models import Device
from enrollments.choices import EnrollmentStatus, ReasonCode
from enrollments.models import Enrollment, ProgramSubscription

from ..choices import (
    PARTICIPATION_TRANSITIONS,
    DeliveryStatus,
    DispatchKind,
    EventStatus,
    OptOutChannel,
    ParticipationStatus,
    ReservationDecision,
)
from ..models import DispatchMessage, Event, Participation, Reservation, Unavailability
from .common import RELEASED, event_local_dates

RELEASE_ACTOR = system_actor("events.release")
LIVE = (ParticipationStatus.RESERVED, ParticipationStatus.DISPATCHED)
OPEN_EVENT_STATUSES = (EventStatus.SCHEDULED, EventStatus.DISPATCHED, EventStatus.ACTIVE)
SENT_EVENT_STATUSES = (EventStatus.DISPATCHED, EventStatus.ACTIVE)


def clock() -> dt.datetime:
    """Now (UTC) for the signal receivers, the one place they read the clock (tests replace it)."""
    return dt.datetime.now(dt.UTC)


class ReleasedRow(NamedTuple):
    participation_id: int
    event_id: int
    subscription_id: int
    enrollment_id: int
    device_id: int | None
    service_point_id: int
    status: str  # before the release
    event_status: str
    capacity_kw: Any
    time_zone: str  # the event's program's IANA zone: times in a reason are written in it


_FIELDS = ("pk", "event_id", "subscription_id", "enrollment_id", "device_id", "service_point_id", "status",
           "event__status", "device__capacity_kw", "event__program__time_zone")


def release_participations(queryset: QuerySet[Participation], *, reason, now: dt.datetime, actor: Any
                           ) -> list[ReleasedRow]:
    """Release the live participations (reserved or dispatched) of ``queryset`` in events not yet completed, in the
    caller's transaction: status RELEASED (checked against the transition map, one audit entry per row with the
    actor and the reason), the ledger rows RELEASED with the reason, and a RELEASE message per aggregator for
    devices already sent. ``reason``: text, or a function of the ``ReleasedRow`` giving its text. Rows are locked
    in id order. Returns the released rows (empty: nothing to do, no query beyond the first)."""
    rows = [ReleasedRow(*r) for r in queryset.filter(status__in=LIVE, event__status__in=OPEN_EVENT_STATUSES)
            .select_for_update(of=("self",)).order_by("pk").values_list(*_FIELDS)]
    if not rows:
        return []
    texts = {r.participation_id: (reason(r) if callable(reason) else reason)[:300] for r in rows}
    for status in {r.status for r in rows}:
        check_transition(allowed=PARTICIPATION_TRANSITIONS, current=status, to=RELEASED, label="Participation")
    moved = Participation.objects.filter(pk__in=[r.participation_id for r in rows], status__in=LIVE).update(
        status=RELEASED, updated_at=now)
    if moved != len(rows):
        raise TransitionNotAllowed("Participations changed status concurrently; reload and try again.",
                                   from_status="", to_status=RELEASED)
    audit_bulk(model=Participation, rows=[(r.participation_id, r.status, RELEASED, texts[r.participation_id])
                                          for r in rows], now=now, actor=actor)
    _ledger_released(rows, texts, now=now)
    _release_messages([r for r in rows if r.status == ParticipationStatus.DISPATCHED
                       and r.event_status in SENT_EVENT_STATUSES], now=now)
    return rows


def _ledger_released(rows: list[ReleasedRow], texts: dict[int, str], *, now: dt.datetime) -> None:
    """The candidates' ledger rows become RELEASED with the reason (one UPDATE per event and reason); a
    participation without a ledger row gets one."""
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for r in rows:
        groups[(r.event_id, texts[r.participation_id])].append(r.subscription_id)
    for (event_id, text), sub_ids in groups.items():
        Reservation.objects.filter(event_id=event_id, subscription_id__in=sub_ids).update(
            decision=ReservationDecision.RELEASED, detail=text, decided_at=now)
    have = set(Reservation.objects.filter(
        Q(*[Q(event_id=r.event_id, subscription_id=r.subscription_id) for r in rows], _connector=Q.OR))
        .values_list("event_id", "subscription_id"))
    Reservation.objects.bulk_create([
        Reservation(event_id=r.event_id, subscription_id=r.subscription_id, enrollment_id=r.enrollment_id,
                    device_id=r.device_id, service_point_id=r.service_point_id,
                    decision=ReservationDecision.RELEASED, detail=texts[r.participation_id],
                    capacity_kw=r.capacity_kw or 0, decided_at=now)
        for r in rows if (r.event_id, r.subscription_id) not in have])


def _release_messages(rows: list[ReleasedRow], *, now: dt.datetime) -> list[int]:
    """One RELEASE message per (event, aggregator) listing the released devices that had been sent."""
    if not rows:
        return []
    from ..tasks import deliver_dispatch_message
    from .dispatch import _message_payload

    devices = {pk: (agg, ext, hook) for pk, agg, ext, hook in Device.objects.filter(
        pk__in={r.device_id for r in rows if r.device_id is not None}).values_list(
        "pk", "aggregator_id", "aggregator_device_id", "aggregator__webhook_url")}
    by_event: dict[int, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    hooks: dict[int, str] = {}
    for r in rows:
        if r.device_id in devices:
            agg, ext, hook = devices[r.device_id]
            by_event[r.event_id][agg].append(ext)
            hooks[agg] = hook
    created = []
    for event in Event.objects.filter(pk__in=list(by_event)).select_related("program").order_by("pk"):
        for agg_id, released in sorted(by_event[event.pk].items()):
            msg = DispatchMessage.objects.create(
                event=event, aggregator_id=agg_id, kind=DispatchKind.RELEASE, revision=event.revision,
                payload=_message_payload(event, DispatchKind.RELEASE, [], released),
                delivery_status=DeliveryStatus.PENDING if hooks.get(agg_id) else DeliveryStatus.POLL_ONLY,
                created_at=now)
            if msg.delivery_status == DeliveryStatus.PENDING:
                enqueue_on_commit(deliver_dispatch_message, message_id=msg.pk)
            created.append(msg.pk)
    return created


# --------------------------------------------------------------------------------------------- release triggers
def _from_day(day: dt.date | None, time_zone: str) -> Q:
    """Participations of events still running on or after local ``day`` (the event's last local day >= day)."""
    if day is None:
        return Q()
    return Q(end__gt=local_midnight(day, zone(time_zone)))


def _reason_words(code: str) -> str:
    try:
        return ReasonCode(code).label.lower()
    except ValueError:
        return code.replace("_", " ")


def release_for_enrollment(*, enrollment_id: int, end_date: dt.date | None, reason_code: str, now: dt.datetime,
                           actor: Any) -> list[ReleasedRow]:
    """The enrollment ended on ``end_date`` (first local day no longer enrolled): release its participations of
    events still running on or after that day."""
    enrollment = Enrollment.objects.select_related("program").get(pk=enrollment_id)
    when = f" on {end_date}" if end_date else ""
    return release_participations(
        Participation.objects.filter(_from_day(end_date, enrollment.program.time_zone), enrollment_id=enrollment_id),
        reason=f"Released: enrollment ended{when} ({_reason_words(reason_code)}).", now=now, actor=actor)


def replacement_of(sub: ProgramSubscription) -> ProgramSubscription | None:
    """The subscription that replaced ``sub`` (``enrollment_replace_device``): one of the same enrollment, for
    another device, starting the day ``sub`` ended and still running then; None when the device was removed."""
    if sub.end_date is None:
        return None
    return (ProgramSubscription.objects.filter(Q(end_date__isnull=True) | Q(end_date__gt=sub.end_date),
                                               enrollment_id=sub.enrollment_id, start_date=sub.end_date,
                                               device__isnull=False)
            .exclude(pk=sub.pk).exclude(device_id=sub.device_id).select_related("device").order_by("-pk").first())


def release_for_subscription(*, subscription_id: int, now: dt.datetime, actor: Any) -> list[ReleasedRow]:
    """The subscription ended: release its participations of events still running on or after its end date. A
    replacement device then takes the old one's place in the events not yet dispatched (``_reserve_replacement``)."""
    sub = ProgramSubscription.objects.select_related("enrollment__program", "device").get(pk=subscription_id)
    new = replacement_of(sub)
    if new is not None:
        reason = f"Released: device {sub.device} replaced by device {new.device} on {sub.end_date}."
    else:
        reason = f"Released: subscription ended on {sub.end_date} ({_reason_words(sub.end_reason)})."
    released = release_participations(
        Participation.objects.filter(_from_day(sub.end_date, sub.enrollment.program.time_zone),
                                     subscription_id=subscription_id), reason=reason, now=now, actor=actor)
    if new is not None:
        for event_id in sorted({r.event_id for r in released if r.event_status == EventStatus.SCHEDULED}):
            _reserve_replacement(event_id, new, old=sub, now=now, actor=actor)
    return released


def _reserve_replacement(event_id: int, new: ProgramSubscription, *, old: ProgramSubscription, now: dt.datetime,
                         actor: Any) -> None:
    """The reservation engine decides the replacement subscription alone (a span of one id) for a SCHEDULED event;
    its ledger row names the device it replaces (RESERVED, or why not). Audited on the event."""
    from .reservation import Span, evaluate_span, write_decisions

    event = Event.objects.select_for_update().select_related("program").get(pk=event_id)
    if event.status != EventStatus.SCHEDULED:
        return
    decided = evaluate_span(event, Span(new.pk, new.pk + 1), now=now)
    note = f"Replaces device {old.device} (replaced on {old.end_date})."
    for d in decided:
        d.detail = f"{note} {d.detail}".strip()
    counts = write_decisions(event, decided, now=now, actor=actor)
    audit_record(obj=event, action="update", now=now, actor=actor, reason=note,
                 changes={"replacement_subscription": new.pk, "replaced_subscription": old.pk,
                          "reservation_counts": counts})


def release_for_device(*, device_id: int, status: str, now: dt.datetime, actor: Any) -> list[ReleasedRow]:
    """The device went inactive or was retired: release its participations of every event not yet completed that
    have not begun at ``now``. A participation under way is left as it is: the device took part until it went
    inactive, and settlement measures what it delivered (prorated over the event: a battery that discharged 9 kW
    in the first hour of a 3-hour event counts 3 kW); releasing it would cancel that. So is one whose event is
    over but not yet completed by the tick: the device took part in all of it. The reason gives the day in each
    event's program zone."""
    device = Device.objects.get(pk=device_id)
    return release_participations(
        Participation.objects.filter(device_id=device_id, start__gte=now),
        reason=lambda r: f"Released: device {device} set {status} on {now.astimezone(zone(r.time_zone)):%Y-%m-%d}.",
        now=now, actor=actor)


def release_for_unavailability(item: Unavailability, *, tz_name: str, now: dt.datetime, actor: Any
                               ) -> list[ReleasedRow]:
    """The customer declared ``item`` (the enrollment, or one device): release its participations overlapping it
    that have not begun when the declaration takes effect (``at`` = the later of ``now`` and the period's start).

    A participation already under way (its event began before ``now``, when the customer declares, and ends after
    ``at``) is not released: the device took part until ``at``, so it is opted out at ``at``
    (``participation_opt_out``, channel ``unavailability``, never refused: a report of what the customer declared)
    and keeps what it delivered before (prorated settlement: a battery that discharged 9 kW in the first hour of a
    3-hour event counts 9 kWh, 3 kW); the aggregator gets a RELEASE message for its device if the event was sent. A
    participation whose event has not begun at ``now`` is released whole, even where the period covers only part of
    the event (the reservation engine and the dispatch re-check treat any overlap so): opting it out ahead would
    leave the device out of the dispatch while settlement counted the hours before ``at`` as taken part in. A
    participation whose event ended by ``at`` (not yet completed by the tick) is left as it is. Returns the released
    rows."""
    from .optouts import participation_opt_out

    at = max(now, item.start)
    qs = Participation.objects.filter(enrollment_id=item.enrollment_id, start__lt=item.end, end__gt=item.start)
    if item.device_id is not None:
        qs = qs.filter(device_id=item.device_id)
    tz = zone(tz_name)
    declared = (f"customer declared unavailable {item.start.astimezone(tz):%Y-%m-%d %H:%M %Z} to "
                f"{item.end.astimezone(tz):%Y-%m-%d %H:%M %Z}" + (f" ({item.reason})" if item.reason else ""))
    under_way = [ReleasedRow(*r) for r in qs.filter(start__lt=now, end__gt=at, status__in=LIVE,
                                                   event__status__in=OPEN_EVENT_STATUSES)
                 .order_by("pk").values_list(*_FIELDS)]
    for row in under_way:
        participation_opt_out(participation=Participation(pk=row.participation_id),
                              channel=OptOutChannel.UNAVAILABILITY, at=at, now=now, actor=actor,
                              reason=f"{declared[0].upper()}{declared[1:]}")
    _release_messages([r for r in under_way if r.status == ParticipationStatus.DISPATCHED
                       and r.event_status in SENT_EVENT_STATUSES], now=now)
    return release_participations(qs.filter(start__gte=now), reason=f"Released: {declared}.", now=now, actor=actor)


# ------------------------------------------------------------------------------------------------ dispatch check
def dispatch_recheck(event: Event, *, now: dt.datetime, actor: Any) -> list[ReleasedRow]:
    """Before an event is dispatched: release its reserved participations that are no longer valid (enrollment not
    active or ended by the event's last day, subscription ended by then, device not active, unavailability over the
    event), each with its reason. One query finds them (joins on primary keys, over this event's participations),
    one more gives the unavailability texts of those flagged."""
    tz = zone(event.program.time_zone)
    _first, last = event_local_dates(event, tz)
    unavailable = Unavailability.objects.filter(
        Q(device__isnull=True) | Q(device_id=OuterRef("device_id")), enrollment_id=OuterRef("enrollment_id"),
        start__lt=event.end, end__gt=event.start)
    flagged = {pk: facts for pk, *facts in Participation.objects.filter(
        event_id=event.pk, status=ParticipationStatus.RESERVED).filter(
        ~Q(enrollment__status=EnrollmentStatus.ACTIVE) | Q(enrollment__end_date__lte=last)
        | Q(subscription__end_date__lte=last) | Q(device__isnull=False) & ~Q(device__status=DeviceStatus.ACTIVE)
        | Exists(unavailable)).values_list(
        "pk", "enrollment__status", "enrollment__end_date", "enrollment__reason_code", "subscription__end_date",
        "subscription__end_reason", "device__status", "enrollment_id", "device_id")}
    if not flagged:
        return []
    texts: dict[tuple[int, int | None], str] = {}
    for eid, did, u_start, u_end, why in Unavailability.objects.filter(
            enrollment_id__in={f[6] for f in flagged.values()}, start__lt=event.end, end__gt=event.start
    ).order_by("start", "pk").values_list("enrollment_id", "device_id", "start", "end", "reason"):
        texts.setdefault((eid, did), f"customer declared unavailable {u_start.astimezone(tz):%Y-%m-%d %H:%M %Z} to "
                                     f"{u_end.astimezone(tz):%Y-%m-%d %H:%M %Z}" + (f" ({why})" if why else ""))

    def reason(row: ReleasedRow) -> str:
        e_status, e_end, e_code, s_end, s_code, d_status, eid, did = flagged[row.participation_id]
        if e_end is not None and e_end <= last:
            why = f"enrollment ended on {e_end} ({_reason_words(e_code)})"
        elif e_status != EnrollmentStatus.ACTIVE:
            why = f"enrollment is {e_status}"
        elif s_end is not None and s_end <= last:
            why = f"subscription ended on {s_end} ({_reason_words(s_code)})"
        elif did is not None and d_status != DeviceStatus.ACTIVE:
            why = f"device status is {d_status}"
        else:
            why = texts.get((eid, None)) or texts.get((eid, did)) or "customer declared unavailable"
        return f"Released at dispatch: {why}."

    return release_participations(Participation.objects.filter(pk__in=list(flagged)), reason=reason, now=now,
                                  actor=actor)


# ----------------------------------------------------------------------------------------------------- receivers
def on_enrollment_ended(sender, *, enrollment_id, end_date=None, reason_code="", **kwargs) -> None:
    """``enrollments.signals.enrollment_ended`` (sent on commit)."""
    with transaction.atomic():
        release_for_enrollment(enrollment_id=enrollment_id, end_date=end_date, reason_code=reason_code or "",
                               now=clock(), actor=RELEASE_ACTOR)


def on_subscription_ended(sender, *, subscription_id, **kwargs) -> None:
    """``enrollments.signals.subscription_ended`` (sent on commit: device removed or replaced, subscription end)."""
    with transaction.atomic():
        release_for_subscription(subscription_id=subscription_id, now=clock(), actor=RELEASE_ACTOR)


def on_device_status_changed(sender, *, device_id, to_status, **kwargs) -> None:
    """``devices.signals.device_status_changed`` (sent on commit): inactive or retired devices are released."""
    if to_status not in (DeviceStatus.INACTIVE, DeviceStatus.RETIRED):
        return
    with transaction.atomic():
        release_for_device(device_id=device_id, status=to_status, now=clock(), actor=RELEASE_ACTOR)
