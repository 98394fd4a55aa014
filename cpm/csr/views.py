"""CSR page views: thin — read through selectors, write through services (each action the adapter of a use case,
offered only to a user who may run it: ``cpm.csr.actions``), audit personal-data views."""

from __future__ import annotations

import datetime as dt
import functools

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from cpm.base.audit import audit_record
from cpm.base.errors import DomainError
from cpm.base.masking import contact_visible, masked_contact
from cpm.base.naturalkeys import MAX_ID
from cpm.base.numbers import ascii_digits, to_float
from cpm.base.timeutils import WallClockError, format_local_window, local_wall_to_utc_strict, zone
from cpm.notifications.choices import ContactChoice
from cpm.notifications.services import contact_preference_set
from devices.models import Device, ServicePoint
from enrollments.choices import EnrollmentSource, EnrollmentStatus, ReasonCode
from enrollments.models import Account, Customer, Enrollment
from enrollments.services import enrollment_request, enrollment_unenroll, program_today
from events.choices import OptOutChannel
from events.models import Participation
from events.services import participation_opt_out, unavailability_create, unavailability_period_errors
from programs.choices import AnswerType
from programs.models import Program
from settlement.charts import event_settlement_chart_svg
from settlement.models import EventSettlement

from . import selectors
from .actions import CONTACT_PREFERENCE, ENROLL, OPT_OUT, UNAVAILABILITY, UNENROLL, CsrAction, offers

CSR_PERMISSION = "cpm.use_csr_page"


@login_required
@permission_required(CSR_PERMISSION, raise_exception=True)
def search(request):
    query = request.GET.get("q", "")
    too_short = bool(query.strip()) and len(selectors.search_query(query)) < selectors.SEARCH_MIN_LENGTH
    # One more than shown: each probe then finds more than the limit when more match, so "more than 50" is known
    # (the page said "50 customers found" when 62 matched).
    results = selectors.customer_search(query=query, limit=selectors.SEARCH_LIMIT + 1) if query else []
    more = len(results) > selectors.SEARCH_LIMIT
    return render(request, "csr/search.html", {
        "query": query, "results": results[:selectors.SEARCH_LIMIT], "more": more, "too_short": too_short,
        "limit": selectors.SEARCH_LIMIT, "min_length": selectors.SEARCH_MIN_LENGTH})


@login_required
@permission_required(CSR_PERMISSION, raise_exception=True)
def customer_detail(request, customer_id: int):
    now = timezone.now()
    try:
        page = selectors.customer_page(customer_id=customer_id, now=now)
    except Customer.DoesNotExist as exc:
        raise Http404("No such customer") from exc
    show_pii = contact_visible(request.user)
    contact = {**masked_contact(request.user, email=page.customer.email, phone=page.customer.phone),
               "masked": not show_pii}
    audit_record(obj=page.customer, action="view_personal_data", now=now, actor=request.user,
                 changes={"unmasked": show_pii, "page": "csr_customer"})
    return render(request, "csr/customer.html", {"page": page, "contact": contact, "now": now,
                                                 "reason_codes": ReasonCode.choices,
                                                 "contact_choices": ContactChoice.choices,
                                                 "offers": offers(request.user)})


def csr_action(action: CsrAction):
    """A CSR page action: signed in, CSR page access, POST only, and a user who may run the action's use case
    (403 with the reason otherwise; the service checks again)."""

    def wrap(view):
        @functools.wraps(view)
        def guarded(request, *args, **kwargs):
            if not action.allowed(request.user):
                raise PermissionDenied(action.refusal())
            return view(request, *args, **kwargs)

        guarded.csr_action = action
        for decorator in (require_POST, permission_required(CSR_PERMISSION, raise_exception=True), login_required):
            guarded = decorator(guarded)
        return guarded

    return wrap


def _act(request, customer_id: int, anchor: str, call, *, done: str, refused: str):
    """Run one service call; show ``done`` (a sentence, or a function of the call's result giving one) or
    ``refused: <reasons>``, and go back to the customer's section. The service either writes everything or raises
    ``DomainError``."""
    try:
        result = call()
    except DomainError as exc:
        messages.error(request, f"{refused}: {_error_text(exc)}")
    else:
        messages.success(request, done(result) if callable(done) else done)
    return _redirect_customer(customer_id, anchor)


def _posted_id(request, name: str) -> int | None:
    """The id a form posted in ``name``, or None when it is missing or not a whole number (the lookup then answers
    404; a text where an id belongs raised ValueError, an HTTP 500)."""
    value = (request.POST.get(name) or "").strip()
    return int(value) if ascii_digits(value) else None


def _posted_text(request, name: str, *, limit: int | None = None) -> str:
    """Free text the CSR typed in ``name`` (a reason, an answer), without NUL characters: pasted in, they reached
    the database, which PostgreSQL refuses in a text column (an HTTP 500 after the CSR had confirmed)."""
    text = (request.POST.get(name) or "").replace("\x00", "")
    return text[:limit] if limit is not None else text


def _redirect_customer(customer_id: int, anchor: str = ""):
    return redirect(reverse("csr:customer", args=[customer_id]) + (f"#{anchor}" if anchor else ""))


