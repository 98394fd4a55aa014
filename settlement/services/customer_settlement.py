"""Customer settlement: an account's credits in a program for a period (billing period, season end, final bill):
approved event-settlement lines, deferred event lines at season end, enrollment bonus, monthly, seasonal and kW
performance incentives, the season cap; batches of accounts in chunks; approval.

``customer_settlements_calculate`` works a chunk of accounts with a constant number of queries, in named steps:
``_lock_settlements`` (lock the existing rows, take ids for the missing ones), ``_reset_lines`` (drop recomputable
lines, attach approved event lines), ``_deferred_event_lines``, ``_IncentiveFacts.load`` (what the rules need, one
query each), ``_incentive_lines`` (per account, enrollment and rule), ``_season_cap_lines`` and ``_save_totals``
(insert the new settlements with their totals, update the others, audit each). A chunk holds its settlements,
enrollments and lines as rows, not model instances (5,000 accounts: the instances cost more than the writes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Q, Sum, Value, When

from cpm.base import bulk
from cpm.base.audit import actor_label, audit_record
from cpm.base.capabilities import Cap, require, use_case
from cpm.base.errors import ConflictError, DomainValidationError
from cpm.base.money import ZERO, format_money, round_money
from cpm.base.states import check_transition, transition
from cpm.base.timeutils import local_date, local_midnight, zone
from enrollments.choices import EnrollmentStatus
from enrollments.models import Account, Enrollment
from events.choices import COUNTED_EVENT_STATUSES, EventDirection, ParticipationStatus, ReservationDecision
from events.models import Event, Participation, Reservation, Unavailability
from programs.choices import IncentiveKind, OptOutConsequence, SettlementTiming
from programs.models import IncentiveRule, Program, Season

from .. import incentives as inc
from ..choices import (
    CUSTOMER_SETTLEMENT_TRANSITIONS,
    EVENT_SETTLEMENT_TRANSITIONS,
    LINE_CODES,
    BatchKind,
    LineKind,
    MeasurementStatus,
    PeriodKind,
)
from ..models import CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine
from .batches import batch_errors_add, batch_run_chunks
from .common import CS, ENROLLED_STATUSES, ES, Q4, audit_rows, chunks, enrolled_capacity, rule_specs

log = logging.getLogger(__name__)

# Line kinds the season cap does not limit (see ``_season_cap_lines``).
UNCAPPED_KINDS = (LineKind.ENROLLMENT_BONUS,)
CUSTOMER_KINDS = [IncentiveKind.ENROLLMENT_BONUS, IncentiveKind.MONTHLY, IncentiveKind.SEASONAL,
                  IncentiveKind.PERFORMANCE_KW, IncentiveKind.OPT_OUT_PENALTY]


def _months(start: dt.date, end: dt.date):
    """First days of the months overlapping local dates ``[start, end)``."""
    month = start.replace(day=1)
    while month < end:
        yield month
        month = (month + dt.timedelta(days=32)).replace(day=1)


def _season_for(program: Program, day: dt.date) -> Season | None:
    return Season.objects.filter(program=program, start_date__lte=day, end_date__gte=day).first()


def _season_events_by_enrollment(enrollment_ids: list[int], season: Season, tz) -> dict[int, list[inc.SeasonEvent]]:
    """Counted events of the season per enrollment (cancelled events and participations left out), with the events
    that called it and that it missed by the customer's doing (``_missed_events``: declared unavailable, an opt-out
    made ahead; device offline): no participated hours, counted as the rules count an event opted out before it
    began (PGE Energy Partner's "50 % of the season's event hours", Efficiency Maine's 0 kW). An event settlement
    reversed entirely (settled in error) gives no kW: the event is left out of a per-kW average, as one without
    data. Three queries: the
    participations (their start and end read only where opted out: the only rows that need them), the missed events
    and the participations' few events' times."""
    start, end = local_midnight(season.start_date, tz), local_midnight(season.end_date + dt.timedelta(days=1), tz)
    opted = Q(opted_out_at__isnull=False) | Q(status=ParticipationStatus.OPTED_OUT)
    rows = list(Participation.objects.filter(enrollment_id__any=enrollment_ids,
                                             event__status__in=COUNTED_EVENT_STATUSES, event__start__gte=start,
                                             event__start__lt=end)
                .exclude(status=ParticipationStatus.CANCELLED)
                .values_list("enrollment_id", "event_id", Case(When(opted, then=F("start"))),
                             Case(When(opted, then=F("end"))), "opted_out_at", "status", "settlement__kw_drop_avg",
                             "settlement__measurement_status", "settlement__status"))
    # A few events, thousands of rows: each event's hours computed once.
    event_hours = {pk: Decimal(f"{(ev_end - ev_start).total_seconds() / 3600.0:.4f}") for pk, ev_start, ev_end in
                   Event.objects.filter(pk__in={r[1] for r in rows}).values_list("pk", "start", "end")}
    out: dict[int, list[inc.SeasonEvent]] = defaultdict(list)
    ok = MeasurementStatus.OK
    taken_part = {(r[0], r[1]) for r in rows}
    for enrollment_id, event_id, offline, hours, _start in _missed_events(enrollment_ids, start, end):
        if (enrollment_id, event_id) not in taken_part:
            taken_part.add((enrollment_id, event_id))
            out[enrollment_id].append(inc.SeasonEvent(event_id, hours, ZERO, not offline, None, missed=offline))
    for enrollment_id, event_id, p_start, p_end, opted_at, status, kw, m_status, es_status in rows:
        hours = event_hours[event_id]
        opted_out = bool(opted_at) or status == ParticipationStatus.OPTED_OUT
        if opted_out:
            stop = opted_at if opted_at and opted_at < p_end else p_end
            not_opted = Decimal(f"{max(0.0, (stop - p_start).total_seconds() / 60.0) / 60:.4f}")
        else:
            not_opted = hours
        # A settlement reversed entirely (settled in error) no longer measures anything: no kW (left out).
        out[enrollment_id].append(inc.SeasonEvent(event_id, hours, not_opted, opted_out,
                                                  kw if m_status == ok and es_status != ES.REVERSED else None))
    return out


# The ledger decisions of an event an enrollment was called for and missed (``_missed_events``); the partial index
# ``reservation_missed_idx`` holds only these rows.
MISSED_DECISIONS = (ReservationDecision.OFFLINE, ReservationDecision.UNAVAILABLE, ReservationDecision.RELEASED)


def _missed_events(enrollment_ids: list[int], start: dt.datetime | None = None, end: dt.datetime | None = None):
    """``(enrollment id, event id, offline, event hours, event start)`` of the counted events starting in ``[start,
    end)`` (None: unbounded) that
    called an enrollment (its reservation ledger has a row for it) and that it missed by the customer's doing: it
    declared the enrollment (or the device) unavailable over the event (skipped at reservation as UNAVAILABLE, or
    released when it declared it: ``offline`` False, an opt-out made ahead), or the device was offline
    (``offline`` True). Skips that are the program's (limits, targeting, target met, another event's priority) are
    not the customer's events. One query."""
    declared = Unavailability.objects.filter(
        Q(device__isnull=True) | Q(device_id=OuterRef("device_id")), enrollment_id=OuterRef("enrollment_id"),
        start__lt=OuterRef("event__end"), end__gt=OuterRef("event__start"))
    bounds = {"event__start__gte": start} if start else {}
    if end:
        bounds["event__start__lt"] = end
    for enrollment_id, event_id, decision, ev_start, ev_end in (
            Reservation.objects.filter(enrollment_id__any=enrollment_ids, event__status__in=COUNTED_EVENT_STATUSES,
                                       decision__in=MISSED_DECISIONS, **bounds)
            .filter(Q(decision__in=[ReservationDecision.UNAVAILABLE, ReservationDecision.OFFLINE])
                    | Q(decision=ReservationDecision.RELEASED) & Exists(declared))
            .order_by("event__start", "event_id", "enrollment_id")
            .values_list("enrollment_id", "event_id", "decision", "event__start", "event__end")):
        yield (enrollment_id, event_id, decision == ReservationDecision.OFFLINE,
               Decimal(f"{(ev_end - ev_start).total_seconds() / 3600.0:.4f}"), ev_start)


