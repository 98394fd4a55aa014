"""Reads for the CSR page, each a fixed number of queries whatever the customer's size."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Prefetch, Q

from cpm.models import AuditEntry
from devices.models import Device, DeviceInstallation, ServicePoint
from enrollments.models import Account, Customer, Enrollment, ServiceAgreement
from events.models import Unavailability
from events.selectors import DeviceEventHistory, UpcomingParticipation, device_event_history, upcoming_participations
from programs.choices import ProgramStatus
from programs.models import Program
from settlement.models import CustomerSettlement, EventSettlement

SEARCH_LIMIT = 50


def customer_search(*, query: str, limit: int = SEARCH_LIMIT) -> list[Customer]:
    """Customers matching ``query`` by name (prefix, case-insensitive), account number, service point id, meter
    number, device serial (exact) or street address (prefix). Each probe is one indexed query."""
    q = (query or "").strip()
    if len(q) < 2:
        return []
    ids: set[int] = set()
    # .order_by(): id probes need no sort (the models' default orderings would sort through joins).
    ids.update(Account.objects.filter(account_number=q).order_by().values_list("customer_id", flat=True))
    sp_ids = set(ServicePoint.objects.filter(Q(service_point_id=q) | Q(meter_number=q)).order_by()
                 .values_list("id", flat=True))
    sp_ids.update(DeviceInstallation.objects.filter(device__serial_number=q).order_by()
                  .values_list("service_point_id", flat=True))
    by_address = (ServicePoint.objects.filter(premise__address_line1__istartswith=q).order_by()
                  .values_list("id", flat=True))
    sp_ids.update(by_address[:limit])
    if sp_ids:
        ids.update(ServiceAgreement.objects.filter(service_point_id__in=sp_ids).order_by()
                   .values_list("account__customer_id", flat=True))
    parts = q.split()
    name_q = Q(last_name__istartswith=parts[-1])
    if len(parts) > 1:
        name_q &= Q(first_name__istartswith=parts[0])
    name_q |= Q(last_name__iexact=q) | Q(cis_person_id=q)
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


@dataclass
class EligibilityLine:
    """One program at one service point of one account, for the CSR page."""

    account: Account
    program: Program
    service_point_label: str
    service_point_id: int
    eligible: bool
    reasons: list
    devices: list[Device]
    questions: list


def customer_eligibility(*, accounts: list[Account], on: dt.date) -> list[EligibilityLine]:
    """Every program (not drafts) for each open account: eligible or not, with the reasons in plain language."""
    from enrollments.selectors import account_eligibility

    programs = {p.pk: p for p in Program.objects.exclude(status=ProgramStatus.DRAFT).prefetch_related("questions")}
    lines: list[EligibilityLine] = []
    device_ids: set[int] = set()
    raw = []
    for account in accounts:
        for line in account_eligibility(account=account, on=on):
            raw.append((account, line))
            device_ids.update(line.eligible_device_ids)
    devices = Device.objects.in_bulk(device_ids)
    for account, line in raw:
        program = programs[line.program.id]
        lines.append(EligibilityLine(
            account=account, program=program, service_point_label=line.site.service_point_label,
            service_point_id=line.site.service_point_id, eligible=line.eligible, reasons=line.reasons,
            devices=[devices[i] for i in line.eligible_device_ids if i in devices],
            questions=list(program.questions.all())))
    return lines


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
    histories = device_event_history(device_ids=[i.device_id for i in installs], now=now)
    devices = [DeviceHistory(device=i.device, service_point=i.service_point, history=histories[i.device_id])
               for i in installs]
    upcoming = upcoming_participations(enrollment_ids=[e.pk for e in enrollments], now=now)
    unavailability = list(Unavailability.objects.filter(enrollment__in=enrollments, end__gt=now)
                          .select_related("device", "enrollment__program").order_by("start"))
    return CustomerPage(customer=customer, accounts=accounts, agreements=agreements,
                        service_points=list(sp_by_id.values()), devices=devices,
                        enrollments=enrollments, status_history=history, upcoming=upcoming,
                        unavailability=unavailability,
                        event_settlements=list(EventSettlement.objects.filter(account__in=accounts)
                                               .select_related("event", "program", "device")
                                               .order_by("-event_day", "-id")),
                        customer_settlements=list(CustomerSettlement.objects.filter(account__in=accounts)
                                                  .select_related("program", "account")
                                                  .order_by("-period_end", "-id")),
                        eligibility=customer_eligibility(accounts=[a for a in accounts if a.status == "open"],
                                                         on=now.date()))
