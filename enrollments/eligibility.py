"""The eligibility engine: pure checks over plain facts (no Django, no queries).

One question: "may this account, at this service point, with these devices, enroll in this program on this date?"
The answer is EVERY failing reason, each a machine ``code`` and a plain sentence, never just the first. The facts are
gathered in a constant number of queries by ``enrollments.selectors`` and passed in as the dataclasses below.

Dates are local calendar dates in the program's zone. Periods are half-open ``[start, end)``: an enrollment or a
subscription with ``end`` on or before the date no longer counts. A new enrollment is open-ended from its date, so
any existing period still running on or after that date overlaps it.

Rules follow the usual terms of utility BYOD/DR tariffs (e.g. PG&E SmartAC, SCE Smart Energy Program, Xcel AC
Rewards): program open for enrollment, an open account served at the service point, customer class / rate /
location restrictions, eligible and customer-owned devices installed there and not held by another customer or
another exclusive program, no double enrollment, life-support exclusion, qualification answers.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from cpm.base.numbers import to_float  # Django-free, as this module

# Reason codes (machine-readable). Conflict codes make the request a 409 instead of a 400.
PROGRAM_NOT_ACTIVE = "program_not_active"
ENROLLMENT_NOT_OPEN_YET = "enrollment_not_open_yet"
ENROLLMENT_CLOSED = "enrollment_closed"
ACCOUNT_CLOSED = "account_closed"
NO_SERVICE_AGREEMENT = "no_service_agreement"
CUSTOMER_CLASS_NOT_ELIGIBLE = "customer_class_not_eligible"
RATE_CODE_NOT_ELIGIBLE = "rate_code_not_eligible"
TERRITORY_NOT_ELIGIBLE = "territory_not_eligible"
SUBSTATION_NOT_ELIGIBLE = "substation_not_eligible"
FEEDER_NOT_ELIGIBLE = "feeder_not_eligible"
LIFE_SUPPORT_EXCLUDED = "life_support_excluded"
ALREADY_ENROLLED = "already_enrolled"
SERVICE_POINT_IN_EXCLUSIVE_PROGRAM = "service_point_in_exclusive_program"
DEVICE_REQUIRED = "device_required"
DEVICE_NOT_APPLICABLE = "device_not_applicable"
DEVICE_TYPE_NOT_ELIGIBLE = "device_type_not_eligible"
DEVICE_NOT_INSTALLED = "device_not_installed"
DEVICE_NOT_CUSTOMER_OWNED = "device_not_customer_owned"
DEVICE_RETIRED = "device_retired"
DEVICE_ENROLLED_BY_OTHER_ACCOUNT = "device_enrolled_by_other_account"
DEVICE_IN_EXCLUSIVE_PROGRAM = "device_in_exclusive_program"
DEVICE_ALREADY_SUBSCRIBED = "device_already_subscribed"
ANSWER_MISSING = "answer_missing"
ANSWER_INVALID = "answer_invalid"
ANSWER_NOT_QUALIFYING = "answer_not_qualifying"

CONFLICT_CODES = frozenset({ALREADY_ENROLLED, SERVICE_POINT_IN_EXCLUSIVE_PROGRAM, DEVICE_ENROLLED_BY_OTHER_ACCOUNT,
                            DEVICE_IN_EXCLUSIVE_PROGRAM, DEVICE_ALREADY_SUBSCRIBED})

OPEN_STATUSES = frozenset({"requested", "pending_approval", "active", "suspended"})


@dataclass(frozen=True)
class Reason:
    """One failing check: ``code`` (machine), ``message`` (plain sentence), the input ``field`` it concerns, and the
    conflicting enrollment / program / device when there is one."""

    code: str
    message: str
    field: str = "non_field_errors"
    enrollment_id: int | None = None
    program_code: str | None = None
    device_id: int | None = None

    @property
    def is_conflict(self) -> bool:
        return self.code in CONFLICT_CODES

    def as_dict(self) -> dict:
        out = {"code": self.code, "message": self.message, "field": self.field}
        for key in ("enrollment_id", "program_code", "device_id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class QuestionFacts:
    code: str
    text: str = ""
    required: bool = True
    answer_type: str = "boolean"  # boolean | choice | number | text
    choices: tuple = ()
    qualifying_answers: tuple | dict = ()  # answers that qualify, or a number range {"min": x, "max": y}


@dataclass(frozen=True)
class ProgramFacts:
    id: int
    code: str
    status: str
    enrollment_opens_on: dt.date | None = None
    enrollment_closes_on: dt.date | None = None
    eligible_device_types: tuple = ()
    eligible_customer_classes: tuple = ()
    eligible_rate_codes: tuple = ()
    eligible_territories: tuple = ()
    eligible_substations: tuple = ()
    eligible_feeders: tuple = ()
    excludes_life_support: bool = False
    requires_device: bool = True
    allows_co_enrollment: bool = False
    questions: tuple[QuestionFacts, ...] = ()
    excluded_program_ids: frozenset = frozenset()  # mutually exclusive programs


@dataclass(frozen=True)
class EnrollmentFacts:
    """An existing enrollment (of any account) at a service point or holding a device."""

    id: int
    program_id: int
    program_code: str
    account_id: int
    status: str
    effective_date: dt.date | None
    end_date: dt.date | None
    service_point_id: int | None = None

    def running_on_or_after(self, day: dt.date) -> bool:
        """Still counts for a new open-ended period from ``day``: open, or unenrolled from a later date.

        Rejected and cancelled requests never held anything."""
        if self.status in OPEN_STATUSES:
            return self.end_date is None or self.end_date > day
        return self.status == "unenrolled" and self.end_date is not None and self.end_date > day


@dataclass(frozen=True)
class SubscriptionFacts:
    """An existing program subscription of a device, with its enrollment."""

    id: int
    enrollment: EnrollmentFacts
    start_date: dt.date
    end_date: dt.date | None
    exclusive: bool

    def running_on_or_after(self, day: dt.date) -> bool:
        return self.enrollment.running_on_or_after(day) and (self.end_date is None or self.end_date > day)


@dataclass(frozen=True)
class DeviceFacts:
    id: int
    label: str
    device_type: str
    ownership: str
    status: str
    installed_service_point_id: int | None  # where it is installed on the date (None: nowhere)
    subscriptions: tuple[SubscriptionFacts, ...] = ()


@dataclass(frozen=True)
class SiteFacts:
    """The account at the service point on the date."""

    account_id: int
    account_number: str
    account_status: str
    account_closed_on: dt.date | None
    life_support: bool
    service_point_id: int
    service_point_label: str
    has_agreement: bool  # an agreement of this account at this point is in effect on the date
    customer_class: str = ""
    rate_code: str = ""
    territory: str = ""
    substation: str = ""
    feeder: str = ""
    enrollments: tuple[EnrollmentFacts, ...] = field(default_factory=tuple)  # all enrollments at the point


def check_program(program: ProgramFacts, on: dt.date) -> list[Reason]:
    """Program ACTIVE (the only status taking enrollments) and ``on`` inside its enrollment window (inclusive)."""
    reasons = []
    if program.status != "active":
        reasons.append(Reason(PROGRAM_NOT_ACTIVE, f"Program {program.code} is {program.status}, not active: it "
                              "takes no enrollments.", "program", program_code=program.code))
    if program.enrollment_opens_on and on < program.enrollment_opens_on:
        reasons.append(Reason(ENROLLMENT_NOT_OPEN_YET, f"Enrollment in {program.code} opens on "
                              f"{program.enrollment_opens_on}; {on} is before it.", "effective_date",
                              program_code=program.code))
    if program.enrollment_closes_on and on > program.enrollment_closes_on:
        reasons.append(Reason(ENROLLMENT_CLOSED, f"Enrollment in {program.code} closed on "
                              f"{program.enrollment_closes_on}; {on} is after it.", "effective_date",
                              program_code=program.code))
    return reasons


def check_site(program: ProgramFacts, site: SiteFacts, on: dt.date, *, exclude_enrollment_id: int | None = None,
               ) -> list[Reason]:
    """Account open, agreement at the service point, class/rate/location, life support, double and exclusive
    enrollment of the service point."""
    reasons = []
    closed = site.account_status == "closed" or (site.account_closed_on is not None and site.account_closed_on <= on)
    if closed:
        reasons.append(Reason(ACCOUNT_CLOSED, f"Account {site.account_number} is closed"
                              + (f" (since {site.account_closed_on})." if site.account_closed_on else "."), "account"))
    if not site.has_agreement:
        reasons.append(Reason(NO_SERVICE_AGREEMENT, f"Account {site.account_number} has no service agreement at "
                              f"service point {site.service_point_label} on {on}.", "service_point"))
    restrictions = (
        (program.eligible_customer_classes, site.customer_class, CUSTOMER_CLASS_NOT_ELIGIBLE, "customer class"),
        (program.eligible_rate_codes, site.rate_code, RATE_CODE_NOT_ELIGIBLE, "rate code"),
        (program.eligible_territories, site.territory, TERRITORY_NOT_ELIGIBLE, "service territory"),
        (program.eligible_substations, site.substation, SUBSTATION_NOT_ELIGIBLE, "substation"),
        (program.eligible_feeders, site.feeder, FEEDER_NOT_ELIGIBLE, "feeder"),
    )
    for allowed, value, code, label in restrictions:
        if allowed and value not in allowed:
            reasons.append(Reason(code, f"Service point {site.service_point_label} {label} {value or '(none)'!r} is "
                                  f"not eligible for {program.code} (eligible: {', '.join(allowed)}).",
                                  "service_point", program_code=program.code))
    if program.excludes_life_support and site.life_support:
        reasons.append(Reason(LIFE_SUPPORT_EXCLUDED, f"Customers with life-support equipment on file are excluded "
                              f"from {program.code}.", "account", program_code=program.code))
    for other in site.enrollments:
        if other.id == exclude_enrollment_id or not other.running_on_or_after(on):
            continue
        if other.program_id == program.id:
            reasons.append(Reason(ALREADY_ENROLLED, f"Service point {site.service_point_label} is already enrolled "
                                  f"in {program.code} (enrollment {other.id}, {other.status}).", "service_point",
                                  enrollment_id=other.id, program_code=other.program_code))
        elif other.program_id in program.excluded_program_ids:
            reasons.append(Reason(SERVICE_POINT_IN_EXCLUSIVE_PROGRAM, f"Service point {site.service_point_label} is "
                                  f"enrolled in {other.program_code} (enrollment {other.id}), which excludes "
                                  f"{program.code} at overlapping dates.", "service_point",
                                  enrollment_id=other.id, program_code=other.program_code))
    return reasons


def check_device(program: ProgramFacts, site: SiteFacts, device: DeviceFacts, on: dt.date, *,
                 exclude_enrollment_id: int | None = None) -> list[Reason]:
    """Type eligible, customer-owned, not retired, installed at the service point, and not held on or after ``on``
    by another account, by a mutually exclusive program, or (for a program without co-enrollment) by any other
    exclusive subscription."""
    reasons = []
    label = f"Device {device.id} ({device.label})"
    if program.eligible_device_types and device.device_type not in program.eligible_device_types:
        reasons.append(Reason(DEVICE_TYPE_NOT_ELIGIBLE, f"{label} is a {device.device_type}; {program.code} takes "
                              f"{', '.join(program.eligible_device_types)}.", "devices", device_id=device.id))
    if device.ownership != "customer_owned":
        reasons.append(Reason(DEVICE_NOT_CUSTOMER_OWNED, f"{label} is not customer-owned; only customer-owned "
                              "devices can enroll.", "devices", device_id=device.id))
    if device.status == "retired":
        reasons.append(Reason(DEVICE_RETIRED, f"{label} is retired.", "devices", device_id=device.id))
    if device.installed_service_point_id != site.service_point_id:
        reasons.append(Reason(DEVICE_NOT_INSTALLED, f"{label} is not installed at service point "
                              f"{site.service_point_label} on {on}.", "devices", device_id=device.id))
    for sub in device.subscriptions:
        other = sub.enrollment
        if other.id == exclude_enrollment_id or not sub.running_on_or_after(on):
            continue
        if other.account_id != site.account_id:
            reasons.append(Reason(DEVICE_ENROLLED_BY_OTHER_ACCOUNT, f"{label} is enrolled by another account in "
                                  f"{other.program_code} (enrollment {other.id}).", "devices",
                                  enrollment_id=other.id, program_code=other.program_code, device_id=device.id))
        elif other.program_id in program.excluded_program_ids:
            reasons.append(Reason(DEVICE_IN_EXCLUSIVE_PROGRAM, f"{label} is in {other.program_code} (enrollment "
                                  f"{other.id}), which excludes {program.code} at overlapping dates.", "devices",
                                  enrollment_id=other.id, program_code=other.program_code, device_id=device.id))
        elif other.program_id == program.id and other.service_point_id == site.service_point_id:
            continue  # reported once, as already_enrolled for the service point
        elif other.program_id == program.id:
            reasons.append(Reason(DEVICE_ALREADY_SUBSCRIBED, f"{label} is already subscribed in {program.code} at "
                                  f"another service point (enrollment {other.id}).", "devices",
                                  enrollment_id=other.id, program_code=other.program_code, device_id=device.id))
        elif sub.exclusive and not program.allows_co_enrollment:
            reasons.append(Reason(DEVICE_ALREADY_SUBSCRIBED, f"{label} is already subscribed in {other.program_code} "
                                  f"(enrollment {other.id}); a device may be in one program at a time unless "
                                  "the programs allow co-enrollment.", "devices", enrollment_id=other.id,
                                  program_code=other.program_code, device_id=device.id))
    return reasons


def _is_number(value) -> bool:
    """A finite number, or a text of one: 'nan' and 'inf' are not (stored in the answers they made the JSON
    invalid: an IntegrityError read as a conflicting enrollment on SQLite, an HTTP 500 on PostgreSQL)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    try:
        return math.isfinite(value if isinstance(value, float) else to_float(str(value)))
    except (ValueError, OverflowError):
        return False


