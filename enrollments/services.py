"""Write path of the enrollments app: the only way enrollments, program subscriptions and accounts change.

Lifecycle (``choices.ENROLLMENT_TRANSITIONS``): REQUESTED -> PENDING_APPROVAL (program.requires_approval) -> ACTIVE
<-> SUSPENDED -> UNENROLLED; REJECTED and CANCELLED end a request. Every change is audited (``cpm.base.audit``).
Every public write is a registered use case with its capability (``cpm.base.capabilities``) and takes a required
``actor`` (a user or a named system actor; ``None`` is refused).

Dates are local calendar dates in the program's zone; periods are half-open ``[start, end)``: a subscription ending
on D no longer holds the device on D. Concurrency: device rows are locked (``select_for_update``, ascending id)
before subscribing; the partial unique constraints on enrollments and subscriptions are the backstop, and their
``IntegrityError`` becomes a ``ConflictError`` naming the enrollment and program that hold the device or point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from cpm.base.audit import audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError, PermissionDenied, TransitionNotAllowed
from cpm.base.states import transition
from cpm.base.timeutils import a_year_after, local_date, zone
from devices.models import Device, DeviceInstallation, ServicePoint
from devices.selectors import aggregator_of
from devices.services import device_install, upsert
from programs.models import Program

from . import eligibility as el
from . import selectors
from .choices import (
    ACCOUNT_TRANSITIONS,
    ENROLLMENT_TRANSITIONS,
    OPEN_ENROLLMENT_STATUSES,
    AccountStatus,
    EnrollmentSource,
    EnrollmentStatus,
    ReasonCode,
)
from .errors import eligibility_error
from .models import Account, Customer, Enrollment, ProgramSubscription, ServiceAgreement
from .signals import enrollment_ended, subscription_ended


def program_today(program: Program, now: dt.datetime) -> dt.date:
    """The local date of ``now`` in the program's zone."""
    return local_date(now, zone(program.time_zone))


