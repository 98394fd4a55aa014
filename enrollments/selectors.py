"""Read path of the enrollments app: list querysets with their joins, aggregator scoping, and the fact gathering
behind the eligibility engine (a constant number of queries whatever the number of programs, points or devices).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Prefetch, Q, QuerySet

from cpm.base.errors import ConflictError
from cpm.base.timeutils import local_date, zone
from devices.models import Device, DeviceInstallation, ServicePoint
from devices.selectors import aggregator_of
from programs.choices import ProgramStatus
from programs.models import MutualExclusion, Program, QualificationQuestion

from . import eligibility as el
from .choices import OPEN_ENROLLMENT_STATUSES, EnrollmentStatus
from .models import Account, Customer, Enrollment, ProgramSubscription, ServiceAgreement

# --- list querysets -------------------------------------------------------------------------------------------


def enrollment_list(*, user=None) -> QuerySet[Enrollment]:
    """Enrollments with account, customer, service point, program and subscriptions (with devices).

    An aggregator's API client sees only enrollments subscribing one of its devices, and in them only its devices'
    subscriptions (a site may enroll another aggregator's device too).
    """
    aggregator = aggregator_of(user)
    subscriptions = ProgramSubscription.objects.select_related("device")
    if aggregator is not None:
        subscriptions = subscriptions.filter(device__aggregator=aggregator)
    qs = Enrollment.objects.select_related("account", "account__customer", "service_point", "program")
    qs = qs.prefetch_related(Prefetch("subscriptions", queryset=subscriptions))
    if aggregator is not None:
        qs = qs.filter(pk__in=ProgramSubscription.objects.filter(device__aggregator=aggregator)
                       .values("enrollment_id"))
    return qs


def subscription_list(*, user=None) -> QuerySet[ProgramSubscription]:
    # The model's ordering ("enrollment", ...) expands to the enrollment's ordering (-requested_at): a sort of every
    # subscription through the join. Newest enrollment by id first walks the enrollment_id index instead.
    qs = ProgramSubscription.objects.select_related("enrollment", "enrollment__program", "device",
                                                    "device__aggregator").order_by("-enrollment_id", "start_date",
                                                                                   "id")
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(device__aggregator=aggregator)
    return qs


def _aggregator_account_ids(aggregator):
    return ProgramSubscription.objects.filter(device__aggregator=aggregator).values("enrollment__account_id")


def account_list(*, user=None) -> QuerySet[Account]:
    """Accounts with their customer; an aggregator sees accounts that enrolled one of its devices."""
    qs = Account.objects.select_related("customer")
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(pk__in=_aggregator_account_ids(aggregator))
    return qs


def customer_list(*, user=None) -> QuerySet[Customer]:
    qs = Customer.objects.all()
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(accounts__in=_aggregator_account_ids(aggregator)).distinct()
    return qs


def service_agreement_list(*, user=None) -> QuerySet[ServiceAgreement]:
    qs = ServiceAgreement.objects.select_related("account", "service_point")
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(account__in=_aggregator_account_ids(aggregator))
    return qs


def enrollment_history(*, enrollment: Enrollment) -> QuerySet[ProgramSubscription]:
    """All subscriptions of an enrollment, ended ones included, oldest first."""
    return enrollment.subscriptions.select_related("device").order_by("start_date", "id")


# --- facts for the eligibility engine -------------------------------------------------------------------------


def _in_effect(prefix: str, start: str, end: str, on: dt.date) -> Q:
    """Periods ``[start, end)`` in effect on ``on``."""
    ended_after = Q(**{f"{prefix}{end}__isnull": True}) | Q(**{f"{prefix}{end}__gt": on})
    return Q(**{f"{prefix}{start}__lte": on}) & ended_after


def program_facts(programs: Iterable[Program]) -> dict[int, el.ProgramFacts]:
    """Facts of the given programs: 2 queries (questions, mutual exclusions)."""
    programs = list(programs)
    ids = [p.pk for p in programs]
    questions = defaultdict(list)
    for q in QualificationQuestion.objects.filter(program_id__in=ids).order_by("position", "id"):
        questions[q.program_id].append(el.QuestionFacts(
            code=q.code, text=q.text, required=q.required, answer_type=q.answer_type,
            choices=tuple(q.choices or ()),
            qualifying_answers=(q.qualifying_answers if isinstance(q.qualifying_answers, dict)  # a number range
                                else tuple(q.qualifying_answers or ()))))
    excluded = defaultdict(set)
    for a, b in MutualExclusion.objects.filter(Q(program_a_id__in=ids) | Q(program_b_id__in=ids)).values_list(
            "program_a_id", "program_b_id"):
        excluded[a].add(b)
        excluded[b].add(a)
    return {p.pk: el.ProgramFacts(
        id=p.pk, code=p.code, status=p.status, enrollment_opens_on=p.enrollment_opens_on,
        enrollment_closes_on=p.enrollment_closes_on,
        eligible_device_types=tuple(p.eligible_device_types or ()),
        eligible_customer_classes=tuple(p.eligible_customer_classes or ()),
        eligible_rate_codes=tuple(p.eligible_rate_codes or ()),
        eligible_territories=tuple(p.eligible_territories or ()),
        eligible_substations=tuple(p.eligible_substations or ()),
        eligible_feeders=tuple(p.eligible_feeders or ()),
        excludes_life_support=p.excludes_life_support, requires_device=p.requires_device,
        allows_co_enrollment=p.allows_co_enrollment, questions=tuple(questions[p.pk]),
        excluded_program_ids=frozenset(excluded[p.pk])) for p in programs}


_ENROLLMENT_VALUES = ("id", "program_id", "program__code", "account_id", "status", "effective_date", "end_date",
                      "service_point_id")


def _enrollment_facts(row: dict, prefix: str = "") -> el.EnrollmentFacts:
    return el.EnrollmentFacts(
        id=row[f"{prefix}id"], program_id=row[f"{prefix}program_id"], program_code=row[f"{prefix}program__code"],
        account_id=row[f"{prefix}account_id"], status=row[f"{prefix}status"],
        effective_date=row[f"{prefix}effective_date"], end_date=row[f"{prefix}end_date"],
        service_point_id=row[f"{prefix}service_point_id"])


def enrollments_at(service_point_ids: Iterable[int]) -> dict[int, list[el.EnrollmentFacts]]:
    """Enrollments (any account, any status) at the service points, by service point id: 1 query."""
    out = defaultdict(list)
    for row in Enrollment.objects.filter(service_point_id__in=list(service_point_ids)).values(*_ENROLLMENT_VALUES):
        out[row["service_point_id"]].append(_enrollment_facts(row))
    return out


def device_facts(devices: Iterable[Device], on: dt.date) -> list[el.DeviceFacts]:
    """Facts of the given devices on local date ``on``: 2 queries (installations, subscriptions)."""
    devices = list(devices)
    ids = [d.pk for d in devices]
    installed = dict(DeviceInstallation.objects.filter(_in_effect("", "installed_on", "removed_on", on),
                                                       device_id__in=ids).values_list("device_id", "service_point_id"))
    subs = defaultdict(list)
    rows = ProgramSubscription.objects.filter(device_id__in=ids).values(
        "id", "device_id", "start_date", "end_date", "exclusive",
        *(f"enrollment__{name}" for name in _ENROLLMENT_VALUES))
    for row in rows:
        subs[row["device_id"]].append(el.SubscriptionFacts(
            id=row["id"], enrollment=_enrollment_facts(row, "enrollment__"), start_date=row["start_date"],
            end_date=row["end_date"], exclusive=row["exclusive"]))
    return [el.DeviceFacts(id=d.pk, label=d.serial_number or d.aggregator_device_id, device_type=d.device_type,
                           ownership=d.ownership, status=d.status, installed_service_point_id=installed.get(d.pk),
                           subscriptions=tuple(subs[d.pk])) for d in devices]


def site_facts(*, account: Account, service_point: ServicePoint, on: dt.date, has_agreement: bool,
               enrollments: list[el.EnrollmentFacts]) -> el.SiteFacts:
    """Facts of ``account`` at ``service_point`` (its premise and the account's customer must be loaded)."""
    premise = service_point.premise
    return el.SiteFacts(
        account_id=account.pk, account_number=account.account_number, account_status=account.status,
        account_closed_on=account.closed_on, life_support=account.customer.life_support,
        service_point_id=service_point.pk, service_point_label=service_point.service_point_id,
        has_agreement=has_agreement, customer_class=service_point.customer_class, rate_code=service_point.rate_code,
        territory=premise.service_territory, substation=premise.substation, feeder=premise.feeder,
        enrollments=tuple(enrollments))


def enrollment_facts(*, program: Program, account: Account, service_point: ServicePoint, devices: list[Device],
                     on: dt.date) -> tuple[el.ProgramFacts, el.SiteFacts, list[el.DeviceFacts]]:
    """Everything ``eligibility.check_enrollment`` needs for one request, in a constant number of queries."""
    account = Account.objects.select_related("customer").get(pk=account.pk)
    service_point = ServicePoint.objects.select_related("premise").get(pk=service_point.pk)
    has_agreement = ServiceAgreement.objects.filter(_in_effect("", "start_date", "end_date", on), account=account,
                                                    service_point=service_point).exists()
    site = site_facts(account=account, service_point=service_point, on=on, has_agreement=has_agreement,
                      enrollments=enrollments_at([service_point.pk])[service_point.pk])
    return program_facts([program])[program.pk], site, device_facts(devices, on)


def check_request(*, program: Program, account: Account, service_point: ServicePoint, devices: list[Device],
                  on: dt.date, answers: dict | None = None) -> list[el.Reason]:
    """Every reason ``account`` at ``service_point`` may not enroll ``devices`` in ``program`` from local date
    ``on`` (empty list = eligible). Reads only; see ``enrollments.eligibility``."""
    program_f, site, devices_f = enrollment_facts(program=program, account=account, service_point=service_point,
                                                  devices=devices, on=on)
    return el.check_enrollment(program_f, site, devices_f, on, answers)


def program_days(*, now: dt.datetime, programs: QuerySet[Program] | None = None) -> dict[dt.date, QuerySet[Program]]:
    """The programs (all but drafts by default) grouped by today's date in their zone: the local date of ``now``
    there, the date an enrollment request made now would take (never the UTC date). One query."""
    if programs is None:
        programs = Program.objects.exclude(status=ProgramStatus.DRAFT)
    by_day: dict[dt.date, list[int]] = defaultdict(list)
    for pk, tz in programs.values_list("pk", "time_zone"):
        by_day[local_date(now, zone(tz))].append(pk)
    return {day: Program.objects.filter(pk__in=ids) for day, ids in sorted(by_day.items())}


def account_eligibility_today(*, account: Account, now: dt.datetime,
                              days: dict[dt.date, QuerySet[Program]] | None = None) -> list[el.ProgramEligibility]:
    """``account_eligibility`` with each program checked on its own today (``program_days``; pass ``days`` to read
    them once for many accounts): ``account_eligibility``'s queries once per distinct local date (one in a utility
    of one zone)."""
    days = program_days(now=now) if days is None else days
    lines = []
    for day, programs in days.items():
        lines += account_eligibility(account=account, on=day, programs=programs)
    if len(days) > 1:
        lines.sort(key=lambda line: (line.site.service_point_id, line.program.code))
    return lines


def account_eligibility(*, account: Account, on: dt.date, programs: QuerySet[Program] | None = None,
                        ) -> list[el.ProgramEligibility]:
    """For each program (all but drafts by default) and each service point the account is served at on local date
    ``on``: eligible or not, with every reason and the installed devices that could enroll.

    Constant number of queries (9) whatever the number of programs, service points or devices. An account with no
    service agreement on ``on`` gets one line per program with the ``no_service_agreement`` reason.
    """
    account = Account.objects.select_related("customer").get(pk=account.pk)
    if programs is None:
        programs = Program.objects.exclude(status=ProgramStatus.DRAFT)
    programs = list(programs.order_by("code"))
    facts = program_facts(programs)
    agreements = list(ServiceAgreement.objects.filter(_in_effect("", "start_date", "end_date", on), account=account)
                      .select_related("service_point", "service_point__premise").order_by("service_point_id"))
    points = list({a.service_point_id: a.service_point for a in agreements}.values())
    sp_ids = [p.pk for p in points]
    enrollments = enrollments_at(sp_ids)
    installs = list(DeviceInstallation.objects.filter(_in_effect("", "installed_on", "removed_on", on),
                                                      service_point_id__in=sp_ids).select_related("device"))
    all_devices = device_facts([i.device for i in installs], on)
    by_point = defaultdict(list)
    device_point = {i.device_id: i.service_point_id for i in installs}
    for d in all_devices:
        by_point[device_point[d.id]].append(d)
    out = []
    if not points:
        site = el.SiteFacts(account_id=account.pk, account_number=account.account_number,
                            account_status=account.status, account_closed_on=account.closed_on,
                            life_support=account.customer.life_support, service_point_id=0,
                            service_point_label="(none)", has_agreement=False)
        return [el.evaluate_site_for_program(facts[p.pk], site, [], on) for p in programs]
    for point in points:
        site = site_facts(account=account, service_point=point, on=on, has_agreement=True,
                          enrollments=enrollments[point.pk])
        for p in programs:
            out.append(el.evaluate_site_for_program(facts[p.pk], site, by_point[point.pk], on))
    return out


def conflicting_subscription(*, device_ids: Iterable[int]) -> ProgramSubscription | None:
    """The open exclusive subscription holding one of the devices (used to name the winner of a race)."""
    return (ProgramSubscription.objects.filter(device_id__in=list(device_ids), end_date__isnull=True, exclusive=True)
            .select_related("enrollment", "enrollment__program").first())


def _overlaps_from(on: dt.date, *periods: tuple[dt.date | None, dt.date | None]) -> bool:
    """Whether local-date periods ``[start, end)`` (None: open) all overlap on or after ``on``."""
    first = max([on, *(start for start, _ in periods if start is not None)])
    ends = [end for _, end in periods if end is not None]
    return not ends or first < min(ends)


def mutual_exclusion_creating_receiver(sender, *, program_a, program_b, on, **kwargs) -> None:
    """``programs.signals.mutual_exclusion_creating``: refuse the pair (``ConflictError``, code
    ``exclusion_conflict``) while a service point is enrolled in both programs, or a device subscribed in both, at
    overlapping dates on or after ``on``: each named with its two enrollments (at most 5, then how many more).
    Requests and suspended enrollments hold their place as active ones do; ended, rejected and cancelled ones do
    not."""
    holding = (*OPEN_ENROLLMENT_STATUSES, EnrollmentStatus.UNENROLLED)
    order = {program_a.pk: 0, program_b.pk: 1}
    running = Q(end_date__isnull=True) | Q(end_date__gt=on)
    enrollments = Enrollment.objects.filter(running, program_id__in=list(order), status__in=holding)
    by_point: dict[int, list[tuple]] = {}
    for pk, program_id, sp_id, sp_label, start, end in enrollments.order_by("pk").values_list(
            "pk", "program_id", "service_point_id", "service_point__service_point_id", "effective_date", "end_date"):
        by_point.setdefault(sp_id, []).append((order[program_id], pk, sp_label, (start, end)))
    by_device: dict[int, list[tuple]] = {}
    for device_id, serial, enrollment_id, program_id, start, end, e_start, e_end in (
            ProgramSubscription.objects.filter(running, device__isnull=False, enrollment__in=enrollments)
            .order_by("enrollment_id", "pk").values_list(
                "device_id", "device__serial_number", "enrollment_id", "enrollment__program_id", "start_date",
                "end_date", "enrollment__effective_date", "enrollment__end_date")):
        by_device.setdefault(device_id, []).append(
            (order[program_id], enrollment_id, serial, (start, end), (e_start, e_end)))
    conflicts = []
    for rows in by_point.values():
        for a in (r for r in rows if r[0] == 0):
            for b in (r for r in rows if r[0] == 1):
                if _overlaps_from(on, a[3], b[3]):
                    conflicts.append(f"service point {a[2]} is enrolled in both (enrollments {a[1]} and {b[1]})")
    for device_id, rows in by_device.items():
        for a in (r for r in rows if r[0] == 0):
            for b in (r for r in rows if r[0] == 1):
                if _overlaps_from(on, a[3], a[4], b[3], b[4]):
                    label = f"device {device_id}" + (f" ({a[2]})" if a[2] else "")
                    conflicts.append(f"{label} is in both (enrollments {a[1]} and {b[1]})")
    if conflicts:
        more = f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        raise ConflictError(f"Programs {program_a.code} and {program_b.code} cannot be made mutually exclusive: "
                            f"{'; '.join(conflicts[:5])}{more}. End one of each pair first.",
                            code="exclusion_conflict")