def check_answers(program: ProgramFacts, answers: dict | None) -> list[Reason]:
    """Each required question answered; answers of the right type (boolean, one of ``choices``, number, text);
    an answer qualifies when ``qualifying_answers`` is empty or contains it (for numbers, or lies in its
    ``{"min": x, "max": y}`` range)."""
    answers = answers or {}
    reasons = []
    for q in program.questions:
        value = answers.get(q.code)
        if value is None or value == "":
            if q.required:
                reasons.append(Reason(ANSWER_MISSING, f"Question {q.code!r} ({q.text or 'qualification'}) needs an "
                                      "answer.", "answers"))
            continue
        valid = {
            "boolean": isinstance(value, bool),
            "choice": value in q.choices if q.choices else True,
            "number": _is_number(value),
            "text": isinstance(value, str),
        }.get(q.answer_type, True)
        if not valid:
            expected = {"boolean": "true or false", "choice": f"one of {', '.join(map(str, q.choices))}",
                        "number": "a number", "text": "text"}.get(q.answer_type, q.answer_type)
            reasons.append(Reason(ANSWER_INVALID, f"Answer to {q.code!r} must be {expected}, got {value!r}.",
                                  "answers"))
            continue
        if isinstance(q.qualifying_answers, dict):  # a number range {"min": x, "max": y}, inclusive (programs.rules)
            low, high = q.qualifying_answers.get("min"), q.qualifying_answers.get("max")
            if (low is not None and float(value) < float(low)) or (high is not None and float(value) > float(high)):
                reasons.append(Reason(ANSWER_NOT_QUALIFYING, f"Answer {value!r} to {q.code!r} is outside the "
                                      f"qualifying range {low if low is not None else '-'} to "
                                      f"{high if high is not None else '-'} for {program.code}.", "answers",
                                      program_code=program.code))
        elif q.qualifying_answers:
            qualifying = value in q.qualifying_answers
            if q.answer_type == "number" and not qualifying:
                qualifying = any(_is_number(a) and float(a) == float(value) for a in q.qualifying_answers)
            if not qualifying:
                reasons.append(Reason(ANSWER_NOT_QUALIFYING, f"Answer {value!r} to {q.code!r} does not qualify for "
                                      f"{program.code}.", "answers", program_code=program.code))
    return reasons