def _opt_out_months(enrollment_ids: list[int], tz) -> dict[int, set[dt.date]]:
    """First days of the local months with an opted-out counted event, per enrollment: an opt-out of its
    participation, or unavailability declared over an event that called it (an opt-out made ahead:
    ``_missed_events``; Eversource CT: "the $20 for that summer month is earned only if no event that month is
    opted out of"). Two queries."""
    out: dict[int, set[dt.date]] = defaultdict(set)
    for enrollment_id, _event, offline, _hours, start in _missed_events(enrollment_ids):
        if not offline:
            out[enrollment_id].add(local_date(start, tz).replace(day=1))
    for enrollment_id, start in (Participation.objects.filter(enrollment_id__any=enrollment_ids,
                                                              event__status__in=COUNTED_EVENT_STATUSES)
                                 .filter(Q(opted_out_at__isnull=False) | Q(status=ParticipationStatus.OPTED_OUT))
                                 .values_list("enrollment_id", "event__start")):
        out[enrollment_id].add(local_date(start, tz).replace(day=1))
    return out


@use_case("customer_settlement.calculate", Cap.RUN_SETTLEMENT)
def customer_settlement_calculate(*, account: Account, program: Program, period_kind: str, period_start: dt.date,
                                  period_end: dt.date, now: dt.datetime, actor: Any,
                                  season: Season | None = None,
                                  batch: SettlementBatch | None = None) -> CustomerSettlement:
    """Calculate (or recalculate, while not approved) an account's credits in a program for local dates
    ``[period_start, period_end)``.

    Sums: approved event-settlement lines not yet in a customer settlement (including reversal lines of corrections);
    at season end, deferred event settlements of the season; the enrollment bonus (once per account or service point
    and program); monthly incentives for the months enrolled whose first enrolled day falls in the period (not for a
    month with an opt-out when the rule or an opt-out rule says so); at season end the seasonal incentive (share of
    event hours not opted out, cancelled events excluded) and performance per kW (top N% of the season's per-event kW
    drops); then a negative cap line keeps the season's net within the program's season cap. Any settlement also
    carries the corrections of a season-end program's event settlements made after their season settlement was
    approved (the difference only: ``_deferred_event_lines``); an ADJUSTMENT settlement carries only those and the
    unclaimed approved event lines, no incentive, and belongs to no season. An APPROVED or EXPORTED settlement is
    returned unchanged. Raises ``DomainValidationError`` for a bad period.
    Same code path as the batches: ``customer_settlements_calculate`` for one account.

    Refused (``DomainValidationError``) for an account never enrolled in the program (nothing to settle: it would
    write a $0 settlement on the account) and for a period longer than ``MAX_PERIOD_DAYS`` (a season or a billing
    period, never centuries: 0001-01-01 to 9999-12-31 was accepted).
    """
    if period_end > period_start and (period_end - period_start).days > MAX_PERIOD_DAYS:
        raise DomainValidationError({"period_end": [
            f"The period {period_start} to {period_end} is {(period_end - period_start).days} days; a customer "
            f"settlement covers at most {MAX_PERIOD_DAYS} days (a season or a billing period)."]})
    if period_kind == PeriodKind.SEASON_END and period_end > period_start:
        _check_season_end(program=program, season=season, period_end=period_end, now=now)
    if not Enrollment.objects.filter(account_id=account.pk, program_id=program.pk).exists():
        raise DomainValidationError({"account": [
            f"Account {account.account_number} has never been enrolled in program {program.code}: there is nothing "
            "to settle."]})
    return customer_settlements_calculate(account_ids=[account.pk], program=program, period_kind=period_kind,
                                          period_start=period_start, period_end=period_end, now=now, actor=actor,
                                          season=season, batch=batch)[account.pk]


MAX_PERIOD_DAYS = 366  # the longest period one customer settlement covers (a leap year's season)


def _check_season_end(*, program: Program, season: Season | None, period_end: dt.date, now: dt.datetime) -> None:
    """A season-end settlement ends with one of the program's seasons (``period_end`` the day after its last day)
    and is calculated once that season has ended in the program's zone, as ``season_settle`` requires: one of
    July alone, or one calculated on the season's last evening, paid the season's incentives early and their
    once-only keys kept the real season-end settlement from paying them. Raises ``DomainValidationError`` naming
    ``period_end``."""
    last_day = period_end - dt.timedelta(days=1)
    season = season or _season_for(program, last_day)
    if season is None or season.end_date != last_day:
        raise DomainValidationError({"period_end": [
            f"No season of program {program.code} ends on {last_day}: a season-end settlement covers a season, "
            "its period_end the day after the season's last day"
            + (f" ({season.name}: {season.end_date + dt.timedelta(days=1)})." if season else ".")]})
    today = local_date(now, zone(program.time_zone))
    if today <= season.end_date:
        raise DomainValidationError({"period_end": [
            f"Season {season.name} ends on {season.end_date} (today is {today} in {program.time_zone}); calculate "
            "its season-end settlement after that."]})


class _Settlement(NamedTuple):
    """A customer settlement as a chunk works it: its id and its status when locked (no model instance: a chunk
    works 5,000 of them)."""

    pk: int
    status: str


class _Enrollment(NamedTuple):
    """What the incentive rules read of an enrollment (a row, not a model instance)."""

    pk: int
    account_id: int
    service_point_id: int
    effective_date: dt.date
    end_date: dt.date | None


@dataclass
class _Run:
    """One chunk's calculation: the period, the settlements being worked (``work``: not approved, by account),
    their accounts in id order (``accounts``) and what the steps accumulate (new lines and explanation notes per
    account)."""

    program: Program
    period_kind: str
    period_start: dt.date
    period_end: dt.date
    season: Season | None
    tz: Any
    now: dt.datetime
    work: dict[int, _Settlement]
    before: set[int]
    batch: SettlementBatch | None = None
    accounts: list[int] = field(default_factory=list)
    notes: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    new: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))  # line rows (``_line_row``)
    work_by_pk: dict[int, int] = field(default_factory=dict)  # worked settlement id -> account

    def __post_init__(self) -> None:
        self.accounts = sorted(self.work)
        self.work_by_pk = {cs.pk: a for a, cs in self.work.items()}

    @property
    def key(self) -> dict:
        return {"program": self.program, "period_kind": self.period_kind, "period_start": self.period_start,
                "period_end": self.period_end}

    @property
    def at_season_end(self) -> bool:
        return self.period_kind == PeriodKind.SEASON_END and self.season is not None

    @property
    def pays_incentives(self) -> bool:
        """An adjustment carries event money only (corrections and unclaimed approved lines)."""
        return self.period_kind != PeriodKind.ADJUSTMENT


@use_case("customer_settlements.calculate", Cap.RUN_SETTLEMENT)
def customer_settlements_calculate(*, account_ids: list[int], program: Program, period_kind: str,
                                   period_start: dt.date, period_end: dt.date, now: dt.datetime, actor: Any,
                                   season: Season | None = None,
                                   batch: SettlementBatch | None = None) -> dict[int, CustomerSettlement]:
    """``customer_settlement_calculate`` for many accounts (a chunk) in one transaction with a constant number of
    queries: returns ``{account id: CustomerSettlement}`` (read back once calculated). Accounts are worked in id
    order, so an enrollment bonus paid to one account's service point is seen by the next account at that service
    point. The batches' chunks run the same calculation without reading the settlements back
    (``customer_settle_chunk``)."""
    ids = _settlements_calculate(account_ids=account_ids, program=program, period_kind=period_kind,
                                 period_start=period_start, period_end=period_end, now=now, actor=actor, season=season,
                                 batch=batch)
    by_pk = CustomerSettlement.objects.in_bulk(list(ids.values()))
    return {a: by_pk[pk] for a, pk in ids.items()}


