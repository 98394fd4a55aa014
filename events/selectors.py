"""Events: the read path, shared by the API, the admin and CSR pages (constant queries per page)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db.models import Count, Exists, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from cpm.base.timeutils import zone
from devices.models import Aggregator, Device
from devices.selectors import aggregator_of
from programs import rules as program_rules
from programs.models import Program

from . import ledger
from .choices import COUNTED_EVENT_STATUSES, EventStatus, ParticipationStatus, ReservationDecision
from .models import DispatchMessage, Event, Participation, Reservation, Unavailability

RELEASED = ParticipationStatus.CANCELLED
# Outcomes that say whether a device took part (success rate); DISPATCHED after the end means nothing reported.
OUTCOME_STATUSES = (ParticipationStatus.PARTICIPATED, ParticipationStatus.OPTED_OUT,
                    ParticipationStatus.NON_RESPONSIVE, ParticipationStatus.FAILED)


@dataclass
class ProgramContext:
    """A program's zone, participation rules and seasons (2 queries, none when prefetched), read by the
    reservation, the opt-out checks and the CSR page."""

    program: Program
    tz: ZoneInfo
    rules: list
    seasons: list

    @classmethod
    def load(cls, program: Program) -> ProgramContext:
        return cls(program=program, tz=zone(program.time_zone), rules=list(program.participation_rules.all()),
                   seasons=list(program.seasons.all()))

    def rule_on(self, day: dt.date):
        return program_rules.rule_in_effect(self.rules, day)

    def period_of(self, day: dt.date) -> ledger.Period:
        """The season containing ``day``; the calendar year when none does (documented choice)."""
        season = program_rules.season_containing(self.seasons, day)
        if season is not None:
            return ledger.Period(season.name, season.start_date, season.end_date)
        return ledger.Period(str(day.year), dt.date(day.year, 1, 1), dt.date(day.year, 12, 31))

    def local_day(self, instant: dt.datetime) -> dt.date:
        return instant.astimezone(self.tz).date()

    def ledger_event(self, event_id: int, start: dt.datetime, end: dt.datetime, name: str = ""
                     ) -> ledger.LedgerEvent:
        return ledger.LedgerEvent(event_id, start, end, self.local_day(start), (end - start).total_seconds() / 3600,
                                  name)


def decision_count_annotations(*, aggregator: Aggregator | None = None) -> dict:
    """``n_<decision>`` counts of the reservation ledger, one per decision: correlated subqueries (index-only counts
    on ``(event_id, decision)``) evaluated for the listed page's events only, instead of a GROUP BY over the join
    with every reservation (which the pagination COUNT(*) repeated). With ``aggregator``: its devices' rows only."""
    rows = Reservation.objects.all() if aggregator is None else Reservation.objects.filter(
        device__aggregator=aggregator)

    def count(value: str):
        ledger = (rows.filter(event_id=OuterRef("pk"), decision=value).order_by().values("event_id")
                  .annotate(n=Count("pk")).values("n"))
        return Coalesce(Subquery(ledger, output_field=IntegerField()), 0)

    return {f"n_{value}": count(value) for value in ReservationDecision.values}


def event_list(*, user=None) -> QuerySet[Event]:
    """Events with their program and the reservation counts by decision (one query).

    An aggregator's API client (``devices.selectors.aggregator_of``) sees only the events its own devices were
    considered for (a row of the reservation ledger or a participation), and in them only its own devices: the
    reservation counts and the target devices of other aggregators are not its business."""
    aggregator = aggregator_of(user)
    if aggregator is None:
        return (Event.objects.select_related("program").prefetch_related("target_devices")
                .annotate(**decision_count_annotations()).order_by("-start", "-id"))
    own = Device.objects.filter(aggregator=aggregator)
    considered = Exists(Reservation.objects.filter(event_id=OuterRef("pk"), device__aggregator=aggregator))
    taking_part = Exists(Participation.objects.filter(event_id=OuterRef("pk"), device__aggregator=aggregator))
    return (Event.objects.filter(considered | taking_part).select_related("program")
            .prefetch_related(Prefetch("target_devices", queryset=own))
            .annotate(**decision_count_annotations(aggregator=aggregator)).order_by("-start", "-id"))


def reservation_list() -> QuerySet[Reservation]:
    return Reservation.objects.select_related("event", "event__program", "device", "service_point",
                                              "enrollment")


def reservation_decisions_for_device(*, device_id: int) -> QuerySet[Reservation]:
    """"Why was my device (not) called?": every decision for a device, newest event first, with the detail
    sentence (for the CSR page)."""
    return reservation_list().filter(device_id=device_id).order_by("-event__start", "-id")


def participation_list() -> QuerySet[Participation]:
    return Participation.objects.select_related("event", "event__program", "device", "service_point",
                                                "enrollment", "opt_out")


def unavailability_list() -> QuerySet[Unavailability]:
    return Unavailability.objects.select_related("enrollment", "device")


AGGREGATOR_EVENT_STATUSES = (EventStatus.SCHEDULED, EventStatus.DISPATCHED, EventStatus.ACTIVE)