def check_enrollment(program: ProgramFacts, site: SiteFacts, devices: list[DeviceFacts] | tuple, on: dt.date,
                     answers: dict | None = None, *, check_questions: bool = True) -> list[Reason]:
    """All reasons ``site`` (account at service point) may not enroll ``devices`` in ``program`` from ``on``.

    Empty list = eligible. A program that needs a device requires at least one; a program that needs none
    (``requires_device`` False) enrolls the service point alone and refuses devices.
    """
    reasons = check_program(program, on) + check_site(program, site, on)
    if program.requires_device:
        if not devices:
            reasons.append(Reason(DEVICE_REQUIRED, f"{program.code} needs at least one eligible device "
                                  f"({', '.join(program.eligible_device_types) or 'any type'}).", "devices"))
        for device in devices:
            reasons += check_device(program, site, device, on)
    elif devices:
        reasons.append(Reason(DEVICE_NOT_APPLICABLE, f"{program.code} enrolls the service point alone; do not "
                              "send devices.", "devices"))
    if check_questions:
        reasons += check_answers(program, answers)
    return reasons


@dataclass
class ProgramEligibility:
    """One line of an account's eligibility list: a program at one of its service points."""

    program: ProgramFacts
    site: SiteFacts
    eligible: bool
    reasons: list[Reason]
    eligible_device_ids: list[int]
    on: dt.date | None = None  # the local date checked


