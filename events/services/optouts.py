"""Opt-outs, aggregators' outcome reports and customer-declared unavailability.

Use cases: ``participation.opt_out`` (a CSR on the customer's behalf, ``Cap.OPT_OUT_ON_BEHALF``; an aggregator for
its own devices only, ``Cap.REPORT_OUTCOMES``), ``participation.report_outcomes`` (``Cap.REPORT_OUTCOMES``, an
aggregator for its own devices) and ``unavailability.create`` (``Cap.OPT_OUT_ON_BEHALF``). The aggregator scope is
checked here, not only by the API's querysets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from cpm.base.audit import actor_user, audit_record
from cpm.base.capabilities import Cap, CustomerActor, SystemActor, actor_can, use_case
from cpm.base.errors import ConflictError, DomainValidationError, NotFound, PermissionDenied
from cpm.base.naturalkeys import MAX_ID
from cpm.base.states import check_transition, transition
from cpm.base.timeutils import a_year_after, zone
from devices.models import Aggregator, Device
from devices.selectors import aggregator_of
from enrollments.choices import OPEN_ENROLLMENT_STATUSES
from enrollments.models import Enrollment, ProgramSubscription

from ..choices import PARTICIPATION_TRANSITIONS, EventStatus, OptOutChannel, ParticipationStatus
from ..models import OptOut, Participation, Unavailability
from ..selectors import opt_out_refusals
from .common import RELEASED
from .release import release_for_unavailability

# Opt-out channels that are requests (refused after the cut-off); the others report what happened at the device.
REQUEST_CHANNELS = (OptOutChannel.CSR, OptOutChannel.PORTAL, OptOutChannel.AGGREGATOR_API, OptOutChannel.NOTICE_LINK)


def _check_aggregator_scope(actor: Any, participation: Participation) -> None:
    """An aggregator's user acts only on its own devices (``NotFound``, as the API's queryset answers); a customer
    by link (``CustomerActor``) only on their own participations (``NotFound``); a user who may only report
    outcomes, and is no aggregator's client, may not opt out (``PermissionDenied``)."""
    if isinstance(actor, SystemActor):
        return
    if isinstance(actor, CustomerActor):
        # A customer (by a signed link) opts out only their own participations, like an aggregator its devices.
        own = Enrollment.objects.filter(pk=participation.enrollment_id,
                                        account__customer_id=actor.customer_id).exists()
        if not own:
            raise NotFound(f"Participation {participation.pk} not found.")
        return
    aggregator = aggregator_of(actor)
    if aggregator is not None:
        own = Device.objects.filter(pk=participation.device_id, aggregator_id=aggregator.pk).exists()
        if participation.device_id is None or not own:
            raise NotFound(f"Participation {participation.pk} not found.")
    elif not actor_can(actor, Cap.OPT_OUT_ON_BEHALF):
        raise PermissionDenied("Only a CSR, or an aggregator for its own devices, may opt a device out.",
                               code="capability_required")


def _check_opt_out_allowed(p: Participation, *, channel: str, at: dt.datetime) -> None:
    """The participation may still be opted out at ``at`` through ``channel`` (``ConflictError`` /
    ``DomainValidationError`` / ``TransitionNotAllowed`` otherwise)."""
    event = p.event
    if event.status == EventStatus.CANCELLED or p.status == RELEASED:
        raise ConflictError(f"Event #{event.pk} '{event.name}' was cancelled; there is nothing to opt out of.")
    check_transition(allowed=PARTICIPATION_TRANSITIONS, current=p.status, to=ParticipationStatus.OPTED_OUT,
                     label=f"Participation #{p.pk}")
    if at >= event.end:
        end = event.end.astimezone(zone(event.program.time_zone)).isoformat()
        raise DomainValidationError({"at": [f"The event ended at {end}; an opt-out must be before the end."]})
    if channel in REQUEST_CHANNELS:
        # The same check as the CSR page's upcoming participations (events.selectors.opt_out_refusals).
        refusal = opt_out_refusals([p], at=at)[p.pk]
        if refusal is not None:
            raise ConflictError(refusal.message, code=refusal.code)