def _settlements_calculate(*, account_ids: list[int], program: Program, period_kind: str, period_start: dt.date,
                           period_end: dt.date, now: dt.datetime, actor: Any, season: Season | None = None,
                           batch: SettlementBatch | None = None) -> dict[int, int]:
    """The calculation of ``customer_settlements_calculate`` (its caller checked the actor): returns ``{account id:
    customer settlement id}`` of every account (approved and exported ones included, unchanged)."""
    if period_end <= period_start:
        raise DomainValidationError({"period_end": ["period_end must be after period_start."]})
    if period_kind not in PeriodKind.values:
        raise DomainValidationError({"period_kind": [f"Unknown period kind {period_kind!r}."]})
    tz = zone(program.time_zone)
    if period_kind == PeriodKind.ADJUSTMENT:
        season = None  # an adjustment belongs to no season; each of its lines to its event's (``_line_seasons``)
    elif season is None:
        season = _season_for(program, period_end - dt.timedelta(days=1))
    account_ids = sorted(set(account_ids))
    with transaction.atomic():
        settlements, before = _lock_settlements(account_ids, program=program, period_kind=period_kind,
                                                period_start=period_start, period_end=period_end)
        work = {a: cs for a, cs in settlements.items() if cs.status not in (CS.APPROVED, CS.EXPORTED)}
        if not work:
            return {a: cs.pk for a, cs in settlements.items()}
        run = _Run(program=program, period_kind=period_kind, period_start=period_start, period_end=period_end,
                   season=season, tz=tz, now=now, work=work, before=before, batch=batch)
        _reset_lines(run)
        _deferred_event_lines(run)
        facts = _IncentiveFacts.load(run)
        if run.pays_incentives:
            for account_id in run.accounts:
                _incentive_lines(run, facts, account_id)
        bulk.insert_dicts(SettlementLine, [x for a in run.accounts for x in run.new.get(a, ())])
        totals = _season_cap_lines(run)
        _save_totals(run, facts, totals, actor=actor)
    return {a: cs.pk for a, cs in settlements.items()}


def _lock_settlements(account_ids: list[int], *, program: Program, period_kind: str, period_start: dt.date,
                      period_end: dt.date) -> tuple[dict[int, _Settlement], set[int]]:
    """Lock the accounts' settlements of the period that exist; for the missing ones take ids from the table's
    sequence (``bulk.reserve_ids``): ``_save_totals`` inserts them once calculated, each row written once (an
    UPDATE of rows inserted earlier in the same transaction would write them twice and check their foreign keys
    twice). Returns the settlements (id, status; PENDING for a new one) by account and the accounts that had one
    before. A concurrent run creating one of the new settlements makes the insert fail on the period's unique
    constraint: the chunk is then retried account by account (``customer_settle_chunk``), each finding it."""
    key = {"program": program, "period_kind": period_kind, "period_start": period_start, "period_end": period_end}
    settlements = {a: _Settlement(pk, status) for a, pk, status in CustomerSettlement.objects.select_for_update()
                   .filter(account_id__any=account_ids, **key).order_by("pk").values_list("account_id", "pk", "status")}
    before = set(settlements)
    missing = [a for a in account_ids if a not in before]
    for a, pk in zip(missing, bulk.reserve_ids(CustomerSettlement, len(missing)), strict=True):
        settlements[a] = _Settlement(pk, CS.PENDING)
    return settlements, before


# Every column of a settlement line that a line may leave out, with its value when left out (COPY writes a row as it
# is: no model defaults); ``_line_row`` fills them. The lines of a chunk are plain rows, not model instances: a
# chunk writes 10,000-15,000 of them and a model instance costs more to build than the row costs to write.
_LINE_BLANK = {"enrollment_id": None, "service_point_id": None, "event_settlement_id": None,
               "customer_settlement_id": None, "quantity": None, "unit": "", "rate": None, "description": "",
               "incentive_key": "", "event_revision": None, "reverses_id": None}


def _line_row(**columns) -> dict:
    """A settlement line as ``{column: value}`` for ``bulk.insert_dicts``: ``account_id``, ``program_id``, ``kind``,
    ``line_code``, ``amount`` (rounded) and ``created_at`` given; the others from ``_LINE_BLANK`` unless given."""
    return {**_LINE_BLANK, **columns}


def _reset_lines(run: _Run) -> None:
    """Drop the recomputable lines of the worked settlements (incentive lines, deferred event lines and carried
    corrections: the lines of a DEFERRED event settlement's current revision, including those of one that went back
    to PENDING since: it owes nothing now) and attach the approved event lines of their accounts not yet in a
    customer settlement (events before the period's end). A deferred event settlement's lines of an earlier
    revision are approved money (posted before it was re-opened by a correction) and stay."""
    cs_ids = [run.work[a].pk for a in run.accounts]
    SettlementLine.objects.filter(customer_settlement_id__any=cs_ids).filter(
        Q(event_settlement__isnull=True)
        | Q(event_settlement__status__in=[ES.DEFERRED, ES.PENDING],
            event_revision=F("event_settlement__revision"))).delete()
    unclaimed = SettlementLine.objects.filter(
        account_id__any=run.accounts, program=run.program, customer_settlement__isnull=True,
        event_settlement__isnull=False, event_settlement__event__start__lt=local_midnight(run.period_end, run.tz)
    ).values_list("pk", "account_id")
    bulk.update_rows(SettlementLine, {pk: {"customer_settlement_id": run.work[a].pk} for pk, a in unclaimed},
                     ["customer_settlement_id"])


# A season-end program's event settlement re-opened by a correction after its approval (its season settlement
# approved, often exported): still DEFERRED with money (computed or posted) to settle.
REOPENED = Q(status=ES.DEFERRED, approved_at__isnull=False) & ~Q(amount=0, posted_amount=0)


def _held_elsewhere(cs_ids: list[int] | None = None) -> Exists:
    """An event settlement whose current revision's lines a customer settlement not yet approved holds (other than
    ``cs_ids``): that settlement carries it (``_recalculate_holding`` keeps it up to date), no other may."""
    held = SettlementLine.objects.filter(event_settlement=OuterRef("pk"), event_revision=OuterRef("revision"),
                                         customer_settlement__status__in=[CS.PENDING, CS.CALCULATED])
    return Exists(held.exclude(customer_settlement_id__any=cs_ids) if cs_ids else held)


def _posted_by_kind(es_ids: list[int]) -> dict[int, dict[str, Decimal]]:
    """The approved money of each (re-opened) event settlement by line kind: its lines of earlier revisions (the
    lines of its current revision are a customer settlement's, not yet approved). One query; none without ids."""
    out: dict[int, dict[str, Decimal]] = defaultdict(dict)
    if es_ids:
        for es_id, kind, s in (SettlementLine.objects.filter(event_settlement_id__any=es_ids,
                                                             event_revision__lt=F("event_settlement__revision"))
                               .values_list("event_settlement_id", "kind").annotate(s=Sum("amount"))
                               .values_list("event_settlement_id", "kind", "s").order_by()):
            out[es_id][kind] = s or ZERO
    return out


class _Carried(NamedTuple):
    """A line a customer settlement carries of a deferred event settlement: its kind and amount, the component it
    pays (never approved) or None (a correction), and the money of that kind paid before and now."""

    kind: str
    amount: Decimal
    component: dict | None
    paid: Decimal
    now: Decimal


