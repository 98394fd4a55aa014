"""Reads for the CSR page, each a fixed number of queries whatever the customer's size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, Q

from cpm.base.replica import replica_reads
from cpm.models import AuditEntry
from cpm.notifications.models import ContactPreference
from cpm.notifications.selectors import message_list
from devices.models import Device, DeviceInstallation, ServicePoint
from enrollments.models import Account, Customer, Enrollment, ServiceAgreement, name_key
from events.models import Unavailability
from events.selectors import DeviceEventHistory, UpcomingParticipation, device_event_history, upcoming_participations
from programs.choices import ProgramStatus
from programs.models import Program, Season
from settlement.models import CustomerSettlement, EventSettlement

SEARCH_LIMIT = 50
#: The shortest query searched (a single character would match a large share of every name and number).
SEARCH_MIN_LENGTH = 2


def search_query(query: str) -> str:
    """``query`` as searched: a typographic apostrophe (a name pasted from an e-mail: O’Brien) read as "'", a NUL
    character dropped (it cannot be sent to PostgreSQL: it raised, an HTTP 500), spaces around stripped."""
    return (query or "").replace("\u2019", "'").replace("\u2018", "'").replace("\x00", "").strip()


@replica_reads
def customer_search(*, query: str, limit: int = SEARCH_LIMIT) -> list[Customer]:
    """Customers matching ``query`` by name, account number or meter number (in full or a prefix: ``ACC-17`` finds
    ``ACC-1717``; case-insensitive), service point id or device serial (in full, exact), street address or city
    (prefix; case-insensitive), at most ``limit``, ordered by last and first name.

    Names match without accents or case, the same on SQLite and PostgreSQL: the query folded by
    ``enrollments.models.name_key`` is a prefix of the last name's or first name's stored key (``elodie``,
    ``ÉLODIE`` and ``élodie`` find Élodie; ``nunez`` finds Núñez; "van bu" finds Van Buren), or, for several
    words, the first word a prefix of the first name and the last word of the last name ("elodie lef"). Each probe
    is one indexed query of at most ``limit`` rows (PostgreSQL: the ``*_name_key`` pattern-ops indexes for names,
    ``UPPER(col) text_pattern_ops`` indexes for numbers, addresses and cities: enrollments and devices migrations):
    a fixed number of queries however many customers match."""
    q = search_query(query)
    if len(q) < SEARCH_MIN_LENGTH:
        return []
    ids: set[int] = set()
    # .order_by(): id probes need no sort (the models' default orderings would sort through joins).
    ids.update(Account.objects.filter(account_number__istartswith=q).order_by()
               .values_list("customer_id", flat=True)[:limit])
    sp_ids = set(ServicePoint.objects.filter(Q(service_point_id=q) | Q(meter_number__istartswith=q)).order_by()
                 .values_list("id", flat=True)[:limit])
    sp_ids.update(DeviceInstallation.objects.filter(device__serial_number=q).order_by()
                  .values_list("service_point_id", flat=True))
    by_address = (ServicePoint.objects.filter(premise__address_line1__istartswith=q).order_by()
                  .values_list("id", flat=True))
    sp_ids.update(by_address[:limit])
    by_city = (ServicePoint.objects.filter(premise__city__istartswith=q).order_by()
               .values_list("id", flat=True))
    sp_ids.update(by_city[:limit])
    if sp_ids:
        ids.update(ServiceAgreement.objects.filter(service_point_id__in=sp_ids).order_by()
                   .values_list("account__customer_id", flat=True))
    # A query (or word) of nothing but accents folds to "": it names no one (a "" prefix would match everyone).
    key, parts = name_key(q), q.split()
    name_q = Q(cis_person_id=q)
    if key:
        name_q |= Q(last_name_key__startswith=key) | Q(first_name_key__startswith=key)
    first, last = name_key(parts[0]), name_key(parts[-1])
    if len(parts) > 1 and first and last:
        name_q |= Q(first_name_key__startswith=first, last_name_key__startswith=last)
    ids.update(Customer.objects.filter(name_q).order_by().values_list("id", flat=True)[:limit])
    return list(Customer.objects.filter(id__in=ids).prefetch_related("accounts").order_by("last_name", "first_name")
                [:limit])


@dataclass
class DeviceHistory:
    """A device on the page with its event history (``events.selectors.device_event_history``)."""

    device: Device
    service_point: ServicePoint
    history: DeviceEventHistory

    @property
    def rows(self):
        return self.history.rows

    @property
    def success_rate(self) -> float | None:
        return self.history.success_rate


ENROLLED, ELIGIBLE, NOT_ELIGIBLE, NOT_OFFERED = "enrolled", "eligible", "not_eligible", "not_offered"


@dataclass
class EligibilityLine:
    """One program at one service point of one account, for the CSR page: ``state`` is ``enrolled`` (the service
    point is in the program: ``enrollment``), ``eligible``, ``not_eligible`` (``reasons``) or ``not_offered`` (the
    program is another utility's: its service territories do not include the service point's)."""

    account: Account
    program: Program
    service_point_label: str
    service_point_id: int
    eligible: bool
    reasons: list
    devices: list[Device]
    questions: list
    state: str = ""
    enrollment: Enrollment | None = None


def _line_state(line, enrollments: dict[int, Enrollment]) -> tuple[str, Enrollment | None]:
    from enrollments.eligibility import ALREADY_ENROLLED, TERRITORY_NOT_ELIGIBLE

    if line.eligible:
        return ELIGIBLE, None
    enrolled = next((r for r in line.reasons if r.code == ALREADY_ENROLLED), None)
    if enrolled is not None:
        return ENROLLED, enrollments.get(enrolled.enrollment_id)
    if any(r.code == TERRITORY_NOT_ELIGIBLE for r in line.reasons):
        return NOT_OFFERED, None
    return NOT_ELIGIBLE, None


def customer_eligibility(*, accounts: list[Account], now: dt.datetime,
                         enrollments: list[Enrollment] = ()) -> list[EligibilityLine]:
    """Every program (not drafts) for each open account: enrolled, eligible, not eligible (with the reasons in plain
    language) or not offered here (another utility's territory). ``enrollments``: the customer's, already read."""
    from enrollments.selectors import account_eligibility_today, program_days

    by_id = {e.pk: e for e in enrollments}

    programs = {p.pk: p for p in Program.objects.exclude(status=ProgramStatus.DRAFT).prefetch_related("questions")}
    lines: list[EligibilityLine] = []
    device_ids: set[int] = set()
    raw = []
    days = program_days(now=now)  # each program on its own today, in its zone
    for account in accounts:
        for line in account_eligibility_today(account=account, now=now, days=days):
            raw.append((account, line))
            device_ids.update(line.eligible_device_ids)
    devices = Device.objects.in_bulk(device_ids)
    for account, line in raw:
        program = programs[line.program.id]
        state, enrollment = _line_state(line, by_id)
        lines.append(EligibilityLine(
            account=account, program=program, service_point_label=line.site.service_point_label,
            service_point_id=line.site.service_point_id, eligible=line.eligible, reasons=line.reasons,
            devices=[devices[i] for i in line.eligible_device_ids if i in devices],
            questions=list(program.questions.all()), state=state, enrollment=enrollment))
    return lines


@dataclass
class SeasonTotal:
    """What the customer's accounts earned in one program in one season (``season`` None: outside any season)."""

    program: Program
    season: Season | None
    events: int = 0
    kwh_avoided: Decimal = Decimal("0")
    event_credits: Decimal = Decimal("0")
    bill_credits: Decimal = Decimal("0")

    @property
    def label(self) -> str:
        if self.season is None:
            return "Outside any season"
        return f"{self.season.name} ({self.season.start_date} – {self.season.end_date})"


def season_totals(*, event_settlements: list, customer_settlements: list) -> list[SeasonTotal]:
    """Per program and season: events settled, kWh avoided and event credits (reversed settlements excluded), and
    the bill credits of the season's customer settlements. Exact decimal sums; one query (the seasons)."""
    program_ids = {s.program_id for s in event_settlements} | {c.program_id for c in customer_settlements}
    seasons: dict[int, list[Season]] = {}
    for season in Season.objects.filter(program_id__in=program_ids).order_by("start_date"):
        seasons.setdefault(season.program_id, []).append(season)
    totals: dict[tuple[int, int | None], SeasonTotal] = {}

    def total_for(program, season) -> SeasonTotal:
        key = (program.pk, season.pk if season else None)
        if key not in totals:
            totals[key] = SeasonTotal(program=program, season=season)
        return totals[key]

    for s in event_settlements:
        if s.status == "reversed":
            continue
        season = next((x for x in seasons.get(s.program_id, []) if x.contains(s.event_day)), None)
        total = total_for(s.program, season)
        total.events += 1
        total.kwh_avoided += s.kwh_avoided
        total.event_credits += s.amount
    by_pk = {x.pk: x for xs in seasons.values() for x in xs}
    for c in customer_settlements:
        season = by_pk.get(c.season_id) if c.season_id else next(
            (x for x in seasons.get(c.program_id, []) if x.contains(c.period_start)), None)
        total_for(c.program, season).bill_credits += c.total_amount
    return sorted(totals.values(), key=lambda t: (t.program.name, t.season.start_date if t.season else dt.date.min))


@dataclass
class CustomerPage:
    customer: Customer
    accounts: list[Account]
    agreements: list[ServiceAgreement]
    service_points: list[ServicePoint]
    devices: list[DeviceHistory]
    enrollments: list[Enrollment]
    status_history: dict[int, list[AuditEntry]]
    upcoming: list[UpcomingParticipation]
    unavailability: list[Unavailability]
    eligibility: list[EligibilityLine]
    event_settlements: list
    customer_settlements: list
    season_totals: list[SeasonTotal] = ()
    messages: list = ()
    contact_preferences: list = ()

    @property
    def enrolled_programs(self) -> list:
        """The programs of the customer's enrollments, each once (a customer may hold several enrollments in one
        program: two service points, or enrolled again after one ended), by name."""
        by_pk = {e.program_id: e.program for e in self.enrollments}
        return sorted(by_pk.values(), key=lambda p: (p.name, p.pk))

    @property
    def offered(self) -> list[EligibilityLine]:
        return [line for line in self.eligibility if line.state != NOT_OFFERED]

    @property
    def not_offered(self) -> list[EligibilityLine]:
        return [line for line in self.eligibility if line.state == NOT_OFFERED]


def enrollment_history_text(entry: AuditEntry) -> str:
    """What one audit entry of an enrollment did: "requested→active" (``tests/cpm/test_csr_money_dates_search.py``
    asserts the codes), "new→requested" for a first status, or the action ("Created") when the entry changed no
    status (it read "new→" with nothing after the arrow)."""
    if entry.to_status:
        return f"{entry.from_status or 'new'}→{entry.to_status}"
    return _ACTION_WORDS.get(entry.action, (entry.action or "changed").replace("_", " ").capitalize())


_ACTION_WORDS = {"create": "Created", "update": "Changed", "delete": "Deleted"}


#: The customer's latest messages shown on the page (all are in the admin).
MESSAGES_SHOWN = 50


@replica_reads
def customer_page(*, customer_id: int, now: dt.datetime) -> CustomerPage:
    """Everything the CSR page shows for one customer (raises ``Customer.DoesNotExist``)."""
    customer = Customer.objects.get(pk=customer_id)
    accounts = list(Account.objects.filter(customer=customer).order_by("account_number"))
    agreements = list(ServiceAgreement.objects.filter(account__in=accounts)
                      .select_related("service_point__premise", "account").order_by("-start_date"))
    sp_by_id = {a.service_point_id: a.service_point for a in agreements}
    installs = list(DeviceInstallation.objects.filter(service_point_id__in=sp_by_id, removed_on__isnull=True)
                    .select_related("device__aggregator", "service_point"))
    enrollments = list(Enrollment.objects.filter(account__in=accounts)
                       .select_related("program", "service_point", "account")
                       .prefetch_related(Prefetch("subscriptions")).order_by("-requested_at"))
    history: dict[int, list[AuditEntry]] = {}
    for entry in AuditEntry.objects.filter(object_type="enrollments.enrollment",
                                           object_id__in=[str(e.pk) for e in enrollments]).order_by("at", "id"):
        history.setdefault(int(entry.object_id), []).append(entry)
    for e in enrollments:
        e.audit_entries = history.get(e.pk, [])
        for entry in e.audit_entries:
            entry.status_text = enrollment_history_text(entry)
    histories = device_event_history(device_ids=[i.device_id for i in installs], now=now)
    devices = [DeviceHistory(device=i.device, service_point=i.service_point, history=histories[i.device_id])
               for i in installs]
    upcoming = upcoming_participations(enrollment_ids=[e.pk for e in enrollments], now=now)
    unavailability = list(Unavailability.objects.filter(enrollment__in=enrollments, end__gt=now)
                          .select_related("device", "enrollment__program").order_by("start"))
    event_settlements = list(EventSettlement.objects.filter(account__in=accounts)
                             .select_related("event", "program", "device").order_by("-event_day", "-id"))
    customer_settlements = list(CustomerSettlement.objects.filter(account__in=accounts)
                                .select_related("program", "account").order_by("-period_end", "-id"))
    return CustomerPage(customer=customer, accounts=accounts, agreements=agreements,
                        service_points=list(sp_by_id.values()), devices=devices,
                        enrollments=enrollments, status_history=history, upcoming=upcoming,
                        unavailability=unavailability,
                        event_settlements=event_settlements, customer_settlements=customer_settlements,
                        season_totals=season_totals(event_settlements=event_settlements,
                                                    customer_settlements=customer_settlements),
                        eligibility=customer_eligibility(accounts=[a for a in accounts if a.status == "open"],
                                                         now=now, enrollments=enrollments),
                        messages=list(message_list(customer=customer)[:MESSAGES_SHOWN]),
                        contact_preferences=list(ContactPreference.objects.filter(customer=customer)
                                                 .select_related("program").order_by("program_id")))