def evaluate_site_for_program(program: ProgramFacts, site: SiteFacts, installed: list[DeviceFacts],
                              on: dt.date) -> ProgramEligibility:
    """For an eligibility list: is ``site`` eligible for ``program`` with any of the devices ``installed`` there?

    Qualification answers are not known yet here (asked at enrollment), so they are not checked. A device program
    is eligible if at least one installed device passes every device check; if none does, their reasons are
    listed (or ``device_required`` when no device of an eligible type is installed).
    """
    reasons = check_program(program, on) + check_site(program, site, on)
    usable: list[int] = []
    if program.requires_device:
        candidates = [d for d in installed
                      if not program.eligible_device_types or d.device_type in program.eligible_device_types]
        device_reasons: list[Reason] = []
        for device in candidates:
            found = check_device(program, site, device, on)
            if found:
                device_reasons += found
            else:
                usable.append(device.id)
        if not usable:
            if not candidates:
                reasons.append(Reason(DEVICE_REQUIRED, f"No device eligible for {program.code} "
                                      f"({', '.join(program.eligible_device_types) or 'any type'}) is installed at "
                                      f"service point {site.service_point_label}.", "devices"))
            reasons += device_reasons
    return ProgramEligibility(program=program, site=site, eligible=not reasons, reasons=reasons,
                              eligible_device_ids=usable, on=on)