@use_case("participation.opt_out", Cap.OPT_OUT_ON_BEHALF, Cap.REPORT_OUTCOMES)
def participation_opt_out(
    *,
    participation: Participation,
    channel: str,
    at: dt.datetime | None = None,
    now: dt.datetime,
    actor: Any,
    reason: str = "",
) -> OptOut:
    """Record an opt-out of a participation at ``at`` (default ``now``); the minutes before it are kept
    (``Participation.opted_out_at``) for proration.

    Requests (CSR page, portal, aggregator API) are refused (``ConflictError``, code ``opt_out_cutoff`` or
    ``opt_out_allowance``) after the program's cut-off (``opt_out_cutoff_minutes`` before start) and, when the rule
    sets ``refuse_opt_out_beyond_allowance``, once the allowance is used: a count per season, or a percentage of
    the season's event hours (``programs.rules.check_opt_out_request``, through ``events.selectors
    .opt_out_refusals`` so the CSR page shows the same answer).
    A request is checked, and takes effect, when it is made: an ``at`` before ``now`` is read as ``now`` (a request
    typed with an earlier time must not slip past the cut-off or the allowance).
    Reports of what happened at the device (aggregator outcome report, device override) are recorded whatever the
    time, and counted. Opting out twice returns the first opt-out (idempotent). Cancelled events: ``ConflictError``.
    An aggregator's user may opt out only its own devices' participations (``NotFound`` otherwise); its request
    is recorded with the channel ``aggregator_api`` whichever request channel it names.
    """
    at = at or now
    if channel in REQUEST_CHANNELS and not isinstance(actor, SystemActor | CustomerActor) \
            and aggregator_of(actor) is not None:
        # An aggregator's client requests through the aggregator API, whatever channel it names (the default
        # ``csr`` would read as the utility's CSR, ``portal`` as the customer's portal).
        channel = OptOutChannel.AGGREGATOR_API
    if channel in REQUEST_CHANNELS and at < now:
        at = now
    with transaction.atomic():
        p = Participation.objects.select_for_update().select_related("event__program").get(pk=participation.pk)
        _check_aggregator_scope(actor, p)
        # Serialize opt-outs of the same enrollment so two requests cannot both take the last allowance.
        Enrollment.objects.select_for_update().filter(pk=p.enrollment_id).values_list("pk").first()
        existing = OptOut.objects.filter(participation=p).first()
        if existing:
            return existing
        _check_opt_out_allowed(p, channel=channel, at=at)
        opt_out = OptOut.objects.create(participation=p, channel=channel, at=at, recorded_by=actor_user(actor),
                                        reason=(reason or "")[:300])
        transition(obj=p, to=ParticipationStatus.OPTED_OUT, allowed=PARTICIPATION_TRANSITIONS, now=now, actor=actor,
                   reason=f"opt-out via {channel}" + (f": {reason}" if reason else ""),
                   extra_updates={"opted_out_at": at})
        return opt_out


def _record_outcome(p: Participation, row: dict[str, Any], *, aggregator: Aggregator, revision: int,
                    now: dt.datetime, actor: Any) -> None:
    """One reported outcome in its own transaction: an opt-out through ``participation_opt_out`` (the same actor),
    any other status as a transition."""
    status = row["status"]
    with transaction.atomic():
        if status == ParticipationStatus.OPTED_OUT:
            participation_opt_out(participation=p, channel=OptOutChannel.AGGREGATOR_REPORT,
                                  at=row.get("opted_out_at") or now, now=now, actor=actor,
                                  reason="aggregator outcome report")
            Participation.objects.filter(pk=p.pk).update(outcome_revision=revision, outcome_reported_at=now)
        else:
            # The event's program loaded: a refusal names the event in its program's zone.
            locked = Participation.objects.select_related("event__program").select_for_update(of=("self",)).get(
                pk=p.pk)
            transition(obj=locked, to=status, allowed=PARTICIPATION_TRANSITIONS, now=now, actor=actor,
                       reason=f"aggregator {aggregator.code} outcome, revision {revision}",
                       extra_updates={"outcome_revision": revision, "outcome_reported_at": now})


@use_case("participation.report_outcomes", Cap.REPORT_OUTCOMES)
def participation_outcomes_report(
    *,
    aggregator: Aggregator,
    outcomes: list[dict[str, Any]],
    now: dt.datetime,
    actor: Any,
) -> list[dict[str, Any]]:
    """Record per-device outcomes reported by an aggregator, each row on its own (per-row result, nothing
    half-written for a row). A row: ``event`` (id), ``device`` (the aggregator's device id), ``revision``,
    ``status`` (participated, opted_out, non_responsive, failed), optional ``opted_out_at`` (aware).

    Idempotent per (event, device, revision): the same report again (or a row repeated in one report) is
    ``unchanged``. Returns
    ``[{"index", "event", "device", "result": "recorded"|"unchanged"|"error", "detail"}]``. An aggregator's user
    reports only for its own aggregator (``PermissionDenied``).
    """
    if not isinstance(actor, SystemActor):
        own = aggregator_of(actor)
        if own is not None and own.pk != aggregator.pk:
            raise PermissionDenied(f"{own.code} may report outcomes only for its own devices.",
                                   code="capability_required")
    # An event id no bigint holds names no event (and must not reach the database: OverflowError on SQLite): its row
    # gets the row's error below, like any other unknown event.
    keys = {(int(o["event"]), str(o["device"])) for o in outcomes if 0 < int(o["event"]) <= MAX_ID}
    found = {
        (p.event_id, p.device.aggregator_device_id): p
        for p in Participation.objects.filter(
            event_id__in={k[0] for k in keys}, device__aggregator=aggregator,
            device__aggregator_device_id__in={k[1] for k in keys}).select_related("event__program", "device")
    }
    results = []
    for index, row in enumerate(outcomes):
        key = (int(row["event"]), str(row["device"]))
        base = {"index": index, "event": key[0], "device": key[1]}
        p = found.get(key)
        status, revision = row["status"], int(row["revision"])
        if p is None:
            results.append({**base, "result": "error", "detail": "This device is not reserved for this event."})
            continue
        if revision > p.event.revision or revision < 1:
            results.append({**base, "result": "error",
                            "detail": f"Unknown revision {revision} (event is at revision {p.event.revision})."})
            continue
        if p.outcome_revision == revision and p.status == status:
            results.append({**base, "result": "unchanged", "detail": ""})
            continue
        try:
            _record_outcome(p, row, aggregator=aggregator, revision=revision, now=now, actor=actor)
            p.status, p.outcome_revision = status, revision  # a repeated row of this report is then unchanged
            results.append({**base, "result": "recorded", "detail": ""})
        except DomainValidationError as exc:
            # The row's field is ``opted_out_at`` (the opt-out service calls it ``at``).
            field, messages = next(iter(exc.errors.items()))
            field = "opted_out_at" if field == "at" else field
            results.append({**base, "result": "error", "detail": f"{field}: {messages[0]}"})
        except ConflictError as exc:
            results.append({**base, "result": "error", "detail": exc.message})
    return results