def _carried(components: list[dict], posted: dict[str, Decimal] | None) -> list[_Carried]:
    """What a customer settlement carries of a deferred event settlement. Never approved (``posted`` None): each
    non-zero component, its rounded amount. Approved before and re-opened by a correction (``posted``: its approved
    money by kind, ``_posted_by_kind``): the difference only, per line kind the corrected amount less the amount
    posted, for the kinds whose money changed; one $0.00 line of its first kind when none did (approving the
    settlement carrying it approves the correction: ``customer_settlement_approve``)."""
    paying = [c for c in components if Decimal(c["rounded"])]
    if posted is None:
        return [_Carried(c["kind"], Decimal(c["rounded"]), c, ZERO, Decimal(c["rounded"])) for c in paying]
    now: dict[str, Decimal] = {}
    for c in paying:
        now[c["kind"]] = now.get(c["kind"], ZERO) + Decimal(c["rounded"])
    kinds = [*now, *sorted(k for k in posted if k not in now)]
    out = [_Carried(k, now.get(k, ZERO) - posted.get(k, ZERO), None, posted.get(k, ZERO), now.get(k, ZERO))
           for k in kinds]
    return [x for x in out if x.amount] or out[:1]


def _deferred_event_lines(run: _Run) -> None:
    """The deferred event settlements the worked settlements pay, of their accounts (one not yet approved that
    holds an event settlement's current lines keeps it: ``_held_elsewhere``):

    - at season end, each deferred event settlement of the season: a line per non-zero component;
    - in any settlement, each one re-opened by a correction after its approval (``REOPENED``: its season settlement
      was approved, maybe exported) of an event before the period's end: the difference only (``_carried``), a line
      per kind whose money changed naming the event settlement, its revision and the recalculation (its batch). Its
      line belongs to the season of its event's day, so the season cap still holds it (``_season_cap_lines``).
    A run that carries none reads one query."""
    season = run.season
    program_id = run.program.pk
    cs_ids = [run.work[a].pk for a in run.accounts]
    which = REOPENED & Q(event_day__lt=run.period_end)
    if run.at_season_end:
        which |= Q(status=ES.DEFERRED, event_day__gte=season.start_date, event_day__lte=season.end_date)
    rows = list(EventSettlement.objects.filter(account_id__any=run.accounts, program=run.program).filter(which)
                .exclude(_held_elsewhere(cs_ids)).order_by("pk")
                .values_list("pk", "account_id", "enrollment_id", "service_point_id", "components", "revision",
                             "approved_at", "batch_id", "event_day", "amount", named=True))
    posted = _posted_by_kind([es.pk for es in rows if es.approved_at])
    for es in rows:
        corrected = es.approved_at is not None
        carried = _carried(es.components, posted.get(es.pk, {}) if corrected else None)
        why = f"recalculated by batch {es.batch_id}" if es.batch_id else "recalculated"
        for x in carried:
            description = (x.component["description"] if x.component else
                           f"Correction of event settlement {es.pk} revision {es.revision} (event of {es.event_day}, "
                           f"{why}): paid {format_money(x.paid)}, now {format_money(x.now)}")
            run.new[es.account_id].append(_line_row(
                account_id=es.account_id, program_id=program_id, enrollment_id=es.enrollment_id,
                service_point_id=es.service_point_id, event_settlement_id=es.pk,
                customer_settlement_id=run.work[es.account_id].pk, kind=x.kind, line_code=LINE_CODES[x.kind],
                amount=x.amount, description=description[:300], event_revision=es.revision, created_at=run.now))
        if corrected:
            paid = sum(posted.get(es.pk, {}).values(), ZERO)
            run.notes[es.account_id].append(
                f"Correction of event settlement {es.pk} (revision {es.revision}, {why}): paid {format_money(paid)}, "
                f"now {format_money(es.amount)}: {format_money(es.amount - paid)}.")


@dataclass
class _IncentiveFacts:
    """What the incentive rules of a chunk need, each read with one query: the accounts' enrollments of the period,
    the rules and their seasons, enrolled capacity, what was paid already (bonus accounts and service points,
    incentive keys), opt-out months and the season's events per enrollment."""

    enrollments: dict[int, list[_Enrollment]]
    rules: list[inc.RuleSpec]
    rule_seasons: dict[int, int | None]
    seasons_by_id: dict[int, Season]
    capacities: dict[int, inc.EnrolledCapacity]
    forfeit_month: bool
    forfeit_season: bool
    bonus_accounts: set[int]
    bonus_sps: set[int]
    account_names: dict[int, Account]
    keys: set[tuple[int, str]]
    opt_out_months: dict[int, set[dt.date]]
    season_events: dict[int, list[inc.SeasonEvent]]
    # The monthly rules a month with an opted-out event forfeits (``_forfeited_monthly``).
    forfeited_monthly: frozenset[int] = frozenset()
    # The program's counted events of the season (id, local day, hours), where a per-kW rule counts the events
    # while not enrolled as 0 kW (``_not_enrolled_events``); empty otherwise.
    program_events: list[tuple[int, dt.date, Decimal]] = field(default_factory=list)
    # The program's load-increase events of the season, where a per-kW rule applies: left out of its average
    # (``incentives.performance_kw_component``).
    increase_events: frozenset[int] = frozenset()

    @classmethod
    def load(cls, run: _Run) -> _IncentiveFacts:
        program, accounts = run.program, run.accounts
        enrollments: dict[int, list[_Enrollment]] = defaultdict(list)
        for row in (Enrollment.objects.filter(account_id__any=accounts, program=program, status__in=ENROLLED_STATUSES,
                                              effective_date__isnull=False, effective_date__lt=run.period_end)
                    .filter(Q(end_date__isnull=True) | Q(end_date__gt=run.period_start)).order_by("account_id", "id")
                    .values_list("pk", "account_id", "service_point_id", "effective_date", "end_date")):
            enrollments[row[1]].append(_Enrollment(*row))
        enrollment_ids = [e.pk for es in enrollments.values() for e in es]
        rules = rule_specs(program, kinds=CUSTOMER_KINDS)
        rule_seasons = dict(IncentiveRule.objects.filter(program=program).values_list("id", "season_id"))
        seasons_by_id = Season.objects.in_bulk([s for s in rule_seasons.values() if s])
        capacities = (enrolled_capacity(enrollment_ids, start=run.period_start, end=run.period_end)
                      if enrollment_ids else {})
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
        opt_out_months = (_opt_out_months(enrollment_ids, run.tz) if IncentiveKind.MONTHLY in kinds and (
            forfeit_month or any(r.requires_no_skipped_event for r in rules)) else {})
        season_events = (_season_events_by_enrollment(enrollment_ids, run.season, run.tz)
                         if run.at_season_end and kinds & {IncentiveKind.SEASONAL, IncentiveKind.PERFORMANCE_KW}
                         else {})
        program_events = []
        increase_events = frozenset()
        if run.at_season_end and IncentiveKind.PERFORMANCE_KW in kinds:
            season = run.season
            increase_events = frozenset(Event.objects.filter(
                program=program, direction=EventDirection.INCREASE, status__in=COUNTED_EVENT_STATUSES,
                start__gte=local_midnight(season.start_date, run.tz),
                start__lt=local_midnight(season.end_date + dt.timedelta(days=1), run.tz)).values_list("pk", flat=True))
        if run.at_season_end and any(r.kind == IncentiveKind.PERFORMANCE_KW and r.opted_out_counts_zero
                                     for r in rules):
            season = run.season
            program_events = [
                (pk, local_date(start, run.tz), Decimal(f"{(end - start).total_seconds() / 3600.0:.4f}"))
                for pk, start, end in Event.objects.filter(
                    program=program, status__in=COUNTED_EVENT_STATUSES,
                    start__gte=local_midnight(season.start_date, run.tz),
                    start__lt=local_midnight(season.end_date + dt.timedelta(days=1), run.tz))
                .order_by("start", "pk").values_list("pk", "start", "end")]
        return cls(enrollments=enrollments, rules=rules, rule_seasons=rule_seasons, seasons_by_id=seasons_by_id,
                   capacities=capacities, forfeit_month=forfeit_month, forfeit_season=forfeit_season,
                   bonus_accounts=bonus_accounts, bonus_sps=bonus_sps, account_names=account_names, keys=keys,
                   opt_out_months=opt_out_months, season_events=season_events, program_events=program_events,
                   forfeited_monthly=_forfeited_monthly(rules, forfeit_month=forfeit_month),
                   increase_events=increase_events)