def _lock_devices(devices: Iterable[Device]) -> list[Device]:
    """Lock device rows in ascending id order (a fixed order, so two requests cannot deadlock)."""
    ids = sorted({d.pk for d in devices})
    if not ids:
        return []
    locked = {d.pk: d for d in Device.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    return [locked[i] for i in ids]


def _raise_for_integrity(*, device_ids: Sequence[int], program: Program, service_point: ServicePoint) -> None:
    """After a constraint refused a write: raise a ConflictError naming the enrollment/program that won."""
    sub = selectors.conflicting_subscription(device_ids=device_ids)
    if sub is not None:
        raise ConflictError(f"Device {sub.device_id} is already subscribed in {sub.enrollment.program.code} "
                            f"(enrollment {sub.enrollment_id}).", code="device_already_subscribed",
                            conflicting_enrollment=sub.enrollment_id, conflicting_program=sub.enrollment.program.code)
    other = Enrollment.objects.filter(program=program, service_point=service_point,
                                      status__in=OPEN_ENROLLMENT_STATUSES).first()
    if other is not None:
        raise ConflictError(f"Service point {service_point} is already enrolled in {program.code} (enrollment "
                            f"{other.pk}).", code="already_enrolled", conflicting_enrollment=other.pk,
                            conflicting_program=program.code)
    raise ConflictError("The enrollment conflicts with an existing enrollment or subscription.")


def _end_subscriptions(subs: Iterable[ProgramSubscription], *, end_date: dt.date, reason_code: str,
                       now: dt.datetime, actor: Any) -> list[ProgramSubscription]:
    """End subscriptions running on or after ``end_date`` at ``end_date`` (never before their start)."""
    ended = []
    for sub in subs:
        if sub.end_date is not None and sub.end_date <= end_date:
            continue
        sub.end_date = max(end_date, sub.start_date)
        sub.end_reason = reason_code
        sub.save(update_fields=["end_date", "end_reason"])
        audit_record(obj=sub, action="update", now=now, actor=actor, reason=reason_code,
                     changes={"end_date": str(sub.end_date)})
        ended.append(sub)
    return ended


def _running_subscriptions(enrollment: Enrollment, on: dt.date):
    return enrollment.subscriptions.filter(Q(end_date__isnull=True) | Q(end_date__gt=on)).order_by("id")


def _send_enrollment_ended(enrollment: Enrollment) -> None:
    kwargs = {"enrollment_id": enrollment.pk, "program_id": enrollment.program_id, "status": enrollment.status,
              "end_date": enrollment.end_date, "reason_code": enrollment.reason_code}
    transaction.on_commit(lambda: enrollment_ended.send(sender=Enrollment, **kwargs))


def _send_subscription_ended(sub: ProgramSubscription) -> None:
    kwargs = {"subscription_id": sub.pk, "enrollment_id": sub.enrollment_id, "device_id": sub.device_id,
              "end_date": sub.end_date, "reason_code": sub.end_reason}
    transaction.on_commit(lambda: subscription_ended.send(sender=ProgramSubscription, **kwargs))


def _check_request_input(*, source: str, devices: Sequence[Device], answers: Any) -> None:
    errors: dict[str, list[str]] = {}
    if source not in EnrollmentSource.values:
        errors["source"] = [f"Unknown source {source!r}; expected one of {', '.join(EnrollmentSource.values)}."]
    ids = [d.pk for d in devices]
    if len(ids) != len(set(ids)):
        errors["devices"] = ["A device is listed more than once."]
    if answers is not None and not isinstance(answers, dict):
        errors["answers"] = ["answers must be an object of question code to answer."]
    if errors:
        raise DomainValidationError(errors)


def _check_aggregator_devices(actor: Any, devices: Sequence[Device], *, field: str = "devices") -> None:
    """An aggregator's API client enrolls, adds and swaps in its own devices and nothing else: without one of its
    devices in the request (a program that takes no device, or another aggregator's device) it is refused
    (``PermissionDenied``, 403, naming ``field``)."""
    aggregator = aggregator_of(actor)
    if aggregator is None:
        return
    if not devices:
        raise PermissionDenied(f"Aggregator {aggregator.code} may enroll only its own devices; this request names "
                               "no device, so it must come from the utility (CSR, CIS or portal).",
                               code="aggregator_needs_own_device", field=field)
    foreign = [d.pk for d in devices if d.aggregator_id != aggregator.pk]
    if foreign:
        raise PermissionDenied(f"Aggregator {aggregator.code} may enroll only its own devices (devices: "
                               f"{', '.join(map(str, foreign))} are not).", code="aggregator_needs_own_device",
                               field=field)


def _same_request(enrollment: Enrollment, *, account, service_point, program, devices=(),
                  effective_date: dt.date | None = None) -> Enrollment:
    """The enrollment an external transaction id already made, when this request is a retry of it: the same
    account, service point and program, and devices that were subscribed in it (a retry after a device was added
    or replaced is still the same request), and the same ``effective_date`` when the retry gives one. Otherwise 409
    ``external_transaction_reused``: the id was used for another request, and answering with the first one would
    say that this one was done."""
    if (enrollment.account_id, enrollment.service_point_id, enrollment.program_id) != (
            account.pk, service_point.pk, program.pk):
        raise ConflictError(f"External transaction id {enrollment.external_transaction_id!r} was already used for "
                            f"enrollment {enrollment.pk} (another account, service point or program).",
                            code="external_transaction_reused", conflicting_enrollment=enrollment.pk)
    if devices:
        had = set(enrollment.subscriptions.values_list("device_id", flat=True))
        other = sorted(d.pk for d in devices if d.pk not in had)
        if other:
            raise ConflictError(f"External transaction id {enrollment.external_transaction_id!r} was already used for "
                                f"enrollment {enrollment.pk} with other devices (device {', '.join(map(str, other))} "
                                "is not in it).", code="external_transaction_reused",
                                conflicting_enrollment=enrollment.pk)
    if effective_date is not None and effective_date != enrollment.effective_date:
        raise ConflictError(f"External transaction id {enrollment.external_transaction_id!r} was already used for "
                            f"enrollment {enrollment.pk} effective {enrollment.effective_date}, not "
                            f"{effective_date}.", code="external_transaction_reused",
                            conflicting_enrollment=enrollment.pk)
    return enrollment


@use_case("enrollment.request", Cap.REQUEST_ENROLLMENTS)
def enrollment_request(
    *,
    account: Account,
    service_point: ServicePoint,
    program: Program,
    source: str,
    now: dt.datetime,
    actor: Any,
    devices: Sequence[Device] = (),
    effective_date: dt.date | None = None,
    external_transaction_id: str | None = None,
    answers: dict | None = None,
) -> tuple[Enrollment, bool]:
    """Request enrollment of ``account`` at ``service_point`` in ``program`` with ``devices``; returns
    ``(enrollment, created)``.

    - Idempotent on ``(source, external_transaction_id)``: a retried request returns the same enrollment with
      ``created`` False and writes nothing (``ConflictError`` if the id was used for another account/point/program).
      An aggregator's API client has a key space of its own (``Enrollment.idempotency_scope``): two aggregators
      may both send their transaction '1001', and neither sees or collides with the other's.
    - Runs the eligibility engine on ``effective_date`` (local date; default today in the program's zone). Failing
      checks raise ``IneligibleError`` (400) or ``EnrollmentConflictError`` (409) listing EVERY reason; nothing is
      written. An ``effective_date`` more than a year after today in the program's zone (the same date a year
      later; February 28 for February 29) raises ``DomainValidationError`` (400, ``effective_date``).
    - Eligible: the enrollment is created ACTIVE (or PENDING_APPROVAL when ``program.requires_approval``) with one
      subscription per device from ``effective_date`` (one with no device for programs that need none). Pending
      enrollments already hold their devices, so two pending requests cannot both be approved.
    """
    devices = list(devices)
    _check_request_input(source=source, devices=devices, answers=answers)
    if effective_date is not None:
        _check_within_a_year(field="effective_date", value=effective_date, what="an enrollment takes effect",
                             zone_name=program.time_zone, now=now)
    _check_aggregator_devices(actor, devices)
    external_transaction_id = (external_transaction_id or "").strip() or None
    requester = aggregator_of(actor)
    scope = f"aggregator:{requester.pk}" if requester is not None else ""
    lookup = {"source": source, "idempotency_scope": scope, "external_transaction_id": external_transaction_id}
    if external_transaction_id:
        existing = Enrollment.objects.filter(**lookup).first()
        if existing is not None:
            return _same_request(existing, account=account, service_point=service_point, program=program,
                                 devices=devices, effective_date=effective_date), False
    on = effective_date or program_today(program, now)
    with transaction.atomic():
        locked = _lock_devices(devices)
        # Serialises requests for the same point (mutual exclusion across programs has no DB constraint).
        ServicePoint.objects.select_for_update().filter(pk=service_point.pk).first()
        if external_transaction_id:  # a concurrent retry may have committed while we waited for the locks
            existing = Enrollment.objects.filter(**lookup).first()
            if existing is not None:
                return _same_request(existing, account=account, service_point=service_point, program=program,
                                 devices=devices, effective_date=effective_date), False
        reasons = selectors.check_request(program=program, account=account, service_point=service_point,
                                          devices=locked, on=on, answers=answers)
        if reasons:
            raise eligibility_error(reasons)
        try:
            with transaction.atomic():
                enrollment = Enrollment.objects.create(
                    account=account, service_point=service_point, program=program, source=source,
                    external_transaction_id=external_transaction_id, idempotency_scope=scope, requested_at=now,
                    effective_date=on,
                    answers=answers or {}, status=EnrollmentStatus.REQUESTED)
                exclusive = not program.allows_co_enrollment
                for device in locked or [None]:
                    ProgramSubscription.objects.create(enrollment=enrollment, device=device, start_date=on,
                                                       exclusive=exclusive)
        except IntegrityError:
            if external_transaction_id:
                existing = Enrollment.objects.filter(**lookup).first()
                if existing is not None:
                    return _same_request(existing, account=account, service_point=service_point,
                                         program=program, devices=devices, effective_date=effective_date), False
            _raise_for_integrity(device_ids=[d.pk for d in locked], program=program, service_point=service_point)
        audit_record(obj=enrollment, action="create", now=now, actor=actor,
                     changes={"source": source, "devices": [d.pk for d in locked], "effective_date": str(on)})
        to = EnrollmentStatus.PENDING_APPROVAL if program.requires_approval else EnrollmentStatus.ACTIVE
        transition(obj=enrollment, to=to, allowed=ENROLLMENT_TRANSITIONS, now=now, actor=actor,
                   reason="eligible; awaiting approval" if program.requires_approval else "eligible")
    return enrollment, True


def _lock_enrollment(enrollment: Enrollment) -> Enrollment:
    return Enrollment.objects.select_for_update().select_related("program", "account").get(pk=enrollment.pk)


def _end(enrollment: Enrollment, *, effective_date: dt.date, reason_code: str, reason_text: str, now,
         actor) -> Enrollment:
    """End an enrollment, locked here: a request not yet active is cancelled, an active or suspended one
    unenrolled on ``effective_date`` (the private steps of ``enrollment_unenroll``, account and program closing and
    a move-out)."""
    enrollment = _lock_enrollment(enrollment)
    if enrollment.status in (EnrollmentStatus.REQUESTED, EnrollmentStatus.PENDING_APPROVAL):
        return _close_request(enrollment, to=EnrollmentStatus.CANCELLED, reason_code=reason_code,
                              reason_text=reason_text, now=now, actor=actor)
    return _unenroll(enrollment, effective_date=effective_date, reason_code=reason_code, reason_text=reason_text,
                     now=now, actor=actor)


@use_case("enrollment.approve", Cap.APPROVE_ENROLLMENTS)
@transaction.atomic
def enrollment_approve(*, enrollment: Enrollment, now: dt.datetime, actor: Any, reason: str = "",
                       ) -> Enrollment:
    """PENDING_APPROVAL -> ACTIVE. Refused (409) if the program stopped taking enrollments or the account closed."""
    enrollment = _lock_enrollment(enrollment)
    if enrollment.status not in (EnrollmentStatus.REQUESTED, EnrollmentStatus.PENDING_APPROVAL):
        # ACTIVE is also reachable from SUSPENDED, but that is a resume, not an approval.
        raise TransitionNotAllowed(f"Enrollment {enrollment.pk} is {enrollment.status}; only a pending request can "
                                   "be approved.", from_status=enrollment.status, to_status=EnrollmentStatus.ACTIVE)
    if enrollment.status == EnrollmentStatus.PENDING_APPROVAL:
        on = enrollment.effective_date or program_today(enrollment.program, now)
        problems = el.check_program(selectors.program_facts([enrollment.program])[enrollment.program_id], on)
        problems = [p for p in problems if p.code == el.PROGRAM_NOT_ACTIVE]
        if enrollment.account.status != AccountStatus.OPEN:
            problems.append(el.Reason(el.ACCOUNT_CLOSED, f"Account {enrollment.account} is closed.", "account"))
        if problems:
            raise ConflictError(" ".join(p.message for p in problems), code=problems[0].code)
    return transition(obj=enrollment, to=EnrollmentStatus.ACTIVE, allowed=ENROLLMENT_TRANSITIONS, now=now,
                      actor=actor, reason=reason or "approved")


def _close_request(enrollment: Enrollment, *, to: str, reason_code: str, reason_text: str, now, actor) -> Enrollment:
    """REQUESTED/PENDING_APPROVAL -> REJECTED/CANCELLED; its subscriptions end on their start (empty periods)."""
    _check_reason(reason_code)
    end = enrollment.effective_date or program_today(enrollment.program, now)
    transition(obj=enrollment, to=to, allowed=ENROLLMENT_TRANSITIONS, now=now, actor=actor,
               reason=f"{reason_code}: {reason_text}".strip(": "),
               extra_updates={"end_date": end, "reason_code": reason_code, "reason_text": reason_text})
    for sub in _running_subscriptions(enrollment, dt.date.min):
        _end_subscriptions([sub], end_date=sub.start_date, reason_code=reason_code, now=now, actor=actor)
    _send_enrollment_ended(enrollment)
    return enrollment


def _check_reason(reason_code: str) -> None:
    if reason_code not in ReasonCode.values:
        raise DomainValidationError({"reason_code": [f"Unknown reason code {reason_code!r}; expected one of "
                                                     f"{', '.join(ReasonCode.values)}."]})


@use_case("enrollment.reject", Cap.APPROVE_ENROLLMENTS)
@transaction.atomic
def enrollment_reject(*, enrollment: Enrollment, now: dt.datetime, actor: Any,
                      reason_code: str = ReasonCode.OTHER, reason_text: str = "") -> Enrollment:
    """REQUESTED/PENDING_APPROVAL -> REJECTED with a coded reason; the devices it held are released."""
    return _close_request(_lock_enrollment(enrollment), to=EnrollmentStatus.REJECTED, reason_code=reason_code,
                          reason_text=reason_text, now=now, actor=actor)


@use_case("enrollment.cancel", Cap.MANAGE_ENROLLMENTS)
@transaction.atomic
def enrollment_cancel(*, enrollment: Enrollment, now: dt.datetime, actor: Any,
                      reason_code: str = ReasonCode.CUSTOMER_REQUEST, reason_text: str = "") -> Enrollment:
    """REQUESTED/PENDING_APPROVAL -> CANCELLED (withdrawn before approval); the devices it held are released. An
    aggregator withdraws only a request of its own devices (403 ``aggregator_foreign_devices``)."""
    enrollment = _lock_enrollment(enrollment)
    _check_aggregator_may_end(actor, enrollment, program_today(enrollment.program, now))
    return _close_request(enrollment, to=EnrollmentStatus.CANCELLED, reason_code=reason_code,
                          reason_text=reason_text, now=now, actor=actor)


def _unenroll(enrollment: Enrollment, *, effective_date: dt.date, reason_code: str, reason_text: str, now,
              actor) -> Enrollment:
    _check_reason(reason_code)
    end = max(effective_date, enrollment.effective_date or effective_date)
    transition(obj=enrollment, to=EnrollmentStatus.UNENROLLED, allowed=ENROLLMENT_TRANSITIONS, now=now, actor=actor,
               reason=f"{reason_code}: {reason_text}".strip(": "),
               extra_updates={"end_date": end, "reason_code": reason_code, "reason_text": reason_text})
    _end_subscriptions(_running_subscriptions(enrollment, end), end_date=end, reason_code=reason_code, now=now,
                       actor=actor)
    _send_enrollment_ended(enrollment)
    return enrollment


def _latest_date(today: dt.date) -> dt.date:
    """The latest date a change asked for on local date ``today`` may take effect (an enrollment, an
    unenrollment, an account closing): the same date a year later (February 28 for February 29).

    A program has no end date and its seasons come a year at a time, so a customer joining or leaving "after next
    summer" is the farthest a person plans; a date beyond (2999-01-01: a typo, or a test value) would hold the
    devices and the service point for ever while the enrollment looks started or ended."""
    return a_year_after(today)


def _check_within_a_year(*, field: str, value: dt.date, what: str, zone_name: str, now: dt.datetime) -> None:
    """Refuse ``value`` (``DomainValidationError`` on ``field``) when it is after ``_latest_date`` of today in
    ``zone_name``; ``what`` says what takes effect ("an enrollment takes effect")."""
    today = local_date(now, zone(zone_name))
    latest = _latest_date(today)
    if value > latest:
        raise DomainValidationError({field: [
            f"{value} is more than a year ahead: {what} at most one year after today ({today} in {zone_name}), "
            f"on or before {latest}."]})


@use_case("enrollment.unenroll", Cap.MANAGE_ENROLLMENTS)
@transaction.atomic
def enrollment_unenroll(*, enrollment: Enrollment, effective_date: dt.date, now: dt.datetime, actor: Any,
                        reason_code: str = ReasonCode.CUSTOMER_REQUEST, reason_text: str = "") -> Enrollment:
    """ACTIVE/SUSPENDED -> UNENROLLED from local date ``effective_date`` (the first day no longer enrolled).

    Its subscriptions end that date, so the devices are free for another enrollment from then on; events before it
    still settle to this enrollment. ``enrollment_ended`` is sent on commit. A request not yet active is cancelled
    instead. Raises ``DomainValidationError`` (400, ``effective_date``) for a date more than a year after today in
    the program's zone (the same date a year later; February 28 for February 29), nothing written;
    ``TransitionNotAllowed`` (409) from other statuses. An aggregator's API client ends only an enrollment whose
    devices still in it are all its own (``PermissionDenied``, 403, otherwise: a site may enroll another
    aggregator's device too).
    """
    _check_within_a_year(field="effective_date", value=effective_date, what="an unenrollment takes effect",
                         zone_name=enrollment.program.time_zone, now=now)
    enrollment = _lock_enrollment(enrollment)
    _check_aggregator_may_end(actor, enrollment, effective_date)
    return _end(enrollment, effective_date=effective_date, reason_code=reason_code, reason_text=reason_text, now=now,
                actor=actor)


def _check_aggregator_may_end(actor: Any, enrollment: Enrollment, effective_date: dt.date) -> None:
    """An aggregator may end an enrollment only if every device it would take out (the subscriptions still running
    on the end date; every one for a request not yet active) is its own, and one is: ending it would otherwise take
    another aggregator's device out of the program. The other aggregator is not named."""
    aggregator = aggregator_of(actor)
    if aggregator is None:
        return
    if enrollment.status in (EnrollmentStatus.REQUESTED, EnrollmentStatus.PENDING_APPROVAL):
        on = dt.date.min
    else:
        on = max(effective_date, enrollment.effective_date or effective_date)
    owners = list(_running_subscriptions(enrollment, on).values_list("device__aggregator_id", flat=True))
    if aggregator.pk not in owners or any(owner != aggregator.pk for owner in owners):
        raise PermissionDenied(
            f"Aggregator {aggregator.code} may end only an enrollment of its own devices; enrollment {enrollment.pk} "
            "also holds devices it does not manage (or none of its own any more). Remove your device from the site "
            "instead, or ask the utility to end the enrollment.", code="aggregator_foreign_devices")


@use_case("enrollment.suspend", Cap.APPROVE_ENROLLMENTS)
@transaction.atomic
def enrollment_suspend(*, enrollment: Enrollment, now: dt.datetime, actor: Any, reason: str = "",
                       ) -> Enrollment:
    """ACTIVE -> SUSPENDED (not called for events; subscriptions stay, the devices stay held)."""
    return transition(obj=_lock_enrollment(enrollment), to=EnrollmentStatus.SUSPENDED,
                      allowed=ENROLLMENT_TRANSITIONS, now=now, actor=actor, reason=reason)


@use_case("enrollment.resume", Cap.APPROVE_ENROLLMENTS)
@transaction.atomic
def enrollment_resume(*, enrollment: Enrollment, now: dt.datetime, actor: Any, reason: str = "",
                      ) -> Enrollment:
    """SUSPENDED -> ACTIVE."""
    return transition(obj=_lock_enrollment(enrollment), to=EnrollmentStatus.ACTIVE,
                      allowed=ENROLLMENT_TRANSITIONS, now=now, actor=actor, reason=reason)


def _device_reasons(enrollment: Enrollment, device: Device, on: dt.date) -> list[el.Reason]:
    program_f, site, devices_f = selectors.enrollment_facts(
        program=enrollment.program, account=enrollment.account, service_point=enrollment.service_point,
        devices=[device], on=on)
    site_reasons = [r for r in el.check_site(program_f, site, on, exclude_enrollment_id=enrollment.pk)
                    if r.code in (el.ACCOUNT_CLOSED, el.NO_SERVICE_AGREEMENT)]
    return site_reasons + el.check_device(program_f, site, devices_f[0], on, exclude_enrollment_id=enrollment.pk)


def _subscribe(enrollment: Enrollment, device: Device, on: dt.date, *, now, actor) -> ProgramSubscription:
    if not enrollment.program.requires_device:
        raise DomainValidationError({"device": [f"{enrollment.program.code} enrolls the service point alone; it "
                                                "takes no devices."]})
    if enrollment.status not in OPEN_ENROLLMENT_STATUSES:
        raise ConflictError(f"Enrollment {enrollment.pk} is {enrollment.status}; devices can only be added to an "
                            "open enrollment.", code="enrollment_not_open")
    if enrollment.subscriptions.filter(device=device, end_date__isnull=True).exists():
        raise ConflictError(f"Device {device.pk} is already subscribed in enrollment {enrollment.pk}.",
                            code="device_already_subscribed", conflicting_enrollment=enrollment.pk)
    reasons = _device_reasons(enrollment, device, on)
    if reasons:
        raise eligibility_error(reasons)
    try:
        with transaction.atomic():
            sub = ProgramSubscription.objects.create(enrollment=enrollment, device=device, start_date=on,
                                                     exclusive=not enrollment.program.allows_co_enrollment)
    except IntegrityError:
        _raise_for_integrity(device_ids=[device.pk], program=enrollment.program,
                             service_point=enrollment.service_point)
    audit_record(obj=sub, action="create", now=now, actor=actor, changes={"device": device.pk, "start": str(on)})
    return sub


@use_case("enrollment.add_device", Cap.MANAGE_ENROLLMENTS)
@transaction.atomic
def enrollment_add_device(*, enrollment: Enrollment, device: Device, now: dt.datetime, actor: Any,
                          start_date: dt.date | None = None) -> ProgramSubscription:
    """Subscribe one more device to an open enrollment from local date ``start_date`` (default today in the
    program's zone): e.g. a second EV charger. Device checks as at enrollment (installed at the point, eligible
    type, customer-owned, not held elsewhere); 400/409 listing every reason. An aggregator adds only its own device
    (403 ``aggregator_needs_own_device``)."""
    _check_aggregator_devices(actor, [device], field="device")
    if start_date is not None:
        _check_within_a_year(field="start_date", value=start_date, what="a device joins the enrollment",
                             zone_name=enrollment.program.time_zone, now=now)
    enrollment = _lock_enrollment(enrollment)
    (device,) = _lock_devices([device])
    on = start_date or program_today(enrollment.program, now)
    return _subscribe(enrollment, device, on, now=now, actor=actor)


@use_case("enrollment.replace_device", Cap.MANAGE_ENROLLMENTS)
@transaction.atomic
def enrollment_replace_device(*, enrollment: Enrollment, old_device: Device, new_device: Device, now: dt.datetime,
                              actor: Any, on: dt.date | None = None) -> ProgramSubscription:
    """Replace ``old_device`` by ``new_device`` in the same enrollment from local date ``on``.

    The old subscription ends on ``on`` (reason ``device_removed``), the new one starts on ``on``: the enrollment,
    and with it the season's event counts and opt-outs, carries on; exactly one of the two devices is subscribed
    from then on. Both device rows are locked in id order. Raises 400/409 like ``enrollment_add_device``; an
    aggregator replaces only its own device by its own (403 ``aggregator_needs_own_device``).
    """
    _check_aggregator_devices(actor, [old_device], field="old_device")
    _check_aggregator_devices(actor, [new_device], field="new_device")
    if old_device.pk == new_device.pk:
        raise DomainValidationError({"new_device": ["The new device is the device being replaced."]})
    if on is not None:
        _check_within_a_year(field="on", value=on, what="a device replacement takes effect",
                             zone_name=enrollment.program.time_zone, now=now)
    enrollment = _lock_enrollment(enrollment)
    _lock_devices([old_device, new_device])
    on = on or program_today(enrollment.program, now)
    old = enrollment.subscriptions.filter(Q(end_date__isnull=True) | Q(end_date__gte=on), device=old_device).first()
    if old is None:
        raise DomainValidationError({"old_device": [f"Device {old_device.pk} is not subscribed in enrollment "
                                                    f"{enrollment.pk} on {on}."]})
    if on < old.start_date:
        raise DomainValidationError({"on": [f"The replacement date {on} is before the old device's subscription "
                                            f"started ({old.start_date})."]})
    ended = _end_subscriptions([old], end_date=on, reason_code=ReasonCode.DEVICE_REMOVED, now=now, actor=actor)
    sub = _subscribe(enrollment, new_device, on, now=now, actor=actor)
    for s in ended:
        _send_subscription_ended(s)
    return sub


@use_case("subscription.end", Cap.MANAGE_ENROLLMENTS)
@transaction.atomic
def subscription_end(*, subscription: ProgramSubscription, end_date: dt.date, now: dt.datetime, actor: Any,
                     reason_code: str = ReasonCode.DEVICE_REMOVED) -> ProgramSubscription:
    """End one subscription on local date ``end_date`` while its enrollment continues. An aggregator ends only a
    subscription of its own device (403 ``aggregator_foreign_devices``)."""
    _check_reason(reason_code)
    _check_within_a_year(field="end_date", value=end_date, what="a subscription ends",
                         zone_name=subscription.enrollment.program.time_zone, now=now)
    subscription = ProgramSubscription.objects.select_for_update(of=("self",)).select_related("device").get(
        pk=subscription.pk)
    aggregator = aggregator_of(actor)
    if aggregator is not None and (subscription.device is None or subscription.device.aggregator_id != aggregator.pk):
        raise PermissionDenied(f"Aggregator {aggregator.code} may end only a subscription of its own devices; "
                               f"subscription {subscription.pk} is not one.", code="aggregator_foreign_devices",
                               field="subscription")
    for s in _end_subscriptions([subscription], end_date=end_date, reason_code=reason_code, now=now, actor=actor):
        _send_subscription_ended(s)
    return subscription


@use_case("account.close", Cap.MAINTAIN_CUSTOMERS)
@transaction.atomic
def account_close(*, account: Account, closed_on: dt.date, now: dt.datetime, actor: Any,
                  reason_text: str = "") -> Account:
    """Close ``account`` on local date ``closed_on`` (move-out): OPEN -> CLOSED.

    Every running enrollment ends that date (ACTIVE/SUSPENDED -> UNENROLLED, requests -> CANCELLED; reason
    ``account_closed``) with its subscriptions, and open service agreements end too. Events before ``closed_on``
    still settle to this account's enrollments; nothing carries over to the next occupant of the service point.

    Raises ``DomainValidationError`` (400, ``closed_on``), nothing written, for a date before the account opened or
    more than a year after today: today in the zone of the programs of its running enrollments (the earliest
    today of them, so no enrollment ends more than a year after its program's today), or in
    ``CPM_DISPLAY_TIME_ZONE`` for an account with none (an account belongs to no program).
    """
    account = Account.objects.select_for_update().get(pk=account.pk)
    zones = sorted(set(Enrollment.objects.filter(account=account, status__in=OPEN_ENROLLMENT_STATUSES)
                       .values_list("program__time_zone", flat=True)))
    zone_name = (min(zones, key=lambda z: (local_date(now, zone(z)), z)) if zones
                 else getattr(settings, "CPM_DISPLAY_TIME_ZONE", "UTC"))
    _check_within_a_year(field="closed_on", value=closed_on, what="an account closes", zone_name=zone_name, now=now)
    if closed_on < account.opened_on:
        raise DomainValidationError({"closed_on": [f"closed_on {closed_on} is before the account opened "
                                                   f"({account.opened_on})."]})
    transition(obj=account, to=AccountStatus.CLOSED, allowed=ACCOUNT_TRANSITIONS, now=now, actor=actor,
               reason=reason_text or "account closed", extra_updates={"closed_on": closed_on})
    # Ending the account's enrollments is part of closing it (a CIS fact, Cap.MAINTAIN_CUSTOMERS): the private steps
    # run here, not the guarded enrollment_cancel / enrollment_unenroll (Cap.MANAGE_ENROLLMENTS), audited under the
    # same actor.
    for enrollment in Enrollment.objects.filter(account=account, status__in=OPEN_ENROLLMENT_STATUSES).order_by("pk"):
        _end(enrollment, effective_date=closed_on, reason_code=ReasonCode.ACCOUNT_CLOSED, reason_text=reason_text,
             now=now, actor=actor)
    for agreement in account.service_agreements.filter(Q(end_date__isnull=True) | Q(end_date__gt=closed_on)):
        agreement.end_date = max(closed_on, agreement.start_date)
        agreement.save(update_fields=["end_date"])
        audit_record(obj=agreement, action="update", now=now, actor=actor, reason="account closed",
                     changes={"end_date": str(agreement.end_date)})
    return account


@use_case("device.transfer", Cap.MANAGE_ENROLLMENTS)
def device_transfer(*, device: Device, to_account: Account, service_point: ServicePoint, program: Program,
                    source: str, now: dt.datetime, actor: Any, on: dt.date | None = None,
                    external_transaction_id: str | None = None, answers: dict | None = None,
                    ) -> tuple[Enrollment, bool]:
    """Enroll a device already known to cpm for a new account (e.g. the next occupant), from local date ``on``.

    Allowed only once the previous account's enrollment of the device has ended (409 naming it otherwise); the old
    enrollments and subscriptions stay as history. The device is installed at ``service_point`` first if it is
    elsewhere. Returns ``enrollment_request``'s ``(enrollment, created)``.
    """
    on = on or program_today(program, now)
    with transaction.atomic():
        (device,) = _lock_devices([device])
        holding = (ProgramSubscription.objects.filter(Q(end_date__isnull=True) | Q(end_date__gt=on), device=device,
                                                      enrollment__status__in=OPEN_ENROLLMENT_STATUSES)
                   .exclude(enrollment__account=to_account).select_related("enrollment__program").first())
        if holding is not None:
            raise ConflictError(f"Device {device.pk} is still enrolled by another account in "
                                f"{holding.enrollment.program.code} (enrollment {holding.enrollment_id}); it can "
                                "be transferred once that enrollment has ended.",
                                code="device_enrolled_by_other_account",
                                conflicting_enrollment=holding.enrollment_id,
                                conflicting_program=holding.enrollment.program.code)
        installed_here = DeviceInstallation.objects.filter(
            Q(removed_on__isnull=True) | Q(removed_on__gt=on), device=device, service_point=service_point,
            installed_on__lte=on).exists()
        # The transfer is one use case (device.transfer, checked above): its steps run undecorated, so a user who
        # may transfer (Cap.MANAGE_ENROLLMENTS) needs neither Cap.MANAGE_DEVICES for the move nor
        # Cap.REQUEST_ENROLLMENTS for the new enrollment; both are audited under the same actor.
        if not installed_here:
            device_install.__wrapped__(device=device, service_point=service_point, installed_on=on, now=now,
                                       actor=actor)
        return enrollment_request.__wrapped__(
            account=to_account, service_point=service_point, program=program, source=source, devices=[device],
            effective_date=on, external_transaction_id=external_transaction_id, answers=answers, now=now, actor=actor)


def program_closed_receiver(sender, *, program, closed_on, now, actor, **kwargs) -> None:
    """``programs.signals.program_closed``: every running enrollment of the program ends on ``closed_on`` (requests
    are cancelled, ACTIVE/SUSPENDED -> UNENROLLED; reason ``program_closed``) with its subscriptions, audited under
    the actor who closed the program. Part of closing the program (``program.close``), so it runs the private
    steps, as ``account_close`` does."""
    for enrollment in Enrollment.objects.filter(program=program, status__in=OPEN_ENROLLMENT_STATUSES).order_by("pk"):
        _end(enrollment, effective_date=closed_on, reason_code=ReasonCode.PROGRAM_CLOSED,
             reason_text=f"program {program.code} closed", now=now, actor=actor)


def device_removed_receiver(sender, *, device, installation, removed_on, now, actor, **kwargs) -> None:
    """``devices.signals.device_removed``: subscriptions of the device at that service point end on
    ``removed_on`` (reason ``device_removed``); the enrollments themselves continue."""
    subs = ProgramSubscription.objects.filter(
        Q(end_date__isnull=True) | Q(end_date__gt=removed_on), device=device,
        enrollment__service_point_id=installation.service_point_id)
    for sub in _end_subscriptions(subs, end_date=removed_on, reason_code=ReasonCode.DEVICE_REMOVED, now=now,
                                  actor=actor):
        _send_subscription_ended(sub)


# --- CIS reference data ---------------------------------------------------------------------------------------

@use_case("customer.upsert", Cap.MAINTAIN_CUSTOMERS)
def customer_upsert(*, cis_person_id: str, values: dict[str, Any], now: dt.datetime, actor: Any):
    """Create or update a customer by CIS person id; returns ``(customer, "new"|"updated"|"unchanged")``."""
    return upsert(Customer, lookup={"cis_person_id": cis_person_id}, values=values, now=now, actor=actor)


@use_case("account.upsert", Cap.MAINTAIN_CUSTOMERS)
def account_upsert(*, account_number: str, customer: Customer, opened_on: dt.date, closed_on: dt.date | None,
                   now: dt.datetime, actor: Any):
    """Create or update an account; a ``closed_on`` on an open account closes it through ``account_close`` (its
    enrollments end). Returns ``(account, outcome)``."""
    account, outcome = upsert(Account, lookup={"account_number": account_number},
                              values={"customer": customer, "opened_on": opened_on}, now=now, actor=actor)
    if closed_on is not None and account.status == AccountStatus.OPEN:
        account_close(account=account, closed_on=closed_on, now=now, actor=actor, reason_text="CIS import")
        account.refresh_from_db()
        outcome = "updated" if outcome == "unchanged" else outcome
    elif closed_on is not None and account.closed_on != closed_on:
        raise DomainValidationError({"closed_on": [f"Account {account_number} closed on {account.closed_on}; "
                                                   f"cannot change it to {closed_on}."]})
    elif closed_on is None and account.status == AccountStatus.CLOSED:
        raise DomainValidationError({"closed_on": [f"Account {account_number} is closed; it cannot reopen."]})
    return account, outcome


@use_case("service_agreement.upsert", Cap.MAINTAIN_CUSTOMERS)
@transaction.atomic
def service_agreement_upsert(*, agreement_id: str, account: Account, service_point: ServicePoint,
                             start_date: dt.date, end_date: dt.date | None, now: dt.datetime, actor: Any,
                             end_enrollments: bool = True):
    """Create or update a service agreement (``[start_date, end_date)``); returns ``(agreement, outcome)``.

    An agreement that ends is a move-out from the service point (the account may stay open elsewhere): unless
    another agreement of the account at that point continues, its enrollments there end on the date the last one
    ends (``service_agreement_move_out``). An import passes ``end_enrollments=False`` and runs the move-out once
    every row is in, so a rollover (old agreement ended, new one started) is not taken for a move-out whatever the
    order of its rows.

    Refused in words (``DomainValidationError``): an ``end_date`` before the ``start_date``, and a period that
    overlaps another agreement at the service point (one occupant at a time; ``[start, end)``, so an agreement ending
    on the day the next starts is no overlap), naming that agreement, its account and period."""
    _agreement_period_check(agreement_id=agreement_id, service_point=service_point, start_date=start_date,
                            end_date=end_date)
    agreement, outcome = upsert(ServiceAgreement, lookup={"agreement_id": agreement_id},
                                values={"account": account, "service_point": service_point, "start_date": start_date,
                                        "end_date": end_date}, now=now, actor=actor)
    if end_enrollments:
        _move_out(account=account, service_point=service_point, now=now, actor=actor)
    return agreement, outcome


def _agreement_period_check(*, agreement_id: str, service_point: ServicePoint, start_date: dt.date,
                            end_date: dt.date | None) -> None:
    if isinstance(start_date, dt.date) and isinstance(end_date, dt.date) and end_date < start_date:
        raise DomainValidationError({"end_date": [f"end_date {end_date} is before start_date {start_date}."]})
    if not isinstance(start_date, dt.date) or service_point is None or service_point.pk is None:
        return  # the model's own validation names a missing value
    overlapping = ServiceAgreement.objects.filter(service_point=service_point).exclude(agreement_id=agreement_id)
    overlapping = overlapping.filter(Q(end_date__isnull=True) | Q(end_date__gt=start_date))
    if end_date is not None:
        overlapping = overlapping.filter(start_date__lt=end_date)
    other = overlapping.select_related("account").order_by("start_date", "pk").first()
    if other is None:
        return
    until = f"to {other.end_date}" if other.end_date else "open-ended"
    separator = " " if other.end_date else ", "
    raise DomainValidationError({"service_point_id": [
        f"service point {service_point.service_point_id} is served by agreement {other.agreement_id} (account "
        f"{other.account.account_number}) from {other.start_date}{separator}{until}; a service point has one "
        f"agreement at a time: end {other.agreement_id} first (end_date, in this file or before)."]})


def _move_out(*, account: Account, service_point: ServicePoint, now: dt.datetime, actor: Any) -> list[Enrollment]:
    agreements = list(ServiceAgreement.objects.filter(account=account, service_point=service_point)
                      .values_list("end_date", flat=True))
    if not agreements or None in agreements:
        return []
    moved_out_on = max(agreements)
    ended = []
    for enrollment in Enrollment.objects.filter(account=account, service_point=service_point,
                                                status__in=OPEN_ENROLLMENT_STATUSES).order_by("pk"):
        reason_text = f"moved out of service point {service_point} on {moved_out_on} (service agreement ended)"
        ended.append(_end(enrollment, effective_date=moved_out_on, reason_code=ReasonCode.ACCOUNT_CLOSED,
                          reason_text=reason_text, now=now, actor=actor))
    return ended


@use_case("service_agreement.move_out", Cap.MAINTAIN_CUSTOMERS)
@transaction.atomic
def service_agreement_move_out(*, account: Account, service_point: ServicePoint, now: dt.datetime,
                               actor: Any) -> list[Enrollment]:
    """End ``account``'s running enrollments at ``service_point`` if none of its agreements there is still open:
    on the date the last one ended (ACTIVE/SUSPENDED -> UNENROLLED, requests -> CANCELLED; reason
    ``account_closed``, "moved out"), with their subscriptions. Nothing carries over to the next occupant. Running
    it again changes nothing. Returns the enrollments it ended."""
    return _move_out(account=account, service_point=service_point, now=now, actor=actor)