def _error_text(exc: DomainError) -> str:
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return " ".join(r.message for r in reasons)
    return exc.message


def _answers_from(post, program: Program) -> dict:
    """Qualification answers from form fields ``q_<code>``, typed per question."""
    answers: dict = {}
    for question in program.questions.all():
        raw = post.get(f"q_{question.code}", "").replace("\x00", "").strip()
        if raw == "":
            continue
        if question.answer_type == AnswerType.BOOLEAN:
            answers[question.code] = raw in ("yes", "true", "on", "1")
        elif question.answer_type == AnswerType.NUMBER:
            try:
                answers[question.code] = to_float(raw)
            except ValueError:
                answers[question.code] = raw
        else:
            answers[question.code] = raw
    return answers


@csr_action(ENROLL)
def enroll(request, customer_id: int):
    """Enroll one of the customer's accounts at a service point in a program, with chosen devices and answers."""
    account = get_object_or_404(Account, pk=_posted_id(request, "account"), customer_id=customer_id)
    program = get_object_or_404(Program.objects.prefetch_related("questions"), pk=_posted_id(request, "program"))
    service_point = get_object_or_404(ServicePoint, pk=_posted_id(request, "service_point"))
    # An id no bigint holds names no device (and must not reach ``pk__in``: OverflowError on SQLite).
    device_ids = [int(x) for x in request.POST.getlist("devices") if ascii_digits(x) and 0 < int(x) <= MAX_ID]
    devices = list(Device.objects.filter(pk__in=device_ids))
    return _act(request, customer_id, "enrollments", lambda: enrollment_request(
        account=account, service_point=service_point, program=program, source=EnrollmentSource.CSR,
        devices=devices, answers=_answers_from(request.POST, program), now=timezone.now(), actor=request.user,
    )[0], done=lambda e: f"Enrolled in {program.name} ({e.get_status_display()}).",
        refused=f"Not enrolled in {program.name}")


def _confirmed(request) -> bool:
    """A destructive action runs only from its confirmation step (``confirmed=yes``, posted by the confirm page)."""
    return request.POST.get("confirmed") == "yes"


def _confirm(request, customer_id: int, *, title: str, question: str, consequences: list[str], action_url: str,
             fields: dict, button: str, anchor: str):
    """The confirmation step: what will happen, in words, and a form re-posting the same fields with
    ``confirmed=yes``; nothing changes until it is submitted."""
    customer = get_object_or_404(Customer, pk=customer_id)
    return render(request, "csr/confirm.html", {
        "customer": customer, "title": title, "question": question, "consequences": consequences,
        "action_url": action_url, "fields": fields, "button": button,
        "back_url": reverse("csr:customer", args=[customer_id]) + f"#{anchor}"})


@csr_action(UNENROLL)
def unenroll(request, customer_id: int, enrollment_id: int):
    """Unenroll, after a confirmation step showing the program, service point, reason and effective date."""
    enrollment = get_object_or_404(Enrollment.objects.select_related("program", "service_point"), pk=enrollment_id,
                                   account__customer_id=customer_id)
    now = timezone.now()
    reason = request.POST.get("reason_code") or ReasonCode.CUSTOMER_REQUEST
    if not _confirmed(request):
        effective = program_today(enrollment.program, now)
        return _confirm(
            request, customer_id, title="Confirm unenrollment",
            question=f"Unenroll service point {enrollment.service_point.service_point_id} from "
                     f"{enrollment.program.name}?",
            consequences=[f"The enrollment ends on {effective} (today in the program's time zone); its devices "
                          "are no longer called for events from then on.",
                          f"Reason recorded: {ReasonCode(reason).label if reason in ReasonCode.values else reason}."],
            action_url=reverse("csr:unenroll", args=[customer_id, enrollment.pk]),
            fields={"reason_code": reason, "reason_text": _posted_text(request, "reason_text")},
            button="Yes, unenroll", anchor="enrollments")
    return _act(request, customer_id, "enrollments", lambda: enrollment_unenroll(
        enrollment=enrollment, effective_date=program_today(enrollment.program, now), now=now, actor=request.user,
        reason_code=reason, reason_text=_posted_text(request, "reason_text")),
        done=lambda ended: (f"Enrollment request cancelled for {enrollment.program.name} (it was not yet active)."
                            if ended.status == EnrollmentStatus.CANCELLED
                            else f"Unenrolled from {enrollment.program.name}."),
        refused="Not unenrolled")


def local_window(start, end) -> str:
    """An event window in local time, labelled (``cpm.base.timeutils.format_local_window``)."""
    return format_local_window(start, end)