def _forfeited_monthly(rules: list[inc.RuleSpec], *, forfeit_month: bool) -> frozenset[int]:
    """The monthly rules a month with an opted-out event forfeits: those that require no opted-out event
    (``requires_no_skipped_event``); where none does, every monthly rule when the program has an opt-out penalty
    rule "forfeit_month". A program that names the monthly rewards an opt-out forfeits keeps the others: Eversource
    CT EV Managed Charging pays $10 a month for off-peak charging whatever the events, and $20 a month in June-
    September "only if no event that month is opted out of" (its forfeit_month rule forfeits the $20 only)."""
    monthly = [r for r in rules if r.kind == IncentiveKind.MONTHLY]
    named = frozenset(r.rule_id for r in monthly if r.requires_no_skipped_event)
    if named or not forfeit_month:
        return named
    return frozenset(r.rule_id for r in monthly)


def _incentive_lines(run: _Run, facts: _IncentiveFacts, account_id: int) -> None:
    """The account's incentive lines, enrollment by enrollment and rule by rule (rules in kind and id order)."""
    cs = run.work[account_id]
    program_id = run.program.pk

    def line(kind, amount, description, *, enrollment, key="", quantity=None, unit="", rate=None):
        run.new[account_id].append(_line_row(
            account_id=account_id, program_id=program_id, enrollment_id=enrollment.pk, customer_settlement_id=cs.pk,
            kind=kind, line_code=LINE_CODES[kind], amount=round_money(amount), quantity=quantity, unit=unit, rate=rate,
            service_point_id=enrollment.service_point_id, description=description[:300], incentive_key=key,
            created_at=run.now))
        if key:
            facts.keys.add((enrollment.pk, key))

    enrollments = facts.enrollments.get(account_id, ())
    # A season incentive is the site's (the account's enrollments at one service point: an unenrolment and a
    # re-enrolment in the season are one site), worked once, at the site's last enrollment.
    sites: dict[int, list[_Enrollment]] = defaultdict(list)
    for enrollment in enrollments:
        sites[enrollment.service_point_id].append(enrollment)
    for enrollment in enrollments:
        capacity = facts.capacities.get(enrollment.pk, inc.EnrolledCapacity())
        site = sites[enrollment.service_point_id]
        for rule in facts.rules:
            qty, unit = inc.basis_quantity(rule.basis, capacity)
            if rule.kind == IncentiveKind.ENROLLMENT_BONUS:
                _bonus_line(run, facts, account_id, enrollment, rule, qty, unit, line)
            elif rule.kind == IncentiveKind.MONTHLY:
                _monthly_lines(run, facts, account_id, enrollment, rule, qty, unit, line)
            elif rule.kind in (IncentiveKind.SEASONAL, IncentiveKind.PERFORMANCE_KW) and enrollment is site[-1]:
                _season_incentive_line(run, facts, account_id, site, rule, capacity, line)


def _bonus_line(run: _Run, facts: _IncentiveFacts, account_id: int, enrollment: _Enrollment, rule: inc.RuleSpec,
                qty, unit: str, line) -> None:
    """The enrollment bonus, once per account or service point and program."""
    if account_id in facts.bonus_accounts or enrollment.service_point_id in facts.bonus_sps:
        run.notes[account_id].append(
            f"Enrollment bonus already paid for account {facts.account_names[account_id]} or its service point.")
        return
    line(LineKind.ENROLLMENT_BONUS, rule.amount * qty, f"Enrollment bonus {format_money(rule.amount)}"
         + (f" x {qty} {unit}" if unit else ""), enrollment=enrollment, key=f"bonus:{rule.rule_id}", quantity=qty,
         unit=unit, rate=rule.amount)
    facts.bonus_accounts.add(account_id)
    facts.bonus_sps.add(enrollment.service_point_id)


def _monthly_lines(run: _Run, facts: _IncentiveFacts, account_id: int, enrollment: _Enrollment, rule: inc.RuleSpec,
                   qty, unit: str, line) -> None:
    """A monthly incentive for each month enrolled whose first enrolled day falls in the period (in the rule's
    season, not paid before, not forfeited by an opt-out)."""
    enr_end = enrollment.end_date or dt.date.max
    rule_season = facts.rule_seasons.get(rule.rule_id)
    for month in _months(run.period_start, run.period_end):
        next_month = (month + dt.timedelta(days=32)).replace(day=1)
        first_day = max(month, enrollment.effective_date)
        if not (run.period_start <= first_day < run.period_end and first_day < min(next_month, enr_end)):
            continue
        if rule_season:
            s = facts.seasons_by_id.get(rule_season)
            if s is None or not (s.start_date < next_month and s.end_date >= month):
                continue
        key = f"monthly:{rule.rule_id}:{month:%Y-%m}"
        if (enrollment.pk, key) in facts.keys:
            continue
        if rule.rule_id in facts.forfeited_monthly and month in facts.opt_out_months.get(enrollment.pk, ()):
            run.notes[account_id].append(f"{month:%Y-%m}: monthly incentive forfeited (opted out of an event).")
            continue
        # Named by its rule too: two monthly rules of one program (an off-peak reward and a no-opt-out reward) are
        # two lines a customer and a billing clerk must tell apart.
        what = f"Monthly incentive {month:%Y-%m}" + (f": {rule.description}" if rule.description else "")
        line(LineKind.MONTHLY, rule.amount * qty, what[:300], enrollment=enrollment, key=key, quantity=qty, unit=unit,
             rate=rule.amount)


def _not_enrolled_events(facts: _IncentiveFacts, site: list[_Enrollment], seen: set[int]) -> list[inc.SeasonEvent]:
    """The program's counted events of the season on a local day after the site first enrolled on which it was
    enrolled in none of its enrollments (``[effective, end)``: after an unenrolment, between it and a re-enrolment)
    and that it took no part in: ``not_enrolled`` events (0 kW where the rule says opted-out events count zero:
    ``incentives.performance_kw_component``). Events before the site first enrolled are not its events (left out,
    as before)."""
    out = []
    first = min(e.effective_date for e in site)
    for pk, day, hours in facts.program_events:
        if pk in seen or day < first or any(
                e.effective_date <= day and (e.end_date is None or day < e.end_date) for e in site):
            continue
        out.append(inc.SeasonEvent(pk, hours, ZERO, False, None, not_enrolled=True))
    return out


