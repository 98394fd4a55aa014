"""Dashboard read path: per program figures and one event's figures, in a constant number of queries (aggregates
grouped by program or by event; never one query per row)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, F, Q, Sum, Window
from django.db.models.functions import RowNumber

from cpm.base.jobs import job_latest
from cpm.base.money import round_money
from cpm.base.replica import replica_reads
from cpm.base.timeutils import local_date, local_midnight, zone
from devices.choices import DeviceType
from enrollments.choices import EnrollmentStatus
from enrollments.models import Enrollment, ProgramSubscription
from events.choices import (
    COUNTED_EVENT_STATUSES,
    EventStatus,
    OptOutChannel,
    ParticipationStatus,
    ReservationDecision,
)
from events.models import Event, OptOut, Participation, Reservation
from programs import rules as program_rules
from programs.choices import IncentiveKind, ProgramStatus
from programs.models import Program
from settlement.choices import EventSettlementStatus
from settlement.forecast import SETTLED_STATUSES
from settlement.models import EventSettlement, SettlementLine

LIVE_STATUSES = (EventStatus.SCHEDULED, EventStatus.DISPATCHED, EventStatus.ACTIVE)
LATEST_EVENTS = 5
ZERO = Decimal(0)
HOURS = Decimal("0.01")  # season event hours are shown to 0.01 h
NOT_REVERSED = ~Q(status=EventSettlementStatus.REVERSED)


@dataclass
class EventResult:
    event: Event
    kwh_avoided: Decimal = ZERO
    kw_drop: Decimal = ZERO
    credits: Decimal = ZERO
    settlements: int = 0


@dataclass
class SeasonToDate:
    name: str
    first: dt.date
    last: dt.date
    events: int = 0
    max_events: int | None = None
    hours: Decimal = ZERO  # elapsed hours of the counted events, summed exactly, rounded once to 0.01 h
    max_hours: Decimal | None = None
    credits: Decimal = ZERO  # event credits + season incentives
    event_credits: Decimal = ZERO  # the season's event settlements (reversed ones left out)
    incentive_credits: Decimal = ZERO  # customer settlements' incentive and cap lines of the season
    cap_per_customer: Decimal | None = None
    credits_cap: Decimal | None = None


@dataclass
class ProgramCard:
    program: Program
    customers: int = 0
    devices_by_type: list[tuple[str, int, Decimal]] = field(default_factory=list)
    pending_approvals: int = 0
    live_events: list[Event] = field(default_factory=list)
    latest: list[EventResult] = field(default_factory=list)
    season: SeasonToDate | None = None

    @property
    def devices(self) -> int:
        return sum(n for _, n, _ in self.devices_by_type)

    @property
    def kw(self) -> Decimal:
        return sum((kw for _, _, kw in self.devices_by_type), ZERO)


def _current_season(seasons, today: dt.date):
    """The season containing ``today``, else the latest one already started (None before any)."""
    season = program_rules.season_containing(seasons, today)
    if season is None:
        started = [s for s in seasons if s.start_date <= today]
        season = max(started, key=lambda s: s.start_date, default=None)
    return season


@replica_reads
def program_cards(*, now: dt.datetime) -> list[ProgramCard]:
    """One card per program not closed: 11 queries whatever the number of programs, events or enrollments."""
    programs = list(Program.objects.exclude(status=ProgramStatus.CLOSED)
                    .prefetch_related("seasons", "participation_rules", "incentive_rules").order_by("name"))
    cards = {p.pk: ProgramCard(program=p) for p in programs}
    if not cards:
        return []
    ids = list(cards)
    for pid, n in (Enrollment.objects.filter(program_id__in=ids, status=EnrollmentStatus.ACTIVE).order_by()
                   .values("program_id").annotate(n=Count("account__customer_id", distinct=True))
                   .values_list("program_id", "n")):
        cards[pid].customers = n
    for pid, n in (Enrollment.objects.filter(program_id__in=ids, status=EnrollmentStatus.PENDING_APPROVAL)
                   .order_by().values("program_id").annotate(n=Count("pk")).values_list("program_id", "n")):
        cards[pid].pending_approvals = n
    # Subscription dates are the program's local dates, half-open: still running unless ended by its local today.
    by_today: dict[dt.date, list[int]] = defaultdict(list)
    for p in programs:
        by_today[local_date(now, zone(p.time_zone))].append(p.pk)
    running = Q()
    for today, pids in by_today.items():
        running |= Q(enrollment__program_id__in=pids) & (Q(end_date__isnull=True) | Q(end_date__gt=today))
    subs = (ProgramSubscription.objects.filter(enrollment__program_id__in=ids, device__isnull=False,
                                               enrollment__status=EnrollmentStatus.ACTIVE)
            .filter(running).order_by()
            .values("enrollment__program_id", "device__device_type")
            .annotate(n=Count("pk"), kw=Sum("device__capacity_kw")).order_by("enrollment__program_id",
                                                                              "device__device_type"))
    labels = dict(DeviceType.choices)
    for row in subs:
        cards[row["enrollment__program_id"]].devices_by_type.append(
            (labels.get(row["device__device_type"], row["device__device_type"]), row["n"], row["kw"] or ZERO))
    for event in Event.objects.filter(program_id__in=ids, status__in=LIVE_STATUSES, end__gt=now).order_by("start"):
        cards[event.program_id].live_events.append(event)
    # Ended by ``now``: the dashboard as of a past day (``?as_of=``) shows no event of a later day.
    latest = list(Event.objects.filter(program_id__in=ids, status=EventStatus.COMPLETED, end__lte=now)
                  .annotate(rank=Window(RowNumber(), partition_by=F("program_id"), order_by=[F("start").desc(),
                                                                                             F("pk").desc()]))
                  .filter(rank__lte=LATEST_EVENTS).order_by("program_id", "-start"))
    results = {e.pk: EventResult(event=e) for e in latest}
    for row in (EventSettlement.objects.filter(event_id__in=list(results)).filter(NOT_REVERSED).order_by()
                .values("event_id").annotate(kwh=Sum("kwh_avoided"), kw=Sum("kw_drop_avg"), money=Sum("amount"),
                                             n=Count("pk"))):
        r = results[row["event_id"]]
        r.kwh_avoided, r.kw_drop, r.settlements = row["kwh"] or ZERO, row["kw"] or ZERO, row["n"]
        r.credits = round_money(row["money"] or ZERO)
    for r in results.values():
        cards[r.event.program_id].latest.append(r)
    _season_to_date(cards, now=now)
    return list(cards.values())


def _season_to_date(cards: dict[int, ProgramCard], *, now: dt.datetime) -> None:
    """Events called, event hours and credits in each program's current season, against the rule in effect's
    ``max_events_per_season`` / ``max_event_hours_per_season`` and the SEASON_CAP incentive (per customer; the
    program's cap = cap x enrolled customers). Credits: the event settlements of the season's events and the
    customer settlements' lines of the season that no event settlement carries (enrollment bonus, monthly,
    seasonal and per-kW incentives, cap adjustments): a program paid per kW at season end read $0.00. Three
    queries for all programs."""
    windows, seasons = {}, {}
    for pid, card in cards.items():
        p = card.program
        tz = zone(p.time_zone)
        today = local_date(now, tz)
        season = _current_season(list(p.seasons.all()), today)
        if season is None:
            continue
        rule = program_rules.rule_in_effect(list(p.participation_rules.all()), min(today, season.end_date))
        caps = [r.amount for r in p.incentive_rules.all() if r.kind == IncentiveKind.SEASON_CAP
                and r.season_id in (None, season.pk)]
        std = SeasonToDate(name=season.name, first=season.start_date, last=season.end_date,
                           max_events=getattr(rule, "max_events_per_season", None),
                           max_hours=getattr(rule, "max_event_hours_per_season", None),
                           cap_per_customer=min(caps) if caps else None)
        if std.cap_per_customer is not None:
            std.credits_cap = std.cap_per_customer * card.customers
        card.season = std
        seasons[season.pk] = pid
        windows[pid] = (local_midnight(season.start_date, tz),
                        local_midnight(season.end_date + dt.timedelta(days=1), tz))
    if not windows:
        return
    in_season = Q()
    for pid, (a, b) in windows.items():
        in_season |= Q(program_id=pid, start__gte=a, start__lt=b)
    elapsed: dict[int, dt.timedelta] = defaultdict(dt.timedelta)
    for pid, start, end in (Event.objects.filter(in_season, status__in=COUNTED_EVENT_STATUSES, start__lte=now)
                            .order_by().values_list("program_id", "start", "end")):
        cards[pid].season.events += 1
        elapsed[pid] += end - start
    # Summed exactly, rounded once (rounding each event to 0.01 h first made three 20-minute events 0.99 h).
    for pid, total in elapsed.items():
        cards[pid].season.hours = (Decimal(total // dt.timedelta(microseconds=1)) / 3_600_000_000).quantize(
            HOURS, ROUND_HALF_UP)
    settled = Q()
    for pid, (a, b) in windows.items():
        settled |= Q(program_id=pid, event__start__gte=a, event__start__lt=b)
    # The events counted above (started by ``now``): as of a past day, a later event's credits are not "to date".
    for pid, money in (EventSettlement.objects.filter(settled, event__start__lte=now).filter(NOT_REVERSED).order_by()
                       .values("program_id")
                       .annotate(money=Sum("amount")).values_list("program_id", "money")):
        cards[pid].season.event_credits = round_money(money or ZERO)
    for season_id, money in (SettlementLine.objects.filter(event_settlement__isnull=True,
                                                           customer_settlement__season_id__in=list(seasons))
                             .order_by().values("customer_settlement__season_id").annotate(money=Sum("amount"))
                             .values_list("customer_settlement__season_id", "money")):
        cards[seasons[season_id]].season.incentive_credits = round_money(money or ZERO)
    for pid in windows:
        std = cards[pid].season
        std.credits = std.event_credits + std.incentive_credits


# ------------------------------------------------------------------------------------------------------ event page
@dataclass
class EventPage:
    event: Event
    decisions: list[tuple[str, str, int, Decimal]]  # (code, label, count, capacity kW)
    reserved_kw: Decimal
    participations: list[tuple[str, int]]
    opt_outs: list[tuple[str, int]]
    delivered_kw: Decimal
    kwh_avoided: Decimal
    settled: int
    credits_total: Decimal
    credits_by_status: list[tuple[str, int, Decimal]]
    interval_starts: list[dt.datetime]
    fleet: dict[str, list[float | None]]
    # The event's latest reservation run (cpm.models.Job), or None: a failed or stalled one is shown with its error
    # and how to run it again.
    reservation_job: object | None = None

    @property
    def fleet_rows(self) -> list[tuple[dt.datetime, list[float | None]]]:
        cols = list(self.fleet.values())
        return [(s, [c[i] for c in cols]) for i, s in enumerate(self.interval_starts)]

    @property
    def delivered_vs_forecast(self) -> Decimal | None:
        f = self.event.forecast_kw
        return (self.delivered_kw / f).quantize(Decimal("0.01")) if f else None


FLEET_SERIES = (("Baseline", "baseline_kw"), ("Adjusted baseline", "adjusted_baseline_kw"), ("Actual", "actual_kw"))


def fleet_series(inputs_rows) -> tuple[list[dt.datetime], dict[str, list[float | None]]]:
    """Sum the settlements' stored per-interval kW (``inputs``: ``start``, ``interval_minutes``, ``baseline_kw``,
    ``adjusted_baseline_kw``, ``actual_kw``) by interval start; an interval where no settlement has a value is
    None. Settlements of one event may be on different grids (a participation whose opt-out cut an hour is measured
    on its 15-minute data: ``settlement.measurement.measure_event``): the sums are then on the finest grid, a
    coarser interval's kW counting in each of its finer intervals (kW is the interval's average)."""
    # {minutes: {key: {start: kW sum, None = no value}}}, then spread onto the finest grid seen.
    sums: dict[int, dict[str, dict[dt.datetime, float | None]]] = {}
    for inputs in inputs_rows:
        first, minutes = (inputs or {}).get("start"), (inputs or {}).get("interval_minutes")
        if not first or not minutes:
            continue
        t0 = dt.datetime.fromisoformat(first)
        grid = sums.setdefault(minutes, {key: {} for _, key in FLEET_SERIES})
        for _, key in FLEET_SERIES:
            series = grid[key]
            for i, value in enumerate(inputs.get(key) or []):
                t = t0 + dt.timedelta(minutes=minutes * i)
                if value is None:
                    series.setdefault(t, None)
                else:
                    series[t] = (series.get(t) or 0.0) + value
    if not sums:
        return [], {label: [] for label, _ in FLEET_SERIES}
    finest = min(sums)
    totals: dict[str, dict[dt.datetime, float | None]] = {key: {} for _, key in FLEET_SERIES}
    for minutes, grid in sums.items():
        parts = [dt.timedelta(minutes=finest * j) for j in range(minutes // finest)]
        for _, key in FLEET_SERIES:
            out = totals[key]
            for t, value in grid[key].items():
                for dt_part in parts:
                    u = t + dt_part
                    if value is None:
                        out.setdefault(u, None)
                    else:
                        out[u] = (out.get(u) or 0.0) + value
    ordered = sorted({t for out in totals.values() for t in out})
    return ordered, {label: [None if totals[key].get(t) is None else round(totals[key][t], 3) for t in ordered]
                     for label, key in FLEET_SERIES}


@replica_reads
def event_page(*, event_id: int) -> EventPage:
    """One event's figures: 7 queries whatever the number of reservations, participations or settlements."""
    event = Event.objects.select_related("program").get(pk=event_id)
    labels = dict(ReservationDecision.choices)
    decisions = [(row["decision"], labels.get(row["decision"], row["decision"]), row["n"], row["kw"] or ZERO)
                 for row in Reservation.objects.filter(event_id=event_id).order_by().values("decision")
                 .annotate(n=Count("pk"), kw=Sum("capacity_kw")).order_by("-n", "decision")]
    reserved_kw = sum((kw for code, _, _, kw in decisions if code == ReservationDecision.RESERVED), ZERO)
    p_labels = dict(ParticipationStatus.choices)
    participations = [(p_labels.get(s, s), n) for s, n in Participation.objects.filter(event_id=event_id).order_by()
                      .values("status").annotate(n=Count("pk")).order_by("status").values_list("status", "n")]
    c_labels = dict(OptOutChannel.choices)
    opt_outs = [(c_labels.get(c, c), n) for c, n in OptOut.objects.filter(participation__event_id=event_id).order_by()
                .values("channel").annotate(n=Count("pk")).order_by("channel").values_list("channel", "n")]
    s_labels = dict(EventSettlementStatus.choices)
    by_status = list(EventSettlement.objects.filter(event_id=event_id).order_by().values("status")
                     .annotate(n=Count("pk"), money=Sum("amount"), kw=Sum("kw_drop_avg"), kwh=Sum("kwh_avoided"))
                     .order_by("status"))
    settled_rows = [r for r in by_status if r["status"] in SETTLED_STATUSES]
    credits = [(s_labels.get(r["status"], r["status"]), r["n"], round_money(r["money"] or ZERO)) for r in by_status]
    starts, fleet = fleet_series(EventSettlement.objects.filter(event_id=event_id, status__in=SETTLED_STATUSES)
                                 .order_by("pk").values_list("inputs", flat=True).iterator(chunk_size=2000))
    return EventPage(
        event=event, decisions=decisions, reserved_kw=reserved_kw, participations=participations, opt_outs=opt_outs,
        delivered_kw=sum((r["kw"] or ZERO for r in settled_rows), ZERO),
        kwh_avoided=sum((r["kwh"] or ZERO for r in settled_rows), ZERO),
        settled=sum(r["n"] for r in settled_rows),
        credits_total=round_money(sum((r["money"] or ZERO for r in by_status
                                       if r["status"] != EventSettlementStatus.REVERSED), ZERO)),
        credits_by_status=credits, interval_starts=starts, fleet=fleet,
        reservation_job=job_latest(subject_type=Event._meta.label_lower, subject_id=event_id, kind="reservation"))