def aggregator_events(*, aggregator: Aggregator) -> QuerySet[Event]:
    """Every upcoming (SCHEDULED with reserved participations, DISPATCHED) or ACTIVE event in which a device of
    ``aggregator`` takes part (a participation that is not cancelled), oldest start first, all of them (back-to-back
    events are both listed). ``agg_participations`` holds that aggregator's participations with their devices, in
    id order. A constant number of queries (the events, then the participations) whatever the number of rows."""
    mine = (Participation.objects.filter(device__aggregator=aggregator).exclude(status=ParticipationStatus.CANCELLED)
            .select_related("device").order_by("id"))
    return (Event.objects.filter(status__in=AGGREGATOR_EVENT_STATUSES)
            .filter(Exists(mine.filter(event_id=OuterRef("pk"))))
            .select_related("program").order_by("start", "id")
            .prefetch_related(Prefetch("participations", queryset=mine, to_attr="agg_participations")))


def aggregator_messages(*, aggregator: Aggregator) -> QuerySet[DispatchMessage]:
    """The dispatch messages cpm wrote for ``aggregator`` (dispatch, modification, cancellation, release of
    devices), in the order they were written (id): the payloads its webhook is sent, for an aggregator without a
    webhook (``poll_only``) or one catching up after an outage. Reading them changes nothing (a GET is safe): the
    client keeps the last id it handled and asks for those after it. One query per page."""
    return DispatchMessage.objects.filter(aggregator=aggregator).order_by("pk")


# ----------------------------------------------------------------------------------------- opt-out checks (shared)
def opt_out_refusals(participations: Iterable[Participation], *, at: dt.datetime,
                     contexts: dict[int, ProgramContext] | None = None) -> dict[int, program_rules.Violation | None]:
    """Would an opt-out request at ``at`` be refused, per participation id (None = allowed)?

    The one check used by the opt-out service (``participation_opt_out``) and the CSR page
    (``upcoming_participations``), so both always agree: ``programs.rules.check_opt_out_request`` with the rule
    in effect on the event's local day and the enrollment's usage of the event's season (counted events, this one
    left out, an event counting once per enrollment). ``participations`` need ``event`` and ``event.program``
    loaded; ``contexts``: ``ProgramContext`` by program id (loaded when missing). One query for the usage.
    """
    items = list(participations)
    if not items:
        return {}
    contexts = {} if contexts is None else contexts
    for p in items:
        if p.event.program_id not in contexts:
            contexts[p.event.program_id] = ProgramContext.load(p.event.program)
    periods = {p.pk: contexts[p.event.program_id].period_of(contexts[p.event.program_id].local_day(p.event.start))
               for p in items}
    # Wide enough for every season at hand (a day either side covers any zone's local midnight).
    first = min(period.first for period in periods.values()) - dt.timedelta(days=1)
    last = max(period.last for period in periods.values()) + dt.timedelta(days=2)
    usage: dict[int, list[tuple[ledger.LedgerEvent, bool]]] = defaultdict(list)
    for enrollment_id, program_id, event_id, start, end, status in Participation.objects.filter(
            enrollment_id__in={p.enrollment_id for p in items}, event__status__in=COUNTED_EVENT_STATUSES,
            event__start__gte=dt.datetime.combine(first, dt.time(0), tzinfo=dt.UTC),
            event__start__lt=dt.datetime.combine(last, dt.time(0), tzinfo=dt.UTC),
    ).exclude(status=RELEASED).order_by().values_list("enrollment_id", "event__program_id", "event_id",
                                                      "event__start", "event__end", "status"):
        ctx = contexts.get(program_id)
        if ctx is not None:
            usage[enrollment_id].append((ctx.ledger_event(event_id, start, end),
                                         status == ParticipationStatus.OPTED_OUT))
    out: dict[int, program_rules.Violation | None] = {}
    for p in items:
        ctx, period = contexts[p.event.program_id], periods[p.pk]
        used = ledger.season_usage(usage[p.enrollment_id], season=period, exclude_event_id=p.event_id)
        out[p.pk] = program_rules.check_opt_out_request(
            ctx.rule_on(ctx.local_day(p.event.start)), event_start=p.event.start, at=at, tz=ctx.tz,
            season_name=period.name, opted_out_events=used.opted_out_events, opted_out_hours=used.opted_out_hours,
            other_event_hours=used.other_event_hours, event_hours=p.event.duration_hours)
    return out


# ------------------------------------------------------------------------------------------------------ CSR page
@dataclass(frozen=True)
class DeviceEventRow:
    """One event in a device's history: the ledger decision (None when no ledger row, e.g. imported history) with
    its plain-language detail, and the participation's status and opt-out time (None when not reserved)."""

    event: Event
    decision: str | None
    detail: str
    participation_status: str | None
    opted_out_at: dt.datetime | None

    @property
    def decision_label(self) -> str:
        return ReservationDecision(self.decision).label if self.decision else ""

    @property
    def participation_status_label(self) -> str:
        """The participation's status as a person reads it ("Opted out"; the page showed the code "opted_out")."""
        status = self.participation_status
        return ParticipationStatus(status).label if status in ParticipationStatus.values else (status or "")