def _season_incentive_line(run: _Run, facts: _IncentiveFacts, account_id: int, site: list[_Enrollment],
                           rule: inc.RuleSpec, capacity: inc.EnrolledCapacity, line) -> None:
    """At season end: the seasonal incentive or the performance per kW of the season's events, of a site (the
    account's enrollments at one service point, ``site``, in enrollment order: an unenrolment and a re-enrolment in
    the season are one site, paid once; ``incentives.site_season_events``), on its last enrollment."""
    season = run.season
    if run.period_kind != PeriodKind.SEASON_END or season is None:
        return
    rule_season = facts.rule_seasons.get(rule.rule_id)
    if rule_season and rule_season != season.pk:
        return
    enrollment = site[-1]
    events = inc.site_season_events([e for x in site for e in facts.season_events.get(x.pk, [])])
    if rule.kind == IncentiveKind.SEASONAL:
        dates = [inc.EnrollmentDates(season_start=season.start_date, season_end=season.end_date,
                                     effective=x.effective_date, end=x.end_date) for x in site]
        comp = inc.seasonal_component(rule, events, capacity, forfeit_on_any_opt_out=facts.forfeit_season,
                                      enrollment=dates)
        key = f"seasonal:{rule.rule_id}:{season.pk}"
    else:
        if rule.opted_out_counts_zero and facts.program_events:
            events = events + _not_enrolled_events(facts, site, {e.event_id for e in events})
        if facts.increase_events:
            events = [dataclasses.replace(e, reduces_load=False) if e.event_id in facts.increase_events else e
                      for e in events]
        comp = inc.performance_kw_component(rule, events,
                                            charges_negative_performance=run.program.charges_negative_performance)
        key = f"kw:{rule.rule_id}:{season.pk}"
    if any((x.pk, key) in facts.keys for x in site):
        return
    run.notes[account_id].append(f"{season.name}: {comp.description}.")
    if round_money(comp.amount):
        line(comp.kind, comp.amount, comp.description, enrollment=enrollment, key=key,
             quantity=None if comp.quantity is None else comp.quantity.quantize(Q4), unit=comp.unit, rate=comp.rate)


def _season_cap_lines(run: _Run) -> dict[int, Decimal]:
    """The net of each worked settlement; where a season cap applies, a cap line keeps each season's net within it.
    Returns the totals by account.

    A line belongs to a season by what it pays, not by the settlement that carries it (``_line_seasons``): an event
    line to the season of its event's local day, so a correction approved after the season (paid in an October
    billing period) is still capped by its season; an incentive line to its settlement's season; a cap line to the
    season it caps. For each season a worked settlement holds lines of (and its own season), the cap line is
    ``incentives.cap_adjustment`` of that season's net in the account's other settlements and in this one; it names
    the season (``incentive_key`` ``season-cap:<season id>``).

    The cap limits what the season's participation earns, not the one-time enrollment bonus: enrollment bonus lines
    are left out of the capped net (SCE Smart Energy Program: "$1.25/kWh up to $60 a year, plus the $75 enrollment
    incentive"; a customer enrolling mid-season is paid the $75 and up to $60 of event earnings)."""
    accounts = run.accounts
    cs_ids = [run.work[a].pk for a in accounts]
    totals = {a: ZERO for a in accounts}
    for cs_id, s in (SettlementLine.objects.filter(customer_settlement_id__any=cs_ids)
                     .values_list("customer_settlement_id").annotate(s=Sum("amount"))
                     .values_list("customer_settlement_id", "s").order_by()):
        totals[run.work_by_pk[cs_id]] = s or ZERO
    caps_by_season: dict[int, IncentiveRule] = {}
    default_cap = None
    for rule in IncentiveRule.objects.filter(program=run.program, kind=IncentiveKind.SEASON_CAP).order_by("pk"):
        if rule.season_id is None:
            default_cap = default_cap or rule
        else:
            caps_by_season.setdefault(rule.season_id, rule)
    if default_cap is None and not caps_by_season:
        return totals
    seasons = {s.pk: s for s in Season.objects.filter(program=run.program).order_by("start_date")}
    capped = {pk: caps_by_season.get(pk, default_cap) for pk in seasons}
    capped = {pk: rule for pk, rule in capped.items() if rule is not None}
    if not capped:
        return totals
    this: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)  # (account, season) -> net in this settlement
    prior: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)  # ... in the account's other settlements
    prior_capped: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)  # their cap lines (<= 0)
    first = min(seasons[pk].start_date for pk in capped)
    for account_id, cs_id, season_id, is_cap, s in _line_seasons(run, list(seasons.values()), cs_ids, first):
        if season_id not in capped:
            continue
        if cs_id in run.work_by_pk:
            this[(account_id, season_id)] += s
        else:
            prior[(account_id, season_id)] += s
            if is_cap:
                prior_capped[(account_id, season_id)] += s
    touched: dict[int, set[int]] = defaultdict(set)  # account -> the seasons its worked settlement holds lines of
    for account_id, season_id in this:
        touched[account_id].add(season_id)
    caps = []
    for a in accounts:
        if run.season is not None and run.season.pk in capped:
            touched[a].add(run.season.pk)
        for season_id in sorted(touched[a], key=lambda pk: seasons[pk].start_date):
            rule, key = capped[season_id], (a, season_id)
            adj = inc.cap_adjustment(prior_net=prior[key], this_net=this[key], cap=rule.amount,
                                     prior_capped=prior_capped[key])
            if not adj:
                continue
            name = seasons[season_id].name
            what = ("exceeds it" if adj < 0 else
                    f"is under it: gives back what earlier cap lines ({format_money(prior_capped[key])}) took")
            caps.append(_line_row(
                account_id=a, program_id=run.program.pk, customer_settlement_id=run.work[a].pk,
                kind=LineKind.CAP_ADJUSTMENT, line_code=LINE_CODES[LineKind.CAP_ADJUSTMENT], amount=round_money(adj),
                created_at=run.now, incentive_key=f"{CAP_KEY}{season_id}",
                description=(f"Season cap {format_money(rule.amount)} ({name}): earlier {format_money(prior[key])} "
                             f"+ this {format_money(this[key])} {what}")[:300]))
            run.notes[a].append(f"Season cap {format_money(rule.amount)} ({name}) applied: {format_money(adj)}.")
            totals[a] += round_money(adj)
    bulk.insert_dicts(SettlementLine, caps)
    return totals


CAP_KEY = "season-cap:"  # incentive_key of a cap line: the season it caps


def _line_seasons(run: _Run, seasons: list[Season], cs_ids: list[int], first: dt.date):
    """The capped lines (enrollment bonus aside) of the run's settlements, and of the accounts' other settlements in
    the program that end after ``first`` (the earliest capped season's start), summed by ``(account, customer
    settlement, season, is a cap line)``; two queries. Season of a line: a cap line's ``season-cap:<id>`` key (or,
    written before the key, its settlement's season); an event line's event day within a season's dates (``None``
    outside every season); any other line its settlement's season (the run's season for the run's settlements,
    which are written with it after their lines: ``_save_totals``)."""
    event_season = Case(*[When(event_settlement__event_day__gte=s.start_date,
                               event_settlement__event_day__lte=s.end_date, then=Value(s.pk)) for s in seasons],
                        default=Value(None), output_field=IntegerField())
    labels = {"ev_season": event_season, "is_event": Q(event_settlement__isnull=False),
              "is_cap": Q(kind=LineKind.CAP_ADJUSTMENT),
              "cap_key": Case(When(kind=LineKind.CAP_ADJUSTMENT, then=F("incentive_key")), default=Value(""))}
    fields = ("is_event", "ev_season", "is_cap", "cap_key")
    this_season = run.season.pk if run.season else None
    rows = [(run.work_by_pk[cs_id], cs_id, this_season, *rest) for cs_id, *rest in (
        SettlementLine.objects.filter(customer_settlement_id__any=cs_ids).exclude(kind__in=UNCAPPED_KINDS)
        .annotate(**labels).values_list("customer_settlement_id", *fields).annotate(s=Sum("amount")).order_by())]
    rows += (SettlementLine.objects.filter(account_id__any=run.accounts, program=run.program,
                                           customer_settlement__period_end__gt=first)
             .exclude(customer_settlement_id__any=cs_ids).exclude(kind__in=UNCAPPED_KINDS).annotate(**labels)
             .values_list("account_id", "customer_settlement_id", "customer_settlement__season_id", *fields)
             .annotate(s=Sum("amount")).order_by())
    for account_id, cs_id, cs_season, is_event, ev_season, is_cap, cap_key, s in rows:
        if is_cap:
            season_id = int(cap_key[len(CAP_KEY):]) if cap_key.startswith(CAP_KEY) else cs_season
        elif is_event:
            season_id = ev_season
        else:
            season_id = cs_season
        yield account_id, cs_id, season_id, bool(is_cap), s or ZERO