@csr_action(OPT_OUT)
def opt_out(request, customer_id: int, participation_id: int):
    """Opt a device out of an upcoming event for the customer (cut-off and allowance enforced by the service)."""
    participation = get_object_or_404(Participation.objects.select_related("event__program", "device"),
                                      pk=participation_id, enrollment__account__customer_id=customer_id)
    if not _confirmed(request):
        event, tz = participation.event, participation.event.program.time_zone
        start, end = participation.start.astimezone(zone(tz)), participation.end.astimezone(zone(tz))
        window = local_window(start, end)
        return _confirm(
            request, customer_id, title="Confirm opt-out",
            question=f"Opt {participation.device or 'the service point'} out of {event.name} ({window})?",
            consequences=["The device is not called for this event; the opt-out counts against the program's "
                          "allowance and may reduce the customer's incentive."],
            action_url=reverse("csr:opt_out", args=[customer_id, participation.pk]),
            fields={"reason": _posted_text(request, "reason", limit=300)}, button="Yes, opt out", anchor="upcoming")
    return _act(request, customer_id, "upcoming", lambda: participation_opt_out(
        participation=participation, channel=OptOutChannel.CSR, now=timezone.now(), actor=request.user,
        reason=_posted_text(request, "reason", limit=300)),
        done=f"Opted out of {participation.event.name}.", refused="Opt-out refused")


# The unavailability form's labels (templates/csr/customer.html) by the service's field names.
UNAVAILABILITY_LABELS = {"start": "From", "end": "To"}


@csr_action(UNAVAILABILITY)
def declare_unavailability(request, customer_id: int):
    """Record a period (local times in the program's zone) when the customer's devices must not be called."""
    enrollment = get_object_or_404(Enrollment.objects.select_related("program"), pk=_posted_id(request, "enrollment"),
                                   account__customer_id=customer_id)
    tz, labels = zone(enrollment.program.time_zone), UNAVAILABILITY_LABELS
    walls, unreadable = {}, []
    for key in ("start", "end"):
        raw = request.POST.get(key, "").strip()
        try:
            walls[key] = dt.datetime.fromisoformat(raw)
        except ValueError:  # named as the form labels it, with what was typed
            unreadable.append(f"{labels[key]} ({raw[:40]!r}) is not a date and time" if raw
                              else f"{labels[key]} is empty")
    if unreadable:
        messages.error(request, f"Unavailability not recorded: {', '.join(unreadable)}; the period's start and end "
                                "must be dates and times (YYYY-MM-DDTHH:MM) in the program's time zone.")
        return _redirect_customer(customer_id, "unavailability")
    try:
        start = local_wall_to_utc_strict(walls["start"], tz, field=labels["start"])
        end = local_wall_to_utc_strict(walls["end"], tz, field=labels["end"])
    except WallClockError as exc:
        text = str(exc)
        if exc.choices:  # a repeated time: the page's date-and-time boxes cannot take the offset that picks one
            text = (f"{exc.problem} The {labels['start']} and {labels['end']} boxes cannot say which: choose a time "
                    "before or after the repeated hour, or declare the period in the admin's Unavailability form, "
                    f"typing {' or '.join(exc.choices)}.")
        messages.error(request, f"Unavailability not recorded: {text}")
        return _redirect_customer(customer_id, "unavailability")
    now = timezone.now()
    problems = unavailability_period_errors(start=start, end=end, now=now, labels=labels)
    if problems:  # named as the form labels them (the service would name the API's fields: start, end)
        messages.error(request, "Unavailability not recorded: " + " ".join(m for ms in problems.values() for m in ms))
        return _redirect_customer(customer_id, "unavailability")
    return _act(request, customer_id, "unavailability", lambda: unavailability_create(
        enrollment=enrollment, start=start, end=end, reason=_posted_text(request, "reason"), now=now,
        actor=request.user),
        done=lambda item: (f"Unavailability already recorded for {enrollment.program.name}: nothing changed."
                           if item.already_recorded else f"Unavailability recorded for {enrollment.program.name}."),
        refused="Unavailability not recorded")


@csr_action(CONTACT_PREFERENCE)
def contact_preference(request, customer_id: int):
    """Set how the customer wants to hear from the utility (e-mail, SMS, both, none), for every program or one of
    the customer's programs (``cpm.notifications`` use case ``contact_preference.set``)."""
    customer = get_object_or_404(Customer, pk=customer_id)
    program = None
    if request.POST.get("program"):
        # ``distinct``: a customer may hold several enrollments in the program (two service points, or enrolled
        # again after one ended).
        program = get_object_or_404(Program.objects.filter(enrollments__account__customer=customer).distinct(),
                                    pk=_posted_id(request, "program"))
    channel = request.POST.get("channel", "")
    return _act(request, customer_id, "messages", lambda: contact_preference_set(
        customer=customer, channel=channel, program=program, now=timezone.now(), actor=request.user),
        done=lambda pref: f"Messages: {pref.get_channel_display()} "
                          f"{'for ' + program.name if program else 'for every program'}.",
        refused="Preference not changed")


@login_required
@permission_required(CSR_PERMISSION, raise_exception=True)
def settlement_detail(request, customer_id: int, settlement_id: int):
    """One event settlement explained: the baseline chart and the numbers behind the credit."""
    settlement = get_object_or_404(EventSettlement.objects.select_related("event", "program", "device",
                                                                          "service_point", "account"),
                                   pk=settlement_id, account__customer_id=customer_id)
    return render(request, "csr/settlement.html", {"s": settlement, "customer_id": customer_id,
                                                   "chart": mark_safe(event_settlement_chart_svg(settlement))})