# ------------------------------------------------------------------------------------------------- unavailability
# The fields of a declared period as the API names them; a form passes the labels it shows (the CSR page: From, To).
API_PERIOD_LABELS = {"start": "start", "end": "end"}


def unavailability_period_errors(*, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                                 labels: Mapping[str, str] = API_PERIOD_LABELS) -> dict[str, list[str]]:
    """What is wrong with a declared period ``[start, end)`` (aware) at ``now``: ``{"end": [message]}`` (the
    field to correct is always ``end``), empty when nothing is. The messages name the fields by ``labels``
    (``{"start": ..., "end": ...}``): the API's names by default, the form's labels on a form, so a person reads
    "To must be after From." where the form says From and To. ``unavailability_create`` refuses with the same
    errors (API names)."""
    if end <= start:
        return {"end": [f"{labels['end']} must be after {labels['start']}."]}
    if end <= now:
        return {"end": [f"The period is already over: {labels['end']} must be later than now."]}
    if end > a_year_after(max(start, now)):
        return {"end": [f"{labels['end']} is more than a year after {labels['start']}: a declared period lasts at "
                        "most one year (an end such as 9999-12-31 would keep the devices out of every event while "
                        "the enrollment looks active); for a longer absence unenroll, or declare the next period "
                        "later."]}
    return {}


@use_case("unavailability.create", Cap.OPT_OUT_ON_BEHALF)
@transaction.atomic
def unavailability_create(
    *,
    enrollment: Enrollment,
    start: dt.datetime,
    end: dt.datetime,
    device: Device | None = None,
    reason: str = "",
    now: dt.datetime,
    actor: Any,
) -> Unavailability:
    """Record a customer-declared period ``[start, end)`` (aware) when the enrollment's devices (or one device)
    must not be called. The device must be subscribed in the enrollment (``DomainValidationError``).

    Reservations it covers are released at once (``release.release_for_unavailability``: events not yet
    completed, ledger row RELEASED with the period in words, a RELEASE message if the event was sent), by the same
    actor, in the same transaction.

    Idempotent: the same period declared again for the same enrollment and device (a double click, a retried
    request) returns the one already recorded, with ``already_recorded`` True, and writes nothing (it was recorded
    and audited twice)."""
    errors = unavailability_period_errors(start=start, end=end, now=now)
    if enrollment.status not in OPEN_ENROLLMENT_STATUSES:  # devices no longer (or never) in the program
        errors["enrollment"] = [
            f"The enrollment in {enrollment.program.name} at service point {enrollment.service_point.service_point_id} "
            f"is {enrollment.get_status_display().lower()}: unavailability is declared only for an enrollment in the "
            "program (requested, pending approval, active or suspended)."]
    if device is not None and not ProgramSubscription.objects.filter(enrollment=enrollment, device=device).exists():
        errors["device"] = [f"Device {device.pk} is not subscribed in enrollment {enrollment.pk}."]
    if errors:
        raise DomainValidationError(errors)
    Enrollment.objects.select_for_update().filter(pk=enrollment.pk).first()  # serialises two identical posts
    same = Unavailability.objects.filter(enrollment=enrollment, device=device, start=start, end=end).first()
    if same is not None:
        same.already_recorded = True
        return same
    item = Unavailability.objects.create(enrollment=enrollment, device=device, start=start, end=end,
                                         reason=(reason or "")[:300])
    item.already_recorded = False
    audit_record(obj=item, action="create", now=now, actor=actor, reason=reason,
                 changes={"start": start.isoformat(), "end": end.isoformat(), "device": device and device.pk})
    release_for_unavailability(item, tz_name=enrollment.program.time_zone, now=now, actor=actor)
    return item