def _save_totals(run: _Run, facts: _IncentiveFacts, totals: dict[int, Decimal], *, actor: Any) -> None:
    """Store each worked settlement's total, inputs and explanation and move PENDING ones to CALCULATED: the new
    ones inserted in one COPY, the others updated in one UPDATE of rows (no model instances); audit each, written
    as rows in one insert (``customer_settlement.calculated``, or ``customer_settlement.recalculated`` for one that
    existed before)."""
    moved, recalculated, rows, new = [], [], {}, []
    season_id = run.season.pk if run.season else None
    created = {"program_id": run.program.pk, "period_kind": run.period_kind, "period_start": run.period_start,
               "period_end": run.period_end, "batch_id": run.batch.pk if run.batch else None, "export_batch_id": None,
               "approved_at": None, "exported_at": None, "created_at": run.now}
    period = f"{run.period_kind} {run.period_start}..{run.period_end}"
    for a in run.accounts:
        cs = run.work[a]
        total = totals[a]
        notes = run.notes.get(a, [])
        money = format_money(total)
        status = cs.status
        if status == CS.PENDING:
            check_transition(allowed=CUSTOMER_SETTLEMENT_TRANSITIONS, current=status, to=CS.CALCULATED,
                             label=f"Customer settlement #{cs.pk}")
            moved.append((cs.pk, CS.PENDING, CS.CALCULATED, f"{period}: {money}"))
            status = CS.CALCULATED
        elif a in run.before:
            recalculated.append((cs.pk, "", "", f"recalculated: {money}"))
        inputs = {"enrollments": [e.pk for e in facts.enrollments.get(a, ())], "notes": notes, "season": season_id}
        row = {"total_amount": total, "inputs": bulk.RawJson(json.dumps(inputs)),
               "explanation": " ".join([*notes, f"Total {money}."]), "status": status}
        if a in run.before:
            rows[cs.pk] = row
        else:
            new.append({"id": cs.pk, "account_id": a, **created, **row})
    constant = {"season_id": season_id, "calculated_at": run.now, "updated_at": run.now}
    # The new settlements, written once with their totals (ids reserved by ``_lock_settlements``).
    bulk.insert_dicts(CustomerSettlement, [{**row, **constant} for row in new])
    # One UPDATE for the others' totals and PENDING -> CALCULATED moves (checked above): the rows are locked by
    # this transaction since the select_for_update, so no status changes under it.
    bulk.update_rows(CustomerSettlement, rows, ["total_amount", "inputs", "explanation", "status"], constant=constant)
    audit_rows(model=CustomerSettlement, rows=moved, now=run.now, actor=actor)
    audit_rows(model=CustomerSettlement, rows=recalculated, now=run.now, actor=actor, action="update",
               code="customer_settlement.recalculated")


@use_case("customer_settlement.approve", Cap.APPROVE_SETTLEMENTS)
def customer_settlement_approve(*, settlement: CustomerSettlement, now: dt.datetime,
                                actor: Any) -> CustomerSettlement:
    """Approve a CALCULATED customer settlement (and the deferred event settlements it pays: at season end, or the
    corrections it carries, which are then posted at their corrected amount). Idempotent. Raises ``ConflictError``
    when a deferred event line it holds no longer matches its event settlement (``_check_deferred_lines``)."""
    with transaction.atomic():
        cs = CustomerSettlement.objects.select_for_update().get(pk=settlement.pk)
        if cs.status in (CS.APPROVED, CS.EXPORTED):
            return cs
        deferred = list(EventSettlement.objects.select_for_update().filter(
            pk__in=SettlementLine.objects.filter(customer_settlement=cs, event_settlement__isnull=False)
            .values("event_settlement_id")).exclude(status=ES.APPROVED).filter(
            Q(status=ES.DEFERRED) | Q(approved_at__isnull=True)).order_by("pk"))
        _check_deferred_lines(cs, deferred)
        transition(obj=cs, to=CS.APPROVED, allowed=CUSTOMER_SETTLEMENT_TRANSITIONS, now=now, actor=actor,
                   reason=format_money(cs.total_amount), extra_updates={"approved_at": now})
        for es in deferred:
            reason = (f"paid at season end by customer settlement {cs.pk}" if es.approved_at is None else
                      f"correction (revision {es.revision}) carried by customer settlement {cs.pk}")
            transition(obj=es, to=ES.APPROVED, allowed=EVENT_SETTLEMENT_TRANSITIONS, now=now, actor=actor,
                       reason=reason, extra_updates={"approved_at": now})
            es.posted_amount = es.lines.aggregate(s=Sum("amount"))["s"] or ZERO
            EventSettlement.objects.filter(pk=es.pk).update(posted_amount=es.posted_amount)
    return cs


def _check_deferred_lines(cs: CustomerSettlement, deferred: list[EventSettlement]) -> None:
    """Refuse to approve a customer settlement whose deferred event lines no longer are their event settlements'
    money (the event settlement was recalculated, or went back to PENDING, after this settlement was calculated):
    approving would pay the old amount and mark the event settlement approved with it. Raises ``ConflictError``
    naming the event settlements; recalculating the customer settlement brings its lines up to date."""
    if not deferred:
        return
    held: dict[int, list] = defaultdict(list)
    for es_id, kind, amount in SettlementLine.objects.filter(
            customer_settlement=cs, event_settlement_id__any=[es.pk for es in deferred],
            event_revision=F("event_settlement__revision")).values_list("event_settlement_id", "kind", "amount"):
        held[es_id].append((kind, amount))
    posted = _posted_by_kind([es.pk for es in deferred if es.approved_at])
    stale = [es for es in deferred if es.status != ES.DEFERRED or sorted(held[es.pk]) != sorted(
        (x.kind, x.amount) for x in _carried(es.components, posted.get(es.pk, {}) if es.approved_at else None))]
    if stale:
        names = ", ".join(f"event settlement {es.pk} ({es.get_status_display()}, {format_money(es.amount)})"
                          for es in stale)
        raise ConflictError(f"Customer settlement {cs.pk} holds lines that no longer match {names}: it changed "
                            "after this settlement was calculated. Recalculate the customer settlement, then "
                            "approve it.", field="settlement")


@use_case("customer_settlements.approve", Cap.APPROVE_SETTLEMENTS)
def customer_settlements_approve(*, settlements, now: dt.datetime, actor: Any) -> int:
    """Approve many customer settlements (admin bulk action), each as ``customer_settlement_approve`` (one audit
    entry per settlement); returns how many were approved now."""
    done = 0
    for cs in settlements:
        if cs.status == CS.CALCULATED:
            customer_settlement_approve(settlement=cs, now=now, actor=actor)
            done += 1
    return done


