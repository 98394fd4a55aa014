"""The write path of customer notifications: planning messages, sending them, the opt-out link, preferences,
templates and policies.

Use cases (``cpm.base.capabilities``): ``notifications.tick`` / ``message.bounce`` / ``message.retry``
(``Cap.MANAGE_EVENTS``); ``participation.opt_out_by_link`` (``Cap.OPT_OUT_ON_BEHALF``: the customer, as a
``CustomerActor`` built from a verified link); ``contact_preference.set`` (``Cap.MAINTAIN_CUSTOMERS`` or
``Cap.MANAGE_ENROLLMENTS``: the CIS, or a CSR on the phone); ``message_template.save`` / ``message_template.delete``
/ ``notification_policy.save`` (``Cap.MANAGE_PROGRAMS``).

Planning is idempotent: every message has a ``key`` (kind, subject, customer, channel) inserted with
``ON CONFLICT DO NOTHING``, so a replayed tick or task creates nothing twice. Sending claims due QUEUED messages
under row locks (``SKIP LOCKED`` on PostgreSQL) in the chunk's transaction, re-checks that the customer should
still get each one (SUPPRESSED with the reason otherwise), renders, hands them to the channel and records SENT (the
provider's id) or FAILED (the error) with one audit entry each, in that same transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Count, Max, Q, Sum

from cpm.base import bulk
from cpm.base.audit import audit_entries, audit_record
from cpm.base.capabilities import Cap, CustomerActor, system_actor, use_case
from cpm.base.errors import ConflictError, DomainError, DomainValidationError, NotFound
from cpm.base.money import format_money, format_quantity
from cpm.base.states import transition
from cpm.base.timeutils import local_date
from cpm.models import AuditEntry
from enrollments.choices import AccountStatus, EnrollmentStatus
from enrollments.models import Customer, Enrollment
from events.choices import EventStatus, OptOutChannel, ParticipationStatus
from events.models import Event, OptOut, Participation
from events.selectors import opt_out_refusals
from events.services import participation_opt_out, release_participations
from programs.choices import ProgramType
from programs.models import Program
from settlement.choices import CustomerSettlementStatus, EventSettlementStatus
from settlement.models import CustomerSettlement, EventSettlement

from . import channels, links, rules, selectors
from .choices import ESSENTIAL_KINDS, EVENT_KINDS, MESSAGE_TRANSITIONS, Channel, ContactChoice, MessageKind
from .choices import MessageStatus as MS
from .models import ContactPreference, Message, MessageTemplate, NotificationPolicy, PlanMark
from .rendering import render

log = logging.getLogger(__name__)
K = MessageKind
SEND_ACTOR = system_actor("celery:notifications.send")
PLAN_BATCH = 10_000  # messages per INSERT ... ON CONFLICT DO NOTHING
LIVE_PARTICIPATION = (ParticipationStatus.RESERVED, ParticipationStatus.DISPATCHED)
NOTICE_EVENT_STATUSES = (EventStatus.SCHEDULED, EventStatus.DISPATCHED, EventStatus.ACTIVE)


def _lookback(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(hours=settings.CPM_NOTIFY_LOOKBACK_HOURS)


def message_key(kind: str, channel: str, *, customer_id: int, event_id: int | None = None,
                enrollment_id: int | None = None, ref: str = "") -> str:
    """The idempotency key: one message per kind, subject (event, enrollment or settlement), customer, channel.
    An event's notice and reminder also carry the window they announce (``ref``, ``window_ref``): an event moved
    to another time gets a notice of the new time."""
    subject = (f"e{event_id}" + (f".w{ref}" if ref else "")) if event_id else f"n{enrollment_id}" if enrollment_id \
        else ref
    return f"{kind}:{subject}:c{customer_id}:{channel}"


@dataclass(frozen=True)
class Planned:
    """One message to plan for a customer (one per channel is created)."""

    kind: str
    customer_id: int
    due_at: dt.datetime
    due_note: str
    event_id: int | None = None
    enrollment_id: int | None = None
    ref: str = ""
    data: dict | None = None


def _plan(program: Program, planned: list[Planned], *, now: dt.datetime) -> int:
    """Insert the messages (one per channel the customer's preference allows and an address exists for),
    ignoring those that exist already (same key). Returns how many rows were offered."""
    if not planned:
        return 0
    contacts = selectors.contacts({p.customer_id for p in planned}, program=program)
    columns = ("key", "kind", "channel", "customer", "event", "enrollment", "subject_ref", "data", "recipient",
               "due_at", "due_note")
    rows = []
    for p in planned:
        chans, email, phone = contacts.get(p.customer_id, ((), "", ""))
        for channel in chans:
            rows.append((message_key(p.kind, channel, customer_id=p.customer_id, event_id=p.event_id,
                                     enrollment_id=p.enrollment_id, ref=p.ref),
                         p.kind, channel, p.customer_id, p.event_id, p.enrollment_id, p.ref, p.data or {},
                         email if channel == Channel.EMAIL else phone, p.due_at, p.due_note[:200]))
    for i in range(0, len(rows), PLAN_BATCH):
        batch = rows[i:i + PLAN_BATCH]
        bulk.insert_missing(Message, varying={c: [r[k] for r in batch] for k, c in enumerate(columns)},
                            constant={"program": program.pk, "status": MS.QUEUED, "created_at": now,
                                      "updated_at": now})
    return len(rows)


def _marked(scope: str, stamp: str) -> bool:
    return PlanMark.objects.filter(scope=scope, stamp=stamp).exists()


def _mark(scope: str, stamp: str, now: dt.datetime) -> None:
    PlanMark.objects.update_or_create(scope=scope, defaults={"stamp": stamp, "at": now})


# ------------------------------------------------------------------------------------------------------- planning
def _live_customers(event: Event) -> list[int]:
    """Customers with a live participation in the event, an active enrollment and an open account."""
    return list(Participation.objects.filter(
        event=event, status__in=LIVE_PARTICIPATION, enrollment__status=EnrollmentStatus.ACTIVE,
        enrollment__account__status=AccountStatus.OPEN).values_list(
        "enrollment__account__customer_id", flat=True).distinct().order_by("enrollment__account__customer_id"))


def window_ref(event: Event) -> str:
    """The event's window as a key part (UTC epoch seconds of start and end)."""
    return f"{int(event.start.timestamp())}-{int(event.end.timestamp())}"


def notice_ref(event: Event) -> str:
    """The key part of the event's notices and reminders as it stands: its window (``window_ref``) while that is
    the window last announced; a window announced before and since left (moved away and back) gets the revision
    too (``<window>.r<revision>``), so the customers told of the other time are told of this one again."""
    base = window_ref(event)
    latest = (Message.objects.filter(event=event, kind=K.EVENT_NOTICE).order_by("-pk")
              .values_list("subject_ref", flat=True).first())
    if latest is None:
        return base
    if latest.split(".r")[0] == base:
        return latest
    if not Message.objects.filter(event=event, kind=K.EVENT_NOTICE, subject_ref=base).exists():
        return base
    return f"{base}.r{event.revision}"


def _latest_notice_refs(event_ids: Iterable[int]) -> dict[int, str]:
    """Per event: the key part of its latest planned notice (the window last announced)."""
    latest = (Message.objects.filter(event_id__in=list(event_ids), kind=K.EVENT_NOTICE).values("event_id")
              .annotate(last=Max("pk")).values_list("last", flat=True))
    return dict(Message.objects.filter(pk__in=list(latest)).values_list("event_id", "subject_ref"))


def _window_data(event: Event) -> dict[str, str]:
    return {"start": event.start.isoformat(), "end": event.end.isoformat()}


def _notices_scope(event: Event) -> str:
    return f"event:{event.pk}:notices"


def _notices_stamp(event: Event) -> str:
    """The event's reservation as the notices were planned for it (``reserved_at`` and revision)."""
    return f"{event.reserved_at.isoformat() if event.reserved_at else ''}/r{event.revision}"


def event_notices_plan(*, event: Event, now: dt.datetime) -> int:
    """Plan the event notice and the reminder of every customer taking part in a reserved event (times from
    ``rules.notice_due`` / ``rules.reminder_due`` in the program's zone). Skipped while the event's reservation is
    unchanged since the last plan (``PlanMark``). Returns the rows offered."""
    scope, stamp = _notices_scope(event), _notices_stamp(event)
    if _marked(scope, stamp):
        return 0
    n = _plan_notices(event, _live_customers(event), now=now)
    _mark(scope, stamp, now)
    return n


def _plan_notices(event: Event, customer_ids: Iterable[int], *, now: dt.datetime,
                  skip: set[tuple[str, int]] = frozenset()) -> int:
    """Plan the notice and reminder of ``event`` for ``customer_ids`` (but not the ``(kind, customer)`` pairs in
    ``skip``)."""
    program = event.program
    tz, policy = selectors.zone_of(program), selectors.policy_of(program)
    min_notice = selectors.min_notice_minutes(program, local_date(event.start, tz))
    notice_at, notice_note = rules.notice_due(start=event.start, notification_at=event.notification_at,
                                              min_notice_minutes=min_notice, policy=policy, tz=tz, now=now)
    reminder = rules.reminder_due(start=event.start, policy=policy, tz=tz, now=now)
    planned = []
    # Keyed by the window: when the event is moved (a new revision), customers get a notice (and reminder) of the
    # new time; the queued ones of the old time are not sent (``_suppression``).
    ref, data = notice_ref(event), _window_data(event)
    for cid in customer_ids:
        if (K.EVENT_NOTICE, cid) not in skip:
            planned.append(Planned(K.EVENT_NOTICE, cid, notice_at, notice_note, event_id=event.pk, ref=ref,
                                   data=data))
        if reminder is not None and reminder[0] > notice_at and (K.REMINDER, cid) not in skip:
            planned.append(Planned(K.REMINDER, cid, reminder[0], reminder[1], event_id=event.pk, ref=ref,
                                   data=data))
    return _plan(program, planned, now=now)


def customer_notices_replan(*, customer_id: int, now: dt.datetime) -> int:
    """Plan again, for one customer whose contact preference changed, the notices and reminders of the events
    already planned (their ``PlanMark`` is the reservation's): on the channels the customer wants now (the queued
    ones on a channel no longer wanted are suppressed at sending). Not a notice or reminder the customer was already
    sent (or is being sent) on another channel. Returns the rows offered."""
    events = (Event.objects.filter(status__in=NOTICE_EVENT_STATUSES, reserved_at__isnull=False, end__gt=now,
                                   participations__status__in=LIVE_PARTICIPATION,
                                   participations__enrollment__status=EnrollmentStatus.ACTIVE,
                                   participations__enrollment__account__customer_id=customer_id)
              .select_related("program").distinct().order_by("start", "pk"))
    n = 0
    for event in events:
        if not _marked(_notices_scope(event), _notices_stamp(event)):
            continue  # not planned yet: the tick plans it with the preference as it is now
        ref = notice_ref(event)
        skip = {(kind, customer_id) for kind in Message.objects.filter(
            event=event, customer_id=customer_id, subject_ref=ref, status__in=(MS.SENT, MS.SENDING),
            kind__in=(K.EVENT_NOTICE, K.REMINDER)).values_list("kind", flat=True)}
        n += _plan_notices(event, [customer_id], now=now, skip=skip)
    return n


def cancellation_deadline(event: Event, policy: rules.Policy) -> dt.datetime:
    """The latest a cancellation decided in quiet hours may wait: the urgent lead before the start, as a notice (it
    must reach the customer before the event, not at its start)."""
    return event.start - dt.timedelta(minutes=policy.urgent_lead_minutes)


def event_cancellations_plan(*, event: Event, now: dt.datetime) -> int:
    """Tell the customers who were sent a notice of an event that it is cancelled (before its start: a
    cancellation due in quiet hours waits for the morning only if that leaves the urgent lead before the start,
    else it goes at the start minus the urgent lead, or at once)."""
    scope = f"event:{event.pk}:cancellation"
    # Notices still being handed (SENDING: claimed before the cancellation, or in doubt after a killed sender) may
    # end SENT after this step: it runs again (no mark) while one is, and again when more have been sent since.
    notices = Message.objects.filter(event=event, kind=K.EVENT_NOTICE)
    if notices.filter(status=MS.SENDING).exists():
        stamp = None
    else:
        stamp = f"sent:{notices.filter(status=MS.SENT).count()}"
        if _marked(scope, stamp):
            return 0
    program = event.program
    tz, policy = selectors.zone_of(program), selectors.policy_of(program)
    due, note = rules.prompt_due(now=now, policy=policy, tz=tz, deadline=cancellation_deadline(event, policy))
    told = notices.filter(status=MS.SENT).values_list("customer_id", flat=True).distinct()
    n = _plan(program, [Planned(K.CANCELLATION, cid, due, note, event_id=event.pk) for cid in told], now=now)
    if stamp is not None:
        _mark(scope, stamp, now)
    return n


def opt_out_confirmations_plan(*, now: dt.datetime) -> int:
    """Confirm every opt-out recorded since the lookback (any channel) to a customer who was sent the event's
    notice: one confirmation per customer and event."""
    rows = (OptOut.objects.filter(at__gte=_lookback(now), at__lte=now)
            .values_list("participation__event_id", "participation__enrollment__account__customer_id").distinct())
    by_event: dict[int, set[int]] = defaultdict(set)
    for event_id, cid in rows:
        by_event[event_id].add(cid)
    n = 0
    for event in Event.objects.filter(pk__in=by_event).select_related("program"):
        told = set(Message.objects.filter(event=event, kind=K.EVENT_NOTICE, status=MS.SENT,
                                          customer_id__in=by_event[event.pk]).values_list("customer_id", flat=True))
        tz, policy = selectors.zone_of(event.program), selectors.policy_of(event.program)
        due, note = rules.prompt_due(now=now, policy=policy, tz=tz)
        n += _plan(event.program, [Planned(K.OPT_OUT_CONFIRMATION, cid, due, note, event_id=event.pk)
                                   for cid in sorted(told)], now=now)
    return n


_DECISIONS = {
    EnrollmentStatus.ACTIVE: (K.ENROLLMENT_APPROVED, (EnrollmentStatus.REQUESTED, EnrollmentStatus.PENDING_APPROVAL)),
    EnrollmentStatus.REJECTED: (K.ENROLLMENT_REFUSED, None),
    EnrollmentStatus.UNENROLLED: (K.ENROLLMENT_ENDED, None),
}


def enrollment_decisions_plan(*, now: dt.datetime) -> int:
    """Tell customers their enrollment was approved (from requested or pending approval), refused or ended, for
    every such change in the audit trail since the lookback; not when the account is closed."""
    entries = AuditEntry.objects.filter(object_type="enrollments.enrollment", at__gte=_lookback(now), at__lte=now,
                                        to_status__in=list(_DECISIONS)).values_list("object_id", "from_status",
                                                                                    "to_status")
    # Every decision of the lookback, not only one per enrollment: an enrollment approved and ended within it gets
    # both its welcome and its ended message (each kind once per enrollment).
    wanted: dict[int, set[str]] = defaultdict(set)
    for object_id, frm, to in entries:
        kind, froms = _DECISIONS[to]
        if froms is None or frm in froms:
            wanted[int(object_id)].add(kind)
    # Decisions already told (their message exists) are not read again.
    for enrollment_id, kind in Message.objects.filter(enrollment_id__in=list(wanted)).values_list("enrollment_id",
                                                                                                  "kind"):
        wanted[enrollment_id].discard(kind)
    wanted = {pk: kinds for pk, kinds in wanted.items() if kinds}
    by_program: dict[int, list[Planned]] = defaultdict(list)
    programs: dict[int, Program] = {}
    for e in Enrollment.objects.filter(pk__in=wanted).select_related("program", "account"):
        if e.account.status == AccountStatus.CLOSED:
            continue
        programs[e.program_id] = e.program
        tz, policy = selectors.zone_of(e.program), selectors.policy_of(e.program)
        due, note = rules.prompt_due(now=now, policy=policy, tz=tz)
        data = {"effective_date": str(e.effective_date or ""), "end_date": str(e.end_date or ""),
                "reason": e.reason_text or e.get_reason_code_display() or ""}
        by_program[e.program_id] += [Planned(kind, e.account.customer_id, due, note, enrollment_id=e.pk, data=data)
                                     for kind in sorted(wanted[e.pk])]
    return sum(_plan(programs[pid], planned, now=now) for pid, planned in by_program.items())


def event_summaries_plan(*, now: dt.datetime) -> int:
    """After an event's settlements are approved: each customer's kWh avoided and credit for the event (sums over
    the customer's participations that took part: none for a customer who opted out), one summary per customer and
    event."""
    approved = EventSettlement.objects.filter(status=EventSettlementStatus.APPROVED, approved_at__gte=_lookback(now),
                                              approved_at__lte=now)
    # Events whose approved settlements changed since the last plan (``PlanMark``): a tick re-reads nothing else.
    marks = {}
    for r in approved.values("event_id").annotate(n=Count("pk"), last=Max("approved_at")).order_by("event_id"):
        stamp = f"{r['n']}/{r['last'].isoformat()}"
        if not _marked(f"event:{r['event_id']}:summaries", stamp):
            marks[r["event_id"]] = stamp
    if not marks:
        return 0
    # Not to a customer who opted out of the event (settled at $0): the summary thanks them "for taking part".
    rows = (approved.filter(event_id__in=list(marks), opted_out=False)
            .values("event_id", "program_id", "account__customer_id")
            .annotate(kwh=Sum("kwh_avoided"), credit=Sum("posted_amount")).order_by("event_id"))
    by_program: dict[int, list[Planned]] = defaultdict(list)
    for r in rows:
        by_program[r["program_id"]].append(Planned(
            K.EVENT_SUMMARY, r["account__customer_id"], now, "", event_id=r["event_id"],
            data={"kwh_avoided": str(r["kwh"] or 0), "credit": str(r["credit"] or 0)}))
    n = 0
    for program in Program.objects.filter(pk__in=by_program):
        due, note = rules.prompt_due(now=now, policy=selectors.policy_of(program), tz=selectors.zone_of(program))
        n += _plan(program, [Planned(p.kind, p.customer_id, due, note, event_id=p.event_id, data=p.data)
                             for p in by_program[program.pk]], now=now)
    for event_id, stamp in marks.items():
        _mark(f"event:{event_id}:summaries", stamp, now)
    return n


def season_statements_plan(*, now: dt.datetime) -> int:
    """A statement for each customer settlement of a season approved (or exported) since the lookback."""
    rows = (CustomerSettlement.objects.filter(
        status__in=[CustomerSettlementStatus.APPROVED, CustomerSettlementStatus.EXPORTED], season__isnull=False,
        approved_at__gte=_lookback(now), approved_at__lte=now).select_related("season", "account"))
    by_program: dict[int, list] = defaultdict(list)
    for cs in rows:
        by_program[cs.program_id].append(cs)
    n = 0
    for program in Program.objects.filter(pk__in=by_program):
        due, note = rules.prompt_due(now=now, policy=selectors.policy_of(program), tz=selectors.zone_of(program))
        n += _plan(program, [Planned(
            K.SEASON_STATEMENT, cs.account.customer_id, due, note, ref=f"cs{cs.pk}",
            data={"season_name": cs.season.name, "total": str(cs.total_amount),
                  "period": f"{cs.period_start} to {cs.period_end - dt.timedelta(days=1)}"})
            for cs in by_program[program.pk]], now=now)
    return n


def ptr_unnotified_release(*, event: Event, now: dt.datetime, actor: Any) -> int:
    """For a peak-time rebate (no device: the notice is the dispatch), release the participations of customers who
    were not sent the event notice, once every notice of the event has been handled (none still QUEUED or SENDING:
    being handed, or in doubt after a killed sender): the customer was never asked, so the event does not count
    for them and settlement does not settle it. Ledger rows RELEASED with the reason, audited
    (``events.services.release_participations``). Returns how many.

    Only once the event's notices were planned for its reservation as it stands (the notices' ``PlanMark``): a
    tick at notification time while the reservation is still under way (no participation visible yet, or reserved
    between this tick's planning and this step) finds nothing QUEUED, and marking the event done then would leave
    the customers the notice never reached settled on it."""
    if event.reserved_at is None or not _marked(_notices_scope(event), _notices_stamp(event)):
        return 0
    scope = f"event:{event.pk}:ptr-unnotified"
    # A notice SENDING (claimed, being handed to the channel, or in doubt after a killed sender) is not handled yet.
    if _marked(scope, "done") or Message.objects.filter(event=event, kind=K.EVENT_NOTICE,
                                                        status__in=(MS.QUEUED, MS.SENDING)).exists():
        return 0
    told = Message.objects.filter(event=event, kind=K.EVENT_NOTICE, status=MS.SENT).values("customer_id")
    with transaction.atomic():
        released = release_participations(
            Participation.objects.filter(event=event).exclude(enrollment__account__customer_id__in=told),
            reason="not notified: a peak-time rebate's event notice is its dispatch (no e-mail or SMS was sent to "
                   "the customer)", now=now, actor=actor)
        _mark(scope, "done", now)
    return len(released)


@use_case("notifications.tick", Cap.MANAGE_EVENTS)
def notifications_tick(*, now: dt.datetime, actor: Any) -> dict[str, int]:
    """Plan what became due (UTC, every minute by beat): notices and reminders of reserved events, cancellations,
    opt-out confirmations, enrollment decisions, event summaries and season statements; for a peak-time rebate,
    the participations of customers its notice did not reach are released (``ptr_unnotified_release``).
    Idempotent (message keys; the tick replayed plans nothing twice). Returns the rows offered per step; the
    sending is ``messages_due`` chunked by ``tasks.tick``."""
    counts = {"notices": 0, "cancellations": 0}
    for event in (Event.objects.filter(status__in=NOTICE_EVENT_STATUSES, reserved_at__isnull=False, end__gt=now)
                  .select_related("program").order_by("start", "pk")):
        counts["notices"] += event_notices_plan(event=event, now=now)
    sent_notice = Message.objects.filter(kind=K.EVENT_NOTICE, status=MS.SENT).values("event_id")
    for event in (Event.objects.filter(status=EventStatus.CANCELLED, end__gt=now, pk__in=sent_notice)
                  .select_related("program")):
        counts["cancellations"] += event_cancellations_plan(event=event, now=now)
    counts["ptr_unnotified_released"] = sum(
        ptr_unnotified_release(event=event, now=now, actor=actor) for event in Event.objects.filter(
            program__program_type=ProgramType.PEAK_TIME_REBATE, status__in=NOTICE_EVENT_STATUSES,
            notification_at__lte=now, end__gt=now).order_by("pk"))
    counts["opt_out_confirmations"] = opt_out_confirmations_plan(now=now)
    counts["enrollment_decisions"] = enrollment_decisions_plan(now=now)
    counts["event_summaries"] = event_summaries_plan(now=now)
    counts["season_statements"] = season_statements_plan(now=now)
    return counts


def messages_due(*, now: dt.datetime, recover_before: dt.datetime | None = None) -> list[int]:
    """Ids of QUEUED messages due at ``now``, and of SENDING ones claimed before ``recover_before`` (in doubt: their
    sender stopped), ascending (the sender splits them into chunks)."""
    return list(Message.objects.filter(_due(now, recover_before)).order_by("pk").values_list("pk", flat=True))


def _due(now: dt.datetime, recover_before: dt.datetime | None) -> Q:
    """Messages a sender takes at ``now``: QUEUED and due, and SENDING ones claimed before ``recover_before``."""
    due = Q(status=MS.QUEUED, due_at__lte=now)
    if recover_before is not None:
        due |= Q(status=MS.SENDING, updated_at__lt=recover_before)
    return due


# -------------------------------------------------------------------------------------------------------- sending
def _local_text(instant: dt.datetime, tz: ZoneInfo) -> str:
    return instant.astimezone(tz).strftime("%a %b %-d, %Y %-I:%M %p %Z").replace(" 0", " ")


def day_word(start: dt.datetime, *, now: dt.datetime, tz: ZoneInfo) -> str:
    """The event's day as the customer reads it when the message goes at ``now``, in the program's zone: "today",
    "tomorrow", else "on" (followed by the window, which names the date). A reminder of a night event goes the
    evening before (quiet hours, the urgent lead): it said "today" for tomorrow's event."""
    days = (local_date(start, tz) - local_date(now, tz)).days
    return {0: "today", 1: "tomorrow"}.get(days, "on")


def window_text(event: Event, tz: ZoneInfo) -> str:
    """``Tue Jul 14, 2026 4:00 PM to 7:00 PM PDT`` in the program's zone (the zone's abbreviation at each end)."""
    start, end = event.start.astimezone(tz), event.end.astimezone(tz)
    end_fmt = "%-I:%M %p %Z" if start.date() == end.date() else "%a %b %-d %-I:%M %p %Z"
    return f"{start:%a %b %-d, %Y %-I:%M %p}" + (f" {start:%Z}" if start.tzname() != end.tzname() else "") \
        + f" to {end.strftime(end_fmt)}"


class _Ctx:
    """Per-chunk caches: programs' wordings, zones, policies, incentive texts."""

    def __init__(self) -> None:
        self.wordings: dict[int, dict] = {}
        self.zones: dict[int, ZoneInfo] = {}
        self.policies: dict[int, rules.Policy] = {}
        self.incentives: dict[int, tuple[str, str]] = {}
        self.programs: dict[int, Program] = {}
        self.opt_out_until: dict[int, dt.datetime] = {}

    def opt_out_closes(self, event: Event) -> dt.datetime:
        """When opt-out requests for ``event`` close: its program's cut-off before the start, else its end."""
        if event.pk not in self.opt_out_until:
            tz = self.zones[event.program_id]
            minutes = selectors.opt_out_cutoff_minutes(self.programs[event.program_id], local_date(event.start, tz))
            self.opt_out_until[event.pk] = (event.end if minutes is None
                                            else min(event.end, event.start - dt.timedelta(minutes=minutes)))
        return self.opt_out_until[event.pk]

    def program(self, program: Program) -> None:
        if program.pk not in self.wordings:
            self.programs[program.pk] = program
            self.wordings[program.pk] = selectors.wordings_of(program)
            self.zones[program.pk] = selectors.zone_of(program)
            self.policies[program.pk] = selectors.policy_of(program)
            self.incentives[program.pk] = selectors.incentive_text(program)


def _context(m: Message, c: _Ctx, *, now: dt.datetime) -> dict[str, Any]:
    program, tz = m.program, c.zones[m.program_id]
    incentive, incentive_short = c.incentives[m.program_id]
    d = m.data or {}
    ctx: dict[str, Any] = {
        "customer_name": f"{m.customer.first_name} {m.customer.last_name}".strip() or "customer",
        "program_name": program.name, "incentive": incentive, "incentive_short": incentive_short,
        "effective_date": d.get("effective_date", ""), "end_date": d.get("end_date", ""),
        "reason": d.get("reason", ""), "season_name": d.get("season_name", ""), "period": d.get("period", ""),
        "season_total": format_money(Decimal(d["total"])) if "total" in d else "",
        "kwh_avoided": format_quantity(Decimal(d["kwh_avoided"]), "kWh") if "kwh_avoided" in d else "",
        "credit": format_money(Decimal(d["credit"])) if "credit" in d else "",
    }
    if m.event_id:
        ctx["event_name"] = m.event.name
        ctx["event_window"] = window_text(m.event, tz)
        ctx["event_date"] = f"{m.event.start.astimezone(tz):%a %b %-d}"
        ctx["event_day_word"] = day_word(m.event.start, now=now, tz=tz)
        if m.kind in (K.EVENT_NOTICE, K.REMINDER):
            closes = c.opt_out_closes(m.event)
            if closes <= now:
                # Past the program's cut-off: no link (it would be refused), and the message says opt-outs closed.
                ctx["opt_out_url"], ctx["opt_out_expires"] = "", ""
                ctx["opt_out_closed"] = _local_text(closes, tz)
            else:
                token = links.make_token(m.pk, now=now)
                # The link works until it expires, and opting out until the cut-off: the earlier is promised.
                expires = min(now + dt.timedelta(hours=c.policies[m.program_id].opt_out_link_hours), closes)
                ctx["opt_out_url"] = links.opt_out_url(token)
                ctx["opt_out_expires"] = _local_text(expires, tz)
    return ctx


def _suppression(m: Message, *, now: dt.datetime, live: set[tuple[int, int]], active: set[tuple[int, int]],
                 open_customers: set[int], ended: set[int], latest_refs: dict[int, str],
                 week_counts: dict[int, int], c: _Ctx,
                 contact: tuple[tuple[str, ...], str, str] | None = None) -> str:
    """Why the message must not go now (words), or empty. ``contact`` is the customer's current ``(channels,
    e-mail, phone)`` (``selectors.contacts``): a channel the customer no longer wants is refused, and the message
    goes to the address on file now (``m.recipient`` is updated)."""
    if m.customer_id not in open_customers:
        return "the customer's accounts are closed"
    if contact is not None:
        chans, email, phone = contact
        if m.channel not in chans:
            return (f"the customer asked for no messages by {m.get_channel_display()} (contact preference changed "
                    "after it was planned)")
        m.recipient = email if m.channel == Channel.EMAIL else phone
    if m.kind in EVENT_KINDS and (m.customer_id, m.program_id) not in active:
        return "the customer is no longer enrolled in the program"
    if m.kind == K.ENROLLMENT_APPROVED and m.enrollment_id in ended:
        return "the enrollment ended before its welcome was sent (the customer is told it ended)"
    if m.kind in (K.EVENT_NOTICE, K.REMINDER):
        if m.event.status not in NOTICE_EVENT_STATUSES or m.event.end <= now:
            return f"the event is {m.event.get_status_display().lower()}"
        if (m.event_id, m.customer_id) not in live:
            return "the customer no longer takes part in the event (opted out or released)"
        planned_for = (m.data or {}).get("start"), (m.data or {}).get("end")
        if planned_for[0] and planned_for != (m.event.start.isoformat(), m.event.end.isoformat()):
            return "the event was moved to another time after this was planned (a notice of the new time is planned)"
        announced = latest_refs.get(m.event_id)
        if m.subject_ref and announced and announced != m.subject_ref:
            return ("the event was moved away and back to this time after this was planned (a notice of the time "
                    "is planned again)")
    if m.kind == K.REMINDER and m.event.start <= now:
        return "the event has started"
    if not m.recipient:
        return f"no {m.get_channel_display()} address on file"
    cap = c.policies[m.program_id].weekly_cap
    if m.kind not in ESSENTIAL_KINDS and cap is not None and week_counts.get(m.customer_id, 0) >= cap:
        return f"weekly cap of {cap} messages reached"
    return ""


def messages_send(*, ids: Iterable[int] | None = None, first_id: int | None = None, last_id: int | None = None,
                  now: dt.datetime, actor: Any = SEND_ACTOR, recover_before: dt.datetime | None = None
                  ) -> dict[str, int]:
    """Send the due QUEUED messages among ``ids``, or with ids in ``[first_id, last_id]`` (one chunk): each is
    SUPPRESSED (the reason), SENT (provider id, rendered text) or FAILED (the error), audited. Messages already
    handled, locked by another sender or not yet due are left alone. Returns counts by outcome.

    At most one batch of ``CPM_NOTIFY_SEND_BATCH`` messages is ever in the hands of the channel without its outcome
    recorded: each batch is claimed (QUEUED -> SENDING, rendered) in a short transaction of its own, handed to the
    channel, and its outcome recorded in a second one. A sender killed with ``kill -9`` therefore leaves at most one
    batch SENDING ("in doubt": handed or not, nobody knows); everything before it is SENT and everything after it
    still QUEUED, so the chunk run again (the job sweeper, or the broker's redelivery) sends only what was never
    handed. In-doubt messages are handed again, under the same key (the e-mail's Message-ID and the SMS provider's
    Idempotency-Key, which the outbox backends and HTTP providers de-duplicate), only by a sender started with
    ``recover_before`` later than their claim (``updated_at``): the next tick's job, once the stall time has passed
    (a live sender finishes a batch in seconds). Called inside a transaction (the demo), the batches are savepoints.
    """
    scope = {"pk__in": list(ids)} if ids is not None else {"pk__gte": first_id, "pk__lte": last_id}
    counts = {"sent": 0, "failed": 0, "suppressed": 0}
    size = max(1, settings.CPM_NOTIFY_SEND_BATCH)
    while True:
        to_send, suppressed, broken = _claim_batch(scope=scope, now=now, actor=actor, size=size,
                                                   recover_before=recover_before)
        if not to_send and not suppressed and not broken:
            return counts
        counts["suppressed"] += suppressed
        counts["failed"] += broken
        if to_send:
            results = channels.send([channels.Outgoing(m.key, m.channel, m.recipient, m.subject, m.body)
                                     for m in to_send])
            for outcome in _record_outcomes(to_send, results, now=now, actor=actor):
                counts[outcome] += 1


def _claim_batch(*, scope: dict, now: dt.datetime, actor: Any, size: int, recover_before: dt.datetime | None
                 ) -> tuple[list[Message], int]:
    """Claim up to ``size`` due messages of ``scope`` (row locks, skipping those another sender holds): the
    suppressed ones end SUPPRESSED (audited), those whose program template cannot be rendered FAILED with the reason
    (audited), the others are rendered and marked SENDING (one attempt more), all committed before anything is
    handed to a channel. In-doubt SENDING messages claimed before ``recover_before`` come back as they were
    rendered. Returns ``(to_send, number suppressed, number failed)``."""
    with transaction.atomic():
        msgs = list(Message.objects.filter(_due(now, recover_before), **scope)
                    .select_related("customer", "program", "event").order_by("pk")
                    .select_for_update(skip_locked=True, of=("self",))[:size])
        if not msgs:
            return [], 0, 0
        fresh = [m for m in msgs if m.status == MS.QUEUED]
        in_doubt = [m for m in msgs if m.status == MS.SENDING]
        to_send, suppressed, broken = list(in_doubt), [], []
        if fresh:
            c = _Ctx()
            for m in fresh:
                c.program(m.program)
            customers = {m.customer_id for m in fresh}
            event_ids = {m.event_id for m in fresh if m.event_id}
            live = set(Participation.objects.filter(
                event_id__in=event_ids, status__in=LIVE_PARTICIPATION,
                enrollment__account__customer_id__in=customers).values_list("event_id",
                                                                            "enrollment__account__customer_id"))
            active = set(Enrollment.objects.filter(account__customer_id__in=customers,
                                                   status=EnrollmentStatus.ACTIVE, account__status=AccountStatus.OPEN)
                         .values_list("account__customer_id", "program_id"))
            open_customers = set(Customer.objects.filter(pk__in=customers, accounts__status=AccountStatus.OPEN)
                                 .values_list("pk", flat=True))
            latest_refs = _latest_notice_refs({m.event_id for m in fresh if m.kind in (K.EVENT_NOTICE, K.REMINDER)})
            # Welcomes of enrollments that ended (or were cancelled) before the welcome went.
            ended = set(Enrollment.objects.filter(
                pk__in={m.enrollment_id for m in fresh if m.kind == K.ENROLLMENT_APPROVED}).exclude(
                status__in=(EnrollmentStatus.ACTIVE, EnrollmentStatus.SUSPENDED)).values_list("pk", flat=True))
            # The customer's contact preference and addresses as they are now (they may have changed since the
            # message was planned: "no messages", another channel, a new address).
            contacts: dict[tuple[int, int], tuple[tuple[str, ...], str, str]] = {}
            for pid in {m.program_id for m in fresh}:
                for cid, contact in selectors.contacts({m.customer_id for m in fresh if m.program_id == pid},
                                                       program=c.programs[pid]).items():
                    contacts[(pid, cid)] = contact
            # Messages sent (or being sent) this local week per customer (the cap counts every kind; the week of
            # the program's zone).
            week_counts: dict[int, int] = defaultdict(int)
            for pid in {m.program_id for m in fresh}:
                start, end = rules.week_bounds(now, tz=c.zones[pid])
                for cid, n in (Message.objects.filter(customer_id__in=customers, status__in=(MS.SENT, MS.SENDING),
                                                      sent_at__gte=start, sent_at__lt=end)
                               .values_list("customer_id").annotate(n=Count("pk"))):
                    week_counts[cid] = max(week_counts[cid], n)
            for m in fresh:
                why = _suppression(m, now=now, live=live, active=active, open_customers=open_customers,
                                   ended=ended, latest_refs=latest_refs, week_counts=week_counts, c=c,
                                   contact=contacts.get((m.program_id, m.customer_id)))
                if why:
                    m.status, m.detail, m.updated_at = MS.SUPPRESSED, why[:500], now
                    suppressed.append(m)
                    continue
                wording = c.wordings[m.program_id][m.kind]
                ctx = _context(m, c, now=now)
                try:
                    m.subject = render(wording.subject, ctx)[:200] if m.channel == Channel.EMAIL else ""
                    m.body = render(wording.body if m.channel == Channel.EMAIL else wording.sms_body, ctx)
                except Exception as exc:  # noqa: BLE001 - a broken template fails its own messages, not the batch
                    m.status, m.updated_at = MS.FAILED, now
                    m.detail = (f"The program's {m.get_kind_display().lower()} template could not be rendered "
                                f"({type(exc).__name__}: {exc}); fix it in the admin and retry.")[:500]
                    broken.append(m)
                    continue
                # ``sent_at`` is when it was handed to the channel (the weekly cap counts it from the claim on).
                m.status, m.sent_at, m.updated_at = MS.SENDING, now, now
                m.attempts += 1
                to_send.append(m)
                week_counts[m.customer_id] += 1
        fields = ("status", "subject", "body", "recipient", "sent_at", "detail", "attempts", "updated_at")
        claimed = suppressed + broken + [m for m in to_send if m.status == MS.SENDING and m not in in_doubt]
        if claimed:
            bulk.update_rows(Message, {m.pk: {f: getattr(m, f) for f in fields} for m in claimed}, fields)
        if suppressed or broken:
            bulk.insert_objects(AuditEntry, audit_entries(
                model=Message, now=now, actor=actor,
                rows=[(m.pk, MS.QUEUED, m.status, m.detail) for m in suppressed + broken]))
    return to_send, len(suppressed), len(broken)


def _record_outcomes(to_send: list[Message], results: list, *, now: dt.datetime, actor: Any) -> list[str]:
    """Record what the channel answered for a claimed batch (SENDING -> SENT with the provider's id, or FAILED
    with the reason), audited as the message's move from QUEUED; one short transaction. Returns the outcomes."""
    for m, r in zip(to_send, results, strict=True):
        m.updated_at = now
        if r.ok:
            m.status, m.provider_id, m.detail = MS.SENT, r.provider_id, ""
        else:
            m.status, m.sent_at, m.detail = MS.FAILED, None, r.error[:500]
    fields = ("status", "sent_at", "provider_id", "detail", "updated_at")
    with transaction.atomic():
        bulk.update_rows(Message, {m.pk: {f: getattr(m, f) for f in fields} for m in to_send}, fields)
        bulk.insert_objects(AuditEntry, audit_entries(
            model=Message, now=now, actor=actor,
            rows=[(m.pk, MS.QUEUED, m.status, m.detail or f"{m.get_kind_display()} via {m.channel}")
                  for m in to_send]))
    return [m.status for m in to_send]


@use_case("message.bounce", Cap.MANAGE_EVENTS)
def message_bounce(*, message: Message, reason: str, now: dt.datetime, actor: Any) -> Message:
    """Record that a SENT message bounced (the provider's bounce webhook or an operator), with the reason."""
    with transaction.atomic():
        m = Message.objects.select_for_update().get(pk=message.pk)
        return transition(obj=m, to=MS.BOUNCED, allowed=MESSAGE_TRANSITIONS, now=now, actor=actor, reason=reason,
                          extra_updates={"detail": (reason or "bounced")[:500]})


@use_case("message.retry", Cap.MANAGE_EVENTS)
def message_retry(*, message: Message, now: dt.datetime, actor: Any) -> Message:
    """Queue a FAILED message again, due now (the next tick sends it), or, retried in the program's quiet hours,
    at the start of the morning window (an event's notice or reminder no later than the event allows, as planned)."""
    with transaction.atomic():
        m = Message.objects.select_for_update(of=("self",)).select_related("program", "event").get(pk=message.pk)
        tz, policy = selectors.zone_of(m.program), selectors.policy_of(m.program)
        deadline = None
        if m.event_id and m.kind in (K.EVENT_NOTICE, K.REMINDER, K.CANCELLATION):
            deadline = m.event.start - dt.timedelta(minutes=policy.urgent_lead_minutes)
        due, note = rules.prompt_due(now=now, policy=policy, tz=tz, deadline=deadline)
        return transition(obj=m, to=MS.QUEUED, allowed=MESSAGE_TRANSITIONS, now=now, actor=actor,
                          reason="retry", extra_updates={"due_at": due, "due_note": f"retried: {note}"[:200]})


# ------------------------------------------------------------------------------------------------ opt-out by link
class LinkRefused(DomainError):
    """The opt-out link cannot be used; ``code`` says why (invalid, expired, used, cancelled, cutoff, ended) and
    the message says it to the customer."""


def link_message(*, token: str, now: dt.datetime) -> Message:
    """The notice a link belongs to, once its signature and age are verified (``LinkRefused`` otherwise: code
    ``invalid`` for a tampered or unknown link, ``expired`` past the program's ``opt_out_link_hours``)."""
    try:
        message_id = int(signing.Signer.unsign(signing.TimestampSigner(salt=links.SALT), token).rsplit(":", 1)[0])
    except (signing.BadSignature, ValueError):
        raise LinkRefused("This link is not valid (it may have been changed or cut short). Please call us.",
                          code="invalid") from None
    m = (Message.objects.select_related("program", "event", "customer")
         .filter(pk=message_id, kind__in=[K.EVENT_NOTICE, K.REMINDER]).first())
    if m is None:
        raise LinkRefused("This link is not valid. Please call us.", code="invalid")
    hours = selectors.policy_of(m.program).opt_out_link_hours
    try:
        links.read_token(token, max_age_hours=hours, now=now)
    except signing.SignatureExpired:
        raise LinkRefused(f"This link has expired (links work for {hours} hours after the message). Please call "
                          "us to opt out.", code="expired") from None
    return m


@dataclass(frozen=True)
class LinkOutcome:
    """What a link's use did: ``opted_out`` participations; ``already`` when the link had been used before;
    ``opted_out_before`` when the customer had already opted out of the event another way (nothing more to do);
    ``confirmation_planned`` when a confirmation message is planned (not for a customer who wants no messages)."""

    message: Message
    opted_out: int
    already: bool
    opted_out_before: bool = False
    confirmation_planned: bool = False


_NOT_TAKING_PART = ("You are no longer taking part in this event (your place in it was released), so there is "
                    "nothing to opt out of.")


def _link_participations(m: Message) -> list[Participation]:
    """The customer's participations in the message's event that an opt-out concerns (live or opted out)."""
    return list(Participation.objects.filter(event_id=m.event_id, enrollment__account__customer_id=m.customer_id,
                                             status__in=LIVE_PARTICIPATION + (ParticipationStatus.OPTED_OUT,))
                .select_related("event__program").order_by("pk"))


def _link_refusal(event: Event, parts: list[Participation], *, now: dt.datetime) -> None:
    """Refuse (``LinkRefused``) an opt-out by link of ``event`` at ``now``: cancelled, over, the customer no longer
    taking part, or a live participation the events service would refuse (cut-off, allowance: the same check)."""
    if event.status == EventStatus.CANCELLED:
        raise LinkRefused("This event was cancelled: there is nothing to opt out of.", code="cancelled")
    if now >= event.end:
        raise LinkRefused("This event is over.", code="ended")
    if not parts:
        raise LinkRefused(_NOT_TAKING_PART, code="not_taking_part")
    live = [p for p in parts if p.status in LIVE_PARTICIPATION]
    for refusal in opt_out_refusals(live, at=now).values() if live else ():
        if refusal is not None:
            raise LinkRefused(refusal.message, code=refusal.code)


def link_state(*, message: Message, now: dt.datetime) -> str:
    """What the link's page offers at ``now`` before anything is posted (read only): ``used`` (the link opted out
    already), ``opted_out`` (the customer already opted out of the event another way), or ``offer`` (the button).
    Refused as the use of the link would be (``LinkRefused``: cancelled, ended, not taking part, past the program's
    cut-off, allowance used), so the customer is told why on opening it, not after pressing the button."""
    if message.link_used_at is not None:
        return "used"
    parts = _link_participations(message)
    _link_refusal(message.event, parts, now=now)
    return "offer" if any(p.status in LIVE_PARTICIPATION for p in parts) else "opted_out"


@use_case("participation.opt_out_by_link", Cap.OPT_OUT_ON_BEHALF)
def participation_opt_out_by_link(*, message: Message, now: dt.datetime, actor: Any) -> LinkOutcome:
    """Opt the customer out of the event of ``message`` (an event notice or reminder), through the events opt-out
    service (channel ``notice_link``, the same cut-off and allowance checks as every request), for each of the
    customer's live participations in it. ``actor`` must be the message's customer (``CustomerActor``: the view
    builds it from a verified link). Used once: a second use returns ``already`` and changes nothing. Refusals are
    ``LinkRefused`` with the events service's reason (``opt_out_cutoff``, ``opt_out_allowance``, cancelled), or
    ``not_taking_part`` when the customer's participation was released (the link is not used up). A customer who
    already opted out another way gets ``opted_out_before`` (no second confirmation)."""
    if isinstance(actor, CustomerActor) and actor.customer_id != message.customer_id:
        raise NotFound("Message not found.")
    with transaction.atomic():
        m = Message.objects.select_for_update(of=("self",)).select_related("event__program").get(pk=message.pk)
        if m.link_used_at is not None:
            return LinkOutcome(m, 0, True)
        event = m.event
        parts = _link_participations(m)
        if event.status == EventStatus.CANCELLED or now >= event.end or not parts:
            _link_refusal(event, parts, now=now)
        done = 0
        try:
            for p in parts:
                if p.status == ParticipationStatus.OPTED_OUT:
                    continue
                participation_opt_out(participation=p, channel=OptOutChannel.NOTICE_LINK, now=now, actor=actor,
                                      reason=f"opt-out link of message #{m.pk}")
                done += 1
        except ConflictError as exc:
            raise LinkRefused(exc.message, code=exc.code) from None
        Message.objects.filter(pk=m.pk).update(link_used_at=now, updated_at=now)
        audit_record(obj=m, action="update", now=now, actor=actor, code="message.opt_out_link_used",
                     reason=f"opted out of {done} participation(s) of event #{event.pk}")
        tz, policy = selectors.zone_of(event.program), selectors.policy_of(event.program)
        due, note = rules.prompt_due(now=now, policy=policy, tz=tz)
        planned = 0
        if done:  # on the channels the customer wants now (none: nothing is promised on the page)
            planned = _plan(event.program, [Planned(K.OPT_OUT_CONFIRMATION, m.customer_id, due, note,
                                                    event_id=event.pk)], now=now)
        return LinkOutcome(m, done, False, opted_out_before=not done, confirmation_planned=bool(planned))


# ------------------------------------------------------------------------------------- preferences, templates, policy
@use_case("contact_preference.set", Cap.MAINTAIN_CUSTOMERS, Cap.MANAGE_ENROLLMENTS)
def contact_preference_set(*, customer: Customer, channel: str, program: Program | None = None,
                           now: dt.datetime, actor: Any) -> ContactPreference:
    """Set how the customer wants messages (``email``, ``sms``, ``both``, ``none``), for every program or one.
    A channel the customer has no address for is refused (``DomainValidationError`` on ``channel``). Setting the
    channel the preference already has writes nothing (it was audited as an update from the channel to itself).
    The notices and reminders already planned for the customer's coming events are planned again on the channels
    wanted now (``customer_notices_replan``)."""
    if channel not in ContactChoice.values:
        raise DomainValidationError({"channel": [f"Unknown channel {channel!r}: use one of "
                                                 f"{', '.join(ContactChoice.values)}."]})
    if channel in (ContactChoice.EMAIL, ContactChoice.BOTH) and not customer.email:
        raise DomainValidationError({"channel": ["The customer has no e-mail address on file."]})
    if channel in (ContactChoice.SMS, ContactChoice.BOTH) and not customer.phone:
        raise DomainValidationError({"channel": ["The customer has no phone number on file."]})
    with transaction.atomic():
        pref, created = ContactPreference.objects.select_for_update().get_or_create(
            customer=customer, program=program, defaults={"channel": channel, "updated_at": now})
        before = None if created else pref.channel
        if before == channel:  # already so (a double click): nothing changes, nothing to audit
            return pref
        if not created:
            ContactPreference.objects.filter(pk=pref.pk).update(channel=channel, updated_at=now)
            pref.channel = channel
        audit_record(obj=pref, action="create" if created else "update", now=now, actor=actor,
                     changes={"channel": [before, channel], "program": program.code if program else "all"})
        # Notices already planned for the customer's coming events follow the new preference (else the queued
        # ones are suppressed at sending and none is planned on the new channel: the customer is never told).
        customer_notices_replan(customer_id=customer.pk, now=now)
        return pref


#: A context with every variable a message may carry, filled: a template is checked with it, so a tag hidden in an
#: ``{% if %}`` that is false without data is rendered too.
_SAMPLE_CONTEXT = {name: "x" for name in (
    "customer_name", "program_name", "incentive", "incentive_short", "effective_date", "end_date", "reason",
    "season_name", "period", "season_total", "kwh_avoided", "credit", "event_name", "event_window", "event_date",
    "event_day_word", "opt_out_url", "opt_out_expires", "opt_out_closed")}


def _check_template(fields: dict[str, str]) -> None:
    errors = {}
    for name, text in fields.items():
        for context in ({}, _SAMPLE_CONTEXT):
            try:
                render(text, context)
            except Exception as exc:  # noqa: BLE001 - any failure of an admin-written template is refused in words
                errors[name] = [f"Template error: {type(exc).__name__ if not str(exc) else exc}"]
                break
    if errors:
        raise DomainValidationError(errors)


@use_case("message_template.save", Cap.MANAGE_PROGRAMS)
def message_template_save(*, template: MessageTemplate, now: dt.datetime, actor: Any) -> MessageTemplate:
    """Create or change a program's wording of a kind; refused with the field named when a template does not
    compile."""
    _check_template({"subject": template.subject, "body": template.body, "sms_body": template.sms_body})
    created = template.pk is None
    template.updated_at = now
    template.save()
    audit_record(obj=template, action="create" if created else "update", now=now, actor=actor,
                 changes={"kind": template.kind})
    return template


@use_case("message_template.delete", Cap.MANAGE_PROGRAMS)
def message_template_delete(*, template: MessageTemplate, now: dt.datetime, actor: Any) -> None:
    """Delete a program's wording (the default wording applies again)."""
    audit_record(obj=template, action="delete", now=now, actor=actor, changes={"kind": template.kind})
    template.delete()


@use_case("notification_policy.save", Cap.MANAGE_PROGRAMS)
def notification_policy_save(*, policy: NotificationPolicy, now: dt.datetime, actor: Any) -> NotificationPolicy:
    """Create or change a program's sending rules; refused with the field named when one makes no sense (an empty
    quiet window, a link that works for 0 hours, a notice or reminder 0 minutes before the start)."""
    errors: dict[str, list[str]] = {}
    if policy.quiet_start == policy.quiet_end:
        errors["quiet_end"] = ["quiet_start and quiet_end must differ."]
    if not policy.opt_out_link_hours:
        errors["opt_out_link_hours"] = ["An opt-out link must work for at least 1 hour."]
    if policy.reminder_lead_minutes == 0:
        errors["reminder_lead_minutes"] = ["A reminder 0 minutes before the start is never sent: leave it empty "
                                           "for no reminder."]
    if policy.notice_lead_minutes == 0:
        errors["notice_lead_minutes"] = ["A notice 0 minutes before the start comes too late: leave it empty to "
                                         "send it at the event's notification time."]
    if errors:
        raise DomainValidationError(errors)
    created = policy.pk is None
    policy.updated_at = now
    policy.save()
    audit_record(obj=policy, action="create" if created else "update", now=now, actor=actor)
    return policy


__all__ = ["LinkOutcome", "LinkRefused", "contact_preference_set", "event_cancellations_plan",
           "event_notices_plan", "link_message", "link_state", "message_bounce", "message_key", "message_retry",
           "message_template_delete", "message_template_save", "messages_due", "messages_send",
           "notification_policy_save", "notifications_tick", "participation_opt_out_by_link"]