@dataclass
class DeviceEventHistory:
    """A device's events, newest first, and its success rate: events it took part in (PARTICIPATED) over the
    events with a known outcome (participated, opted out, non-responsive, failed) that ended by ``now``; None when
    there is none (dispatched events without an outcome report are left out)."""

    device_id: int
    rows: list[DeviceEventRow] = field(default_factory=list)
    success_rate: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)


def device_event_history(*, device_ids: Iterable[int], now: dt.datetime) -> dict[int, DeviceEventHistory]:
    """"Why was my device (not) called, and how did it do?": per device id, every event with a ledger decision or
    a participation, newest first, as ``DeviceEventRow`` (event, decision, detail, participation status,
    opted_out_at), and the success rate over events ended by ``now`` (aware). Two queries whatever the number of
    devices and events. Devices without any event get an empty history."""
    ids = sorted(set(device_ids))
    history = {device_id: DeviceEventHistory(device_id) for device_id in ids}
    if not ids:
        return history
    parts = {(p.device_id, p.event_id, p.subscription_id): p for p in Participation.objects.filter(
        device_id__in=ids).select_related("event__program").only(
        "device_id", "event_id", "subscription_id", "status", "opted_out_at", "event__name", "event__start",
        "event__end", "event__status", "event__revision", "event__category", "event__direction",
        "event__program__code", "event__program__name", "event__program__time_zone")}
    rows: dict[int, list[DeviceEventRow]] = defaultdict(list)
    for r in Reservation.objects.filter(device_id__in=ids).select_related("event__program").order_by():
        p = parts.pop((r.device_id, r.event_id, r.subscription_id), None)
        rows[r.device_id].append(DeviceEventRow(r.event, r.decision, r.detail, p.status if p else None,
                                                p.opted_out_at if p else None))
    for p in parts.values():  # participations without a ledger row (history loaded from elsewhere)
        rows[p.device_id].append(DeviceEventRow(p.event, None, "", p.status, p.opted_out_at))
    for device_id, items in rows.items():
        items.sort(key=lambda row: (row.event.start, row.event.pk), reverse=True)
        h = history[device_id]
        h.rows = items
        for row in items:
            if (row.participation_status in OUTCOME_STATUSES and row.event.end <= now
                    and row.event.status != EventStatus.CANCELLED):
                h.outcomes[row.participation_status] = h.outcomes.get(row.participation_status, 0) + 1
        done = sum(h.outcomes.values())
        h.success_rate = h.outcomes.get(ParticipationStatus.PARTICIPATED, 0) / done if done else None
    return history


@dataclass(frozen=True)
class UpcomingParticipation:
    """A participation in an event not yet ended, and whether the customer may still opt out (with why not)."""

    participation: Participation
    opt_out_allowed: bool
    opt_out_refusal_code: str  # "" when allowed; opt_out_cutoff, opt_out_allowance, already_opted_out
    opt_out_refusal: str  # the sentence the service would answer with


def upcoming_participations(*, enrollment_ids: Iterable[int], now: dt.datetime) -> list[UpcomingParticipation]:
    """Participations of these enrollments in events that have not ended by ``now`` (scheduled, dispatched or
    active; cancelled participations left out), soonest first, each with whether an opt-out request at ``now``
    is allowed, by the same check as the opt-out service (``opt_out_refusals``). A constant number of queries
    (participations, programs' rules and seasons, usage)."""
    items = list(Participation.objects.filter(
        enrollment_id__in=list(enrollment_ids), end__gt=now,
        event__status__in=(EventStatus.SCHEDULED, EventStatus.DISPATCHED, EventStatus.ACTIVE),
    ).exclude(status=RELEASED).select_related("event__program", "device", "service_point", "opt_out")
        .prefetch_related("event__program__participation_rules", "event__program__seasons")
        .order_by("event__start", "event_id", "id"))
    contexts = {p.event.program_id: ProgramContext.load(p.event.program) for p in items}
    open_items = [p for p in items if p.status in (ParticipationStatus.RESERVED, ParticipationStatus.DISPATCHED)]
    refusals = opt_out_refusals(open_items, at=now, contexts=contexts)
    out = []
    for p in items:
        if p.pk not in refusals:
            if p.opted_out_at:
                local = p.opted_out_at.astimezone(contexts[p.event.program_id].tz)
                out.append(UpcomingParticipation(p, False, "already_opted_out",
                                                 f"Already opted out at {local:%Y-%m-%d %H:%M %Z}."))
            else:
                out.append(UpcomingParticipation(p, False, "not_open",
                                                 f"The participation is {p.get_status_display().lower()}."))
            continue
        refusal = refusals[p.pk]
        out.append(UpcomingParticipation(p, refusal is None, refusal.code if refusal else "",
                                         refusal.message if refusal else ""))
    return out