def _accounts_for(program: Program, start: dt.date, end: dt.date, *, period_kind: str | None = None,
                  first: int | None = None, last: int | None = None) -> list[int]:
    """Sorted ids of the accounts enrolled in ``program`` during ``[start, end)`` (not for an ADJUSTMENT
    ``period_kind``), of the accounts holding approved event lines of the program not yet in a customer settlement
    and of those holding a correction to carry (``REOPENED`` event settlements that no unapproved customer
    settlement holds), events before ``end``: a correction approved after the customer left (final bill done, no
    longer enrolled), or made after the season settlement was approved, is paid or taken back by the next
    settlement, not left unclaimed. ``first``/``last``: only the ids in that inclusive range (a chunk reads its own
    accounts, not the program's)."""
    unclaimed = SettlementLine.objects.filter(
        program=program, customer_settlement__isnull=True, event_settlement__isnull=False,
        event_settlement__event__start__lt=local_midnight(end, zone(program.time_zone)))
    reopened = EventSettlement.objects.filter(REOPENED, program=program, event_day__lt=end).exclude(_held_elsewhere())
    queries = [unclaimed, reopened]
    if period_kind != PeriodKind.ADJUSTMENT:
        queries.append(Enrollment.objects.filter(program=program, status__in=ENROLLED_STATUSES, effective_date__lt=end)
                       .filter(Q(end_date__isnull=True) | Q(end_date__gt=start)))
    if first is not None:
        queries = [qs.filter(account_id__gte=first) for qs in queries]
    if last is not None:
        queries = [qs.filter(account_id__lte=last) for qs in queries]
    return sorted({a for qs in queries for a in qs.values_list("account_id", flat=True).order_by()})


def customer_batch_start(*, program: Program, kind: str, period_kind: str, period_start: dt.date,
                         period_end: dt.date, season: Season | None, now: dt.datetime,
                         actor: Any) -> SettlementBatch:
    """Start a batch calculating the customer settlements of every account enrolled in ``[period_start,
    period_end)`` (of an adjustment: only the accounts with corrections to carry; ``_accounts_for``), in chunks of
    accounts; a batch for the same program and period is returned as it is.
    A step of ``season_settle`` and ``customer_settlements_create_due`` (which checked the actor)."""
    from ..tasks import settle_customer_chunk

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
            accounts = _accounts_for(program, period_start, period_end, period_kind=period_kind)
            ranges = chunks(accounts, settings.CPM_CHUNK_SIZE)
            audit_record(obj=batch, action="create", now=now, actor=actor,
                         reason=f"{period_kind} {period_start}..{period_end}: {len(accounts)} accounts")
            batch_run_chunks(batch, job_kind=f"{kind}_settlement", task_name=settle_customer_chunk.name,
                             chunk_kwargs=[{"batch_id": batch.pk, "account_first": a, "account_last": b,
                                            "period_kind": period_kind, "now": now.isoformat()} for a, b in ranges],
                             items=len(accounts), now=now, actor=actor)
    except IntegrityError:
        return SettlementBatch.objects.get(**lookup)
    return batch


def customer_settle_chunk(*, batch: SettlementBatch, account_first: int, account_last: int, period_kind: str,
                          now: dt.datetime, actor: Any, errors: list[dict] | None = None) -> dict[str, int]:
    """Calculate the customer settlements of the batch's accounts ``account_first..account_last`` in one
    transaction (``customer_settlements_calculate``'s check and calculation, without reading the settlements back);
    if that fails, account by account, so one account's failure does not stop the others: each is appended to
    ``errors`` as ``{account_id, error}`` (the task records them on the batch with the chunk's counts; without
    ``errors`` they are added to the batch here). An internal step of the batch (checked when it started): run by
    its Celery task with that task's system actor, which the calculation checks and audits."""
    program = batch.program
    accounts = _accounts_for(program, batch.period_start, batch.period_end, period_kind=period_kind,
                             first=account_first, last=account_last)
    common = {"program": program, "period_kind": period_kind, "period_start": batch.period_start,
              "period_end": batch.period_end, "season": batch.season, "now": now, "actor": actor,
              "batch": batch}
    # The use case's capability check, then its calculation without reading the settlements back.
    require(actor, customer_settlements_calculate.capabilities, use_case=customer_settlements_calculate.use_case)
    try:
        _settlements_calculate(account_ids=accounts, **common)
        return {"calculated": len(accounts), "failed": 0}
    except Exception:  # isolate the failing account(s) below
        log.exception("customer settlement chunk %s..%s failed; retrying account by account", account_first,
                      account_last)
    counts = {"calculated": 0, "failed": 0}
    found: list[dict] = []
    for account in Account.objects.filter(pk__in=accounts).order_by("pk"):
        try:
            customer_settlement_calculate(account=account, **common)
            counts["calculated"] += 1
        except Exception as exc:  # noqa: BLE001 - one account's failure must not stop the others; on the batch
            log.exception("customer settlement failed for account %s", account.pk)
            counts["failed"] += 1
            found.append({"account_id": account.pk, "error": f"account {account}: {type(exc).__name__}: {exc}"})
    if errors is not None:
        errors.extend(found)
    elif found:
        batch_errors_add(batch_id=batch.pk, errors=found)
    return counts


@use_case("season.settle", Cap.RUN_SETTLEMENT)
def season_settle(*, program: Program, season: Season, now: dt.datetime, actor: Any) -> SettlementBatch:
    """Season-end customer settlements for every account of the program (idempotent: one batch per season).
    Raises ``ConflictError`` before the season has ended (local date in the program's zone)."""
    if local_date(now, zone(program.time_zone)) <= season.end_date:
        raise ConflictError(f"Season {season} ends on {season.end_date}; settle it after that.", field="season")
    return customer_batch_start(program=program, kind=BatchKind.SEASON, period_kind=PeriodKind.SEASON_END,
                                period_start=season.start_date, period_end=season.end_date + dt.timedelta(days=1),
                                season=season, now=now, actor=actor)


@use_case("customer_settlements.create_due", Cap.RUN_SETTLEMENT)
def customer_settlements_create_due(*, now: dt.datetime, actor: Any) -> list:
    """Create what has come due: season-end settlements of ended seasons, last calendar month's billing-period
    settlements of after-event programs (a monthly billing cycle until billing cycles are fed to cpm), last calendar
    month's adjustments of season-end programs when a correction waits to be carried (an event settlement corrected
    after its season settlement was approved, or approved event lines not yet in a customer settlement) and final
    bills of enrollments that ended. Idempotent: existing batches and settlements are left as they are."""
    started = []
    for program in Program.objects.exclude(status="draft"):
        today = local_date(now, zone(program.time_zone))
        for season in Season.objects.filter(program=program, end_date__lt=today,
                                            end_date__gte=today - dt.timedelta(days=366)):
            if program.settlement_timing == SettlementTiming.SEASON_END or program.incentive_rules.filter(
                    kind__in=[IncentiveKind.SEASONAL, IncentiveKind.PERFORMANCE_KW, IncentiveKind.SEASON_CAP]
            ).exists():
                started.append(season_settle(program=program, season=season, now=now, actor=actor))
        this_month = today.replace(day=1)
        last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
        if program.settlement_timing == SettlementTiming.AFTER_EVENT:
            started.append(customer_batch_start(program=program, kind=BatchKind.CUSTOMER,
                                                period_kind=PeriodKind.BILLING_PERIOD, period_start=last_month,
                                                period_end=this_month, season=None, now=now, actor=actor))
        elif _accounts_for(program, last_month, this_month, period_kind=PeriodKind.ADJUSTMENT):
            started.append(customer_batch_start(program=program, kind=BatchKind.CUSTOMER,
                                                period_kind=PeriodKind.ADJUSTMENT, period_start=last_month,
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
                    .exclude(period_kind=PeriodKind.ADJUSTMENT)
                    .order_by("-period_end").values_list("period_end", flat=True).first())
            start = max(last or enrollment.effective_date, enrollment.effective_date)
            if start < enrollment.end_date:
                started.append(customer_settlement_calculate(
                    account=enrollment.account, program=program, period_kind=PeriodKind.FINAL_BILL,
                    period_start=start, period_end=enrollment.end_date, now=now, actor=actor))
    return started


# --------------------------------------------------------------------------------------------------- export

