"""The write path of the OpenADR 3 VTN. Every public write is a use case (``cpm.base.capabilities``) taking ``now``
and ``actor`` (the OAuth client's user, or a named system actor); writes to cpm's own objects go through the apps'
services (``programs.services``, ``events.services``: lifecycle, opt-outs and outcome reports;
``settlement.meterdata.loaders`` for telemetry), so the participation rules and audit trail apply to OpenADR
clients like to any other door.

- VENs and resources: an aggregator is a VEN (one each); its devices are resources named by the aggregator's device
  id. A VEN client registers and changes only its own VEN; business logic names the aggregator by its code.
- Events: ``oadr_event_create`` is cpm's ``event_create`` + ``event_schedule``; ``oadr_event_publish`` writes the
  OpenADR view of a cpm event (after its reservation, each modification, its cancellation) and notifies the
  subscribers. ``modificationNumber`` = the cpm revision - 1; the cancellation deletes the event from the VTN's view
  (``DELETE`` notification), as the spec cancels.
- Reports: ``OPERATING_STATE`` payloads become participation outcomes (``OPTED_OUT`` an opt-out at the interval's
  start), ``USAGE`` payloads device telemetry readings (kWh per interval, >= 0 delivered, < 0 received) loaded as
  versioned meter data (a report sent twice changes nothing).
- Subscriptions: webhooks; ``Notification`` rows (the body JSON-encoded once) delivered by the
  ``openadr3.deliver_notification`` task with retries.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import urllib.error
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from cpm.base.audit import audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError, NotFound, PermissionDenied
from cpm.base.numbers import ascii_digits, to_decimal
from cpm.base.states import transition
from cpm.base.tasks import enqueue_on_commit
from devices.models import Aggregator, Device
from devices.selectors import aggregator_of
from events import services as event_services
from events.choices import EventCategory, EventDirection, EventStatus, ParticipationStatus
from events.models import Event, Participation
from programs.choices import DEVICE_TYPES_OF_PROGRAM_TYPE, ProgramType
from programs.models import Program

from . import documents as docs
from . import v31
from .models import (
    NOTIFICATION_TRANSITIONS,
    Notification,
    NotificationStatus,
    OadrEvent,
    OadrEventTarget,
    ProgramSettings,
    Report,
    Resource,
    Subscription,
    Ven,
)

OBJECT_TYPES = ("PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE")
OPERATIONS = ("GET", "POST", "PUT", "DELETE")
VEN_CAPS = (Cap.MANAGE_PROGRAMS, Cap.MANAGE_DEVICES)
SUBSCRIPTION_CAPS = (Cap.MANAGE_EVENTS, Cap.MANAGE_PROGRAMS, Cap.REPORT_OUTCOMES)


def _text(data: dict, key: str, *, required: bool = False, max_length: int = 128) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise DomainValidationError({key: ["This field is required."]})
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise DomainValidationError({key: [f"Give a text of 1 to {max_length} characters."]})
    return value


def _values_maps(data: dict, key: str) -> list[dict]:
    """A list of the spec's valuesMap objects ``{"type": str, "values": [...]}`` (None = empty)."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(
            isinstance(v, dict) and isinstance(v.get("type"), str) and isinstance(v.get("values"), list)
            for v in value):
        raise DomainValidationError({key: ["Give a list of {type, values} objects."]})
    return [{"type": v["type"], "values": list(v["values"])} for v in value]


def _own_aggregator(actor: Any) -> Aggregator | None:
    return aggregator_of(actor) if not isinstance(actor, str) else None


# --------------------------------------------------------------------------------------------------- credentials
@use_case("openadr3.credentials.issue", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def credentials_issue(*, aggregator: Aggregator, now: dt.datetime, actor: Any) -> tuple[str, str]:
    """Issue OAuth 2 client credentials (client-credentials grant) for an aggregator's VEN client: a
    django-oauth-toolkit application of the aggregator's API user. Returns ``(client_id, client_secret)``; the
    secret is shown once (stored hashed). The aggregator must have an API user (``ConflictError``)."""
    from oauth2_provider.models import Application

    if aggregator.api_user_id is None:
        raise ConflictError(f"Aggregator {aggregator.code} has no API user; give it one first.")
    secret = secrets.token_urlsafe(32)
    app = Application.objects.create(
        name=f"OpenADR 3 VEN {aggregator.code}"[:255], user_id=aggregator.api_user_id,
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret)
    audit_record(obj=aggregator, action="update", now=now, actor=actor, reason="OpenADR 3 client credentials issued",
                 changes={"client_id": app.client_id})
    return app.client_id, secret


# ------------------------------------------------------------------------------------------------ program settings
@use_case("openadr3.program_settings.set", Cap.MANAGE_PROGRAMS)
@transaction.atomic
def program_settings_set(*, program: Program, randomize_start_seconds: int, now: dt.datetime,
                         actor: Any) -> ProgramSettings:
    """Set what OpenADR adds to a program: ``randomize_start_seconds`` (0 to 86,400) tells VENs to start each event
    at a random instant within that window (``intervalPeriod.randomizeStart`` of events published from now on)."""
    if not 0 <= randomize_start_seconds <= 86400:
        raise DomainValidationError({"randomize_start_seconds": ["Give 0 to 86,400 seconds."]})
    row, _ = ProgramSettings.objects.update_or_create(program=program,
                                                      defaults={"randomize_start_seconds": randomize_start_seconds})
    audit_record(obj=program, action="update", now=now, actor=actor,
                 changes={"openadr3_randomize_start_seconds": randomize_start_seconds})
    return row


# ---------------------------------------------------------------------------------------------------------- VENs
@use_case("openadr3.ven.create", *VEN_CAPS)
@transaction.atomic
def ven_create(*, data: dict, client_id: str, now: dt.datetime, actor: Any) -> Ven:
    """Register a VEN. A VEN client registers its own aggregator (once: a second VEN is a ``ConflictError``);
    business logic names the aggregator by its code in ``venName``. ``venName`` is unique (``ConflictError``).
    The aggregator's devices become the VEN's resources (named by the aggregator's device id)."""
    name = _text(data, "venName", required=True)
    aggregator = _own_aggregator(actor)
    if aggregator is None:
        aggregator = Aggregator.objects.filter(code=name).first()
        if aggregator is None:
            raise DomainValidationError({"venName": [f"No aggregator has the code {name!r}: a VEN of business "
                                                     "logic is named by its aggregator's code."]})
    if Ven.objects.filter(aggregator=aggregator).exists():
        raise ConflictError(f"Aggregator {aggregator.code} already has a VEN.")
    if Ven.objects.filter(ven_name=name).exists():
        raise ConflictError(f"A VEN named {name!r} already exists.")
    _check_not_another_code(name, aggregator.pk)
    ven = Ven.objects.create(aggregator=aggregator, ven_name=name, client_id=client_id[:128],
                             attributes=_values_maps(data, "attributes"), targets=_values_maps(data, "targets"),
                             created_at=now, updated_at=now)
    Resource.objects.bulk_create(
        [Resource(ven=ven, resource_name=dev_id, device_id=pk, created_at=now, updated_at=now)
         for pk, dev_id in Device.objects.filter(aggregator=aggregator).values_list("pk", "aggregator_device_id")],
        batch_size=2000, ignore_conflicts=True)
    audit_record(obj=ven, action="create", now=now, actor=actor, changes={"venName": name,
                                                                           "aggregator": aggregator.code})
    notify_object("VEN", "POST", ven_id=ven.pk, now=now)
    return ven


@use_case("openadr3.ven.update", *VEN_CAPS)
@transaction.atomic
def ven_update(*, ven: Ven, data: dict, now: dt.datetime, actor: Any) -> Ven:
    """Change a VEN's name, attributes or targets (a VEN client only its own: ``NotFound``)."""
    ven = Ven.objects.select_for_update().get(pk=ven.pk)
    _check_owner(ven.aggregator_id, actor, what=f"VEN {ven.pk}")
    name = _text(data, "venName", required=True)
    if name != ven.ven_name and Ven.objects.filter(ven_name=name).exists():
        raise ConflictError(f"A VEN named {name!r} already exists.")
    _check_not_another_code(name, ven.aggregator_id)
    before = {"venName": ven.ven_name}
    ven.ven_name, ven.attributes, ven.targets = name, _values_maps(data, "attributes"), _values_maps(data, "targets")
    ven.updated_at = now
    ven.save()
    audit_record(obj=ven, action="update", now=now, actor=actor, changes={"before": before, "after": {"venName": name}})
    notify_object("VEN", "PUT", ven_id=ven.pk, now=now)
    return ven


@use_case("openadr3.ven.delete", *VEN_CAPS)
@transaction.atomic
def ven_delete(*, ven: Ven, now: dt.datetime, actor: Any) -> dict:
    """Delete a VEN and its resources; refused (``ConflictError``) once it has reports. Returns its document."""
    ven = Ven.objects.select_for_update().get(pk=ven.pk)
    _check_owner(ven.aggregator_id, actor, what=f"VEN {ven.pk}")
    if Report.objects.filter(ven=ven).exists():
        raise ConflictError(f"VEN {ven.ven_name} has reports and cannot be deleted.")
    doc = docs.ven_doc(ven)
    notify_object("VEN", "DELETE", ven_id=ven.pk, now=now, doc=doc)
    audit_record(obj=ven, action="delete", now=now, actor=actor, changes={"venName": ven.ven_name})
    ven.delete()
    return doc


def _check_not_another_code(name: str, aggregator_id: int) -> None:
    """A VEN's name is never another aggregator's code: business logic names an aggregator's VEN by its code (when
    registering it, and in an event's ``VEN_NAME`` targets), so a VEN under another's code would block that
    aggregator's registration and receive the events meant for it (``ConflictError``)."""
    if Aggregator.objects.filter(code=name).exclude(pk=aggregator_id).exists():
        raise ConflictError(f"The VEN name {name!r} is the code of another aggregator.")


def _check_owner(aggregator_id: int | None, actor: Any, *, what: str) -> None:
    """A VEN client changes only its own aggregator's objects; another's is as good as absent (404, naming
    ``what``: "VEN 3", "Subscription 7"). Business logic (no aggregator of its own) changes any."""
    own = _own_aggregator(actor)
    if own is not None and own.pk != aggregator_id:
        raise NotFound(f"{what} not found.")


# ------------------------------------------------------------------------------------------------------ resources
@use_case("openadr3.resource.create", *VEN_CAPS)
@transaction.atomic
def resource_create(*, ven: Ven, data: dict, now: dt.datetime, actor: Any) -> Resource:
    """Add a resource to a VEN; ``resourceName`` unique in the VEN (``ConflictError``), linked to the aggregator's
    device with that device id when there is one."""
    _check_owner(ven.aggregator_id, actor, what=f"VEN {ven.pk}")
    name = _text(data, "resourceName", required=True)
    if Resource.objects.filter(ven=ven, resource_name=name).exists():
        raise ConflictError(f"VEN {ven.ven_name} already has a resource named {name!r}.")
    device = Device.objects.filter(aggregator_id=ven.aggregator_id, aggregator_device_id=name).first()
    resource = Resource.objects.create(ven=ven, resource_name=name, device=device,
                                       attributes=_values_maps(data, "attributes"),
                                       targets=_values_maps(data, "targets"), created_at=now, updated_at=now)
    audit_record(obj=resource, action="create", now=now, actor=actor, changes={"resourceName": name})
    notify_object("RESOURCE", "POST", ven_id=ven.pk, now=now, doc=docs.resource_doc(resource))
    return resource


@use_case("openadr3.resource.update", *VEN_CAPS)
@transaction.atomic
def resource_update(*, resource: Resource, data: dict, now: dt.datetime, actor: Any) -> Resource:
    """Change a resource's name, attributes or targets (the device link follows the name)."""
    _check_owner(resource.ven.aggregator_id, actor, what=f"VEN {resource.ven_id}")
    name = _text(data, "resourceName", required=True)
    if name != resource.resource_name and Resource.objects.filter(ven=resource.ven, resource_name=name).exists():
        raise ConflictError(f"VEN {resource.ven.ven_name} already has a resource named {name!r}.")
    resource.resource_name = name
    resource.device = Device.objects.filter(aggregator_id=resource.ven.aggregator_id,
                                            aggregator_device_id=name).first()
    resource.attributes, resource.targets = _values_maps(data, "attributes"), _values_maps(data, "targets")
    resource.updated_at = now
    resource.save()
    audit_record(obj=resource, action="update", now=now, actor=actor, changes={"resourceName": name})
    notify_object("RESOURCE", "PUT", ven_id=resource.ven_id, now=now, doc=docs.resource_doc(resource))
    return resource


@use_case("openadr3.resource.delete", *VEN_CAPS)
@transaction.atomic
def resource_delete(*, resource: Resource, now: dt.datetime, actor: Any) -> dict:
    """Delete a resource (the device stays in cpm). Returns its document."""
    _check_owner(resource.ven.aggregator_id, actor, what=f"VEN {resource.ven_id}")
    doc = docs.resource_doc(resource)
    notify_object("RESOURCE", "DELETE", ven_id=resource.ven_id, now=now, doc=doc)
    audit_record(obj=resource, action="delete", now=now, actor=actor, changes={"resourceName": resource.resource_name})
    resource.delete()
    return doc


# ------------------------------------------------------------------------------------------------------- programs
def program_fields(data: dict, *, creating: bool) -> dict[str, Any]:
    """OpenADR program fields -> cpm program fields: ``programName`` the code, ``programLongName`` the name,
    ``programType`` a cpm program type; the zone is ``OPENADR3_PROGRAM_TIME_ZONE`` (the spec's program has none)."""
    name = _text(data, "programName", required=True)
    fields: dict[str, Any] = {"code": name, "name": _text(data, "programLongName", max_length=200) or name}
    if data.get("programType") is not None:
        fields["program_type"] = _text(data, "programType", max_length=32)
    elif creating:
        raise DomainValidationError({"programType": ["Give the cpm program type (e.g. thermostat_dr)."]})
    if creating:
        fields["time_zone"] = settings.OPENADR3_PROGRAM_TIME_ZONE
        # The spec's program names no device: a program made through OpenADR takes the device type its cpm type
        # calls (a peak-time rebate none), so that it can be enrolled in and changed later like any other.
        kind = fields.get("program_type")
        if kind == ProgramType.PEAK_TIME_REBATE:
            fields["requires_device"], fields["eligible_device_types"] = False, []
        elif kind in DEVICE_TYPES_OF_PROGRAM_TYPE:
            fields["eligible_device_types"] = list(DEVICE_TYPES_OF_PROGRAM_TYPE[kind])
    return fields


PROGRAM_OPERATIONS = {"created": "POST", "updated": "PUT", "deleted": "DELETE"}


def program_notify(*, program: Program, change: str, now: dt.datetime) -> None:
    """Notify the subscribers of programs (business logic, and VENs: every program is theirs to read) that
    ``program`` was ``change``d ("created", "updated", "deleted": POST, PUT, DELETE), with its document as it is now
    (a deleted program's as it was); inside the caller's transaction, delivered after the commit. Called by the
    ``programs.signals.program_changed`` receiver, whatever door changed the program."""
    notify_object("PROGRAM", PROGRAM_OPERATIONS[change], program_id=program.pk, now=now,
                  doc=docs.program_doc(program))


def program_errors(exc: DomainValidationError) -> DomainValidationError:
    """cpm's field names in a program error -> the OpenADR field names."""
    names = {"code": "programName", "name": "programLongName", "program_type": "programType"}
    return DomainValidationError({names.get(k, k): v for k, v in exc.errors.items()})


# --------------------------------------------------------------------------------------------------------- events
MAX_KW = Decimal("999999999.999")  # what an event's target_kw holds (12 digits, 3 decimals)


def _period_end(start: dt.datetime, duration: dt.timedelta, field: str) -> dt.datetime:
    """``start + duration``; ``DomainValidationError`` naming ``field`` when that is beyond year 9999."""
    try:
        return start + duration
    except OverflowError:
        raise DomainValidationError({field: [f"The interval starting {start.isoformat()} and lasting "
                                             f"{docs.iso_duration(duration)} ends beyond year 9999."]}) from None


def _finite_number(value: Any) -> bool:
    """A JSON number a float holds (not a bool, not 1e400 read as infinity, not an integer of 400 digits)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _event_window(data: dict) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` of an OpenADR event: the union of its intervals' periods (each defaulting to the event's
    ``intervalPeriod``), consecutive intervals following one another when they give no start."""
    default = data.get("intervalPeriod") or {}
    if not isinstance(default, dict):
        raise DomainValidationError({"intervalPeriod": ["Give an intervalPeriod object {start, duration}."]})
    intervals = data.get("intervals")
    if not isinstance(intervals, list) or not intervals:
        raise DomainValidationError({"intervals": ["Give at least one interval."]})
    periods, cursor = [], None
    for i, interval in enumerate(intervals):
        if not isinstance(interval, dict):
            raise DomainValidationError({f"intervals[{i}]": ["Give an interval object."]})
        period = interval.get("intervalPeriod") or {}
        if not isinstance(period, dict):
            raise DomainValidationError({f"intervals[{i}].intervalPeriod": ["Give an intervalPeriod object {start, "
                                                                            "duration}."]})
        start_text = period.get("start") or (None if cursor else default.get("start"))
        if start_text is None and cursor is None:
            raise DomainValidationError({"intervalPeriod.start": ["Give the event's start."]})
        start = cursor if start_text is None else docs.parse_instant(start_text, f"intervals[{i}].intervalPeriod"
                                                                                 ".start")
        duration_text = period.get("duration") or default.get("duration")
        if duration_text is None:
            raise DomainValidationError({"intervalPeriod.duration": ["Give the event's duration."]})
        duration = docs.parse_iso_duration(duration_text, f"intervals[{i}].intervalPeriod.duration")
        if duration <= dt.timedelta(0):
            raise DomainValidationError({"intervalPeriod.duration": ["The duration must be positive."]})
        cursor = _period_end(start, duration, f"intervals[{i}].intervalPeriod")
        periods.append((start, cursor, i))
    periods.sort()
    for (_, before_end, _), (start, _, i) in zip(periods, periods[1:], strict=False):
        if start != before_end:
            how = "leaves a gap after" if start > before_end else "overlaps"
            raise DomainValidationError({f"intervals[{i}].intervalPeriod.start": [
                f"A cpm event is one window: this interval starts {start.isoformat()} and {how} the interval "
                f"ending {before_end.isoformat()}; send separate events for separate windows."]})
    return periods[0][0], max(end for _, end, _ in periods)


def _event_payloads(data: dict) -> tuple[str, str, Decimal | None]:
    """(category, direction, target kW) from the event's priority and payloads: ``SIMPLE`` level 3 emergency, 2
    reliability, 1 economic, 0 test (else the priority: 0 emergency, 1 reliability, 2 economic, 3 test);
    ``DISPATCH_SETPOINT_RELATIVE`` kW (negative reduce, positive increase)."""
    category, direction, target_kw = EventCategory.ECONOMIC, EventDirection.REDUCE, None
    priority = data.get("priority")
    if priority is not None:
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
            raise DomainValidationError({"priority": ["Give a non-negative integer."]})
        category = docs.CATEGORY_OF_PRIORITY.get(min(priority, 3), EventCategory.TEST)
    levels = {v: k for k, v in docs.LEVEL.items()}
    seen: dict[str, Any] = {}  # payload type -> the value of the first interval giving it
    for i, interval in enumerate(data.get("intervals") or []):
        for j, payload in enumerate(interval.get("payloads") or []):
            if not isinstance(payload, dict) or not isinstance(payload.get("values"), list) or not payload["values"]:
                raise DomainValidationError({f"intervals[{i}].payloads[{j}]": ["Give a type and values."]})
            value = payload["values"][0]
            if payload.get("type") == docs.SIMPLE:
                if isinstance(value, list | dict) or value not in levels:
                    raise DomainValidationError({f"intervals[{i}].payloads[{j}].values": ["A SIMPLE level is 0 to "
                                                                                           "3."]})
                _check_one_value(seen, docs.SIMPLE, value, f"intervals[{i}].payloads[{j}].values")
                category = levels[value]
            elif payload.get("type") == docs.KW_TARGET:
                try:
                    kw = to_decimal(str(value))
                except InvalidOperation:
                    kw = Decimal(0)
                if kw == 0 or not kw.is_finite():
                    raise DomainValidationError({f"intervals[{i}].payloads[{j}].values": ["Give a non-zero kW."]})
                if abs(kw) > MAX_KW:
                    raise DomainValidationError({f"intervals[{i}].payloads[{j}].values": [
                        "A kW target is at most 999,999,999.999 kW."]})
                _check_one_value(seen, docs.KW_TARGET, kw, f"intervals[{i}].payloads[{j}].values")
                direction = EventDirection.REDUCE if kw < 0 else EventDirection.INCREASE
                target_kw = abs(kw).quantize(Decimal("0.001"))
    return category, direction, target_kw


def _check_one_value(seen: dict[str, Any], payload_type: str, value: Any, field: str) -> None:
    """A cpm event has one level and one kW target for its whole window: a payload of ``payload_type`` whose value
    differs from an earlier interval's is a ``DomainValidationError`` naming ``field`` (never the last one kept)."""
    first = seen.setdefault(payload_type, value)
    if first != value:
        raise DomainValidationError({field: [
            f"A cpm event has one {payload_type} value for its whole window: an earlier interval gives {first}, "
            f"this one {value}; send separate events for different values."]})


def _target_devices(data: dict) -> list[int] | None:
    """Device ids named by the event's targets (``VEN_NAME``: every device of those VENs' aggregators;
    ``RESOURCE_NAME``: those resources' devices; any other type, e.g. ``GROUP``, as the spec's VEN and resource
    ``targets`` describe their target criteria: every device of the VENs carrying a matching target (same type, a
    common value), and the devices of the resources carrying one); None = no targeting (every enrolled device).
    ``DomainValidationError`` when the targets name no device of a registered VEN."""
    from .selectors import TargetFilter, has_target

    targets = _values_maps(data, "targets")
    q, named = Q(), False
    for t in targets:
        named = True
        values = [str(v) for v in t["values"]]
        if t["type"] == "VEN_NAME":
            q |= Q(aggregator__openadr3_ven__ven_name__in=values)
        elif t["type"] == "RESOURCE_NAME":
            q |= Q(aggregator__openadr3_ven__isnull=False, aggregator_device_id__in=values)
        else:
            wanted = TargetFilter(type=t["type"], values=tuple(values))
            aggregators = [agg for agg, value in Ven.objects.exclude(targets=[]).values_list("aggregator_id", "targets")
                           if has_target(value, wanted)]
            devices = [dev for dev, value in Resource.objects.filter(device__isnull=False).exclude(targets=[])
                       .values_list("device_id", "targets").iterator(chunk_size=2000) if has_target(value, wanted)]
            q |= Q(aggregator_id__in=aggregators) | Q(pk__in=devices)
    if not named:
        return None
    ids = list(Device.objects.filter(q).values_list("pk", flat=True))
    if not ids:
        raise DomainValidationError({"targets": ["No registered VEN resource matches these targets."]})
    return ids


def event_changes(data: dict) -> dict[str, Any]:
    """OpenADR event fields -> cpm event fields (``event_create`` / ``event_update`` keywords)."""
    start, end = _event_window(data)
    category, direction, target_kw = _event_payloads(data)
    changes: dict[str, Any] = {"name": _text(data, "eventName", max_length=200) or "OpenADR 3 event",
                               "start": start, "end": end, "category": category, "direction": direction,
                               "target_kw": target_kw}
    devices = _target_devices(data)
    if devices is not None:
        changes["target_device_ids"] = devices
    return changes


def check_moved_start(*, event: Event, start: dt.datetime, now: dt.datetime) -> None:
    """A PUT moving ``event``'s start: into the past, or before the notice its participants get
    (``notification_at``, which an OpenADR client neither sends nor sees), is refused naming OpenADR's
    ``intervalPeriod.start`` (the notice in the program's zone); an unchanged start is left to ``event_update``."""
    from cpm.base.timeutils import format_local

    if start == event.start:
        return
    if start <= now:
        raise DomainValidationError({"intervalPeriod.start": ["The event must start in the future."]})
    if event.notification_at is not None and start < event.notification_at:
        raise DomainValidationError({"intervalPeriod.start": [
            f"The event's participants are notified at {format_local(event.notification_at, event.program.time_zone)}"
            "; it cannot start before its notice."]})


@use_case("openadr3.event.create", Cap.MANAGE_EVENTS)
def oadr_event_create(*, program: Program, data: dict, now: dt.datetime, actor: Any) -> Event:
    """Create and schedule a cpm event from an OpenADR event (business logic): ``events.services.event_create`` then
    ``event_schedule`` (program active, participation rules, notice), in one transaction: a refused event leaves
    nothing. The reservation follows (a task after commit) and publishes the event to the VENs holding reserved
    devices. Raises ``DomainValidationError`` naming the field (OpenADR's or the rule's)."""
    changes = event_changes(data)
    devices = changes.pop("target_device_ids", None)
    with transaction.atomic():
        event = event_services.event_create(program=program, **changes, target_device_ids=devices,
                                            notification_at=now if changes["start"] > now else None, now=now,
                                            actor=actor)
        event = event_services.event_schedule(event=event, now=now, actor=actor)
        _publish(event, now=now)
    return event


# ---------------------------------------------------------------------------------------------------- publication
# The publication runs after every reservation, modification, dispatch and cancellation, inside that change's
# transaction, so its memory must not grow with the event's size: the per-device work (the resource names of each
# targeted aggregator, their comparison with what was published, the missing resources) is the database's, and
# Python sees one row per aggregator. On PostgreSQL the target rows are written by one statement
# (``jsonb_agg ... ORDER BY``); other backends (SQLite: development and tests) build them in Python with the same
# result. Resource names are in the database's order of ``aggregator_device_id`` (its collation), per aggregator.

def _body(event: Event) -> dict:
    setting = ProgramSettings.objects.filter(program_id=event.program_id).values_list(
        "randomize_start_seconds", flat=True).first()
    return docs.event_body(event, randomize_start_seconds=setting or 0)


def _tables() -> dict[str, str]:
    return {"part": Participation._meta.db_table, "device": Device._meta.db_table, "ven": Ven._meta.db_table,
            "target": OadrEventTarget._meta.db_table, "resource": Resource._meta.db_table}


def _write_targets(oadr: OadrEvent, event: Event) -> tuple[dict[int, tuple[bool, bool]], list[int]]:
    """Make ``oadr``'s target rows those of the devices not cancelled in ``event`` (one row per aggregator, its
    resource names sorted). Returns ``({aggregator: (targeted before, names changed)}, [aggregators no longer
    targeted])``; the rows of the latter are left for the caller to delete once it has notified (their names are
    the VENs' ``DELETE`` documents). A changed row gets the new names (on PostgreSQL updated in place, elsewhere
    deleted and inserted again, as before)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("""
                WITH new AS MATERIALIZED (
                    SELECT d.aggregator_id,
                           jsonb_agg(d.aggregator_device_id ORDER BY d.aggregator_device_id) AS names
                    FROM {part} p JOIN {device} d ON d.id = p.device_id
                    WHERE p.event_id = %(event)s AND p.status <> %(cancelled)s
                    GROUP BY d.aggregator_id),
                up AS (
                    INSERT INTO {target} AS t (oadr_event_id, aggregator_id, resource_names)
                    SELECT %(event)s, aggregator_id, names FROM new ORDER BY aggregator_id
                    ON CONFLICT (oadr_event_id, aggregator_id) DO UPDATE SET resource_names = EXCLUDED.resource_names
                    WHERE t.resource_names IS DISTINCT FROM EXCLUDED.resource_names
                    RETURNING aggregator_id)
                SELECT n.aggregator_id,
                       EXISTS (SELECT 1 FROM {target} o
                               WHERE o.oadr_event_id = %(event)s AND o.aggregator_id = n.aggregator_id),
                       EXISTS (SELECT 1 FROM up WHERE up.aggregator_id = n.aggregator_id)
                FROM new n
                UNION ALL
                SELECT o.aggregator_id, TRUE, NULL FROM {target} o
                WHERE o.oadr_event_id = %(event)s
                  AND NOT EXISTS (SELECT 1 FROM new n WHERE n.aggregator_id = o.aggregator_id)
                ORDER BY 1""".format(**_tables()), {"event": oadr.pk, "cancelled": ParticipationStatus.CANCELLED})
            rows = c.fetchall()
        return ({agg: (before, changed) for agg, before, changed in rows if changed is not None},
                [agg for agg, _, changed in rows if changed is None])
    new: dict[int, list[str]] = {}
    for agg_id, name in (Participation.objects.filter(event_id=event.pk, device__isnull=False)
                         .exclude(status=ParticipationStatus.CANCELLED)
                         .values_list("device__aggregator_id", "device__aggregator_device_id")
                         .order_by("device__aggregator_id", "device__aggregator_device_id").iterator(chunk_size=5000)):
        new.setdefault(agg_id, []).append(name)
    old = dict(oadr.targets.values_list("aggregator_id", "resource_names"))
    changed = [agg for agg, names in new.items() if old.get(agg) != names]
    OadrEventTarget.objects.filter(oadr_event=oadr, aggregator_id__in=changed).delete()
    OadrEventTarget.objects.bulk_create([OadrEventTarget(oadr_event=oadr, aggregator_id=agg, resource_names=new[agg])
                                         for agg in changed])
    return ({agg: (agg in old, agg in changed) for agg in new}, sorted(agg for agg in old if agg not in new))


def _ensure_resources(event: Event, *, now: dt.datetime) -> None:
    """The targeted devices of registered VENs are their resources: the missing ones are created (by VEN, then
    name), in one ``INSERT ... SELECT``."""
    when = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as c:
        c.execute("""
            INSERT INTO {resource} (ven_id, resource_name, device_id, attributes, targets, created_at, updated_at)
            SELECT v.id, d.aggregator_device_id, d.id, '[]', '[]', %s, %s
            FROM {part} p JOIN {device} d ON d.id = p.device_id JOIN {ven} v ON v.aggregator_id = d.aggregator_id
            WHERE p.event_id = %s AND p.status <> %s
              AND NOT EXISTS (SELECT 1 FROM {resource} r
                              WHERE r.ven_id = v.id AND r.resource_name = d.aggregator_device_id)
            ORDER BY v.id, d.aggregator_device_id
            ON CONFLICT DO NOTHING""".format(**_tables()), [when, when, event.pk, ParticipationStatus.CANCELLED])


def _publish(event: Event, *, now: dt.datetime) -> OadrEvent | None:
    """Write the OpenADR view of ``event`` and notify (see ``oadr_event_publish``); inside the caller's
    transaction."""
    event = Event.objects.select_related("program").get(pk=event.pk)
    existing = OadrEvent.objects.select_for_update().filter(pk=event.pk).first()
    if event.status == EventStatus.CANCELLED:
        if existing is None or existing.deleted_at is not None:
            return existing
        OadrEvent.objects.filter(pk=existing.pk).update(deleted_at=now, updated_at=now)
        existing.deleted_at = existing.updated_at = now
        aggs = {agg: (True, False) for agg in existing.targets.values_list("aggregator_id", flat=True)}
        _notify_event(existing, targets=aggs, gone=[], body_changed=True, deleted=True, now=now)
        return existing
    if event.status == EventStatus.DRAFT:
        return existing
    body = _body(event)
    if existing is None:
        oadr = OadrEvent.objects.create(event=event, program_id=event.program_id,
                                        modification_number=event.revision - 1, revision=event.revision,
                                        body=body, created_at=now, updated_at=now)
        body_changed = True
    else:
        oadr = existing
        body_changed = oadr.body != body or oadr.revision != event.revision
    targets, gone = _write_targets(oadr, event)
    targets_changed = bool(gone) or any(changed for _, changed in targets.values())
    if existing is not None:
        if not body_changed and not targets_changed:
            return oadr
        oadr.body, oadr.revision, oadr.modification_number = body, event.revision, event.revision - 1
        oadr.updated_at = now
        oadr.save(update_fields=["body", "revision", "modification_number", "updated_at"])
    if targets_changed:
        _ensure_resources(event, now=now)
    _notify_event(oadr, targets=targets, gone=gone, body_changed=body_changed, deleted=False, now=now,
                  created=existing is None)
    if gone:
        OadrEventTarget.objects.filter(oadr_event=oadr, aggregator_id__in=gone).delete()
    return oadr


@use_case("openadr3.event.publish", Cap.MANAGE_EVENTS)
@transaction.atomic
def oadr_event_publish(*, event: Event, now: dt.datetime, actor: Any) -> OadrEvent | None:
    """Publish a cpm event's OpenADR view (idempotent): created once the event is scheduled (targets: the devices
    reserved in it, by aggregator), rewritten when it changes (``modificationNumber`` = cpm revision - 1), deleted
    when it is cancelled. Subscribers are notified: a VEN newly targeted ``POST``, a VEN still targeted ``PUT``
    (when anything changed), a VEN no longer targeted or a cancelled event ``DELETE``; business logic ``POST``,
    ``PUT``, ``DELETE``. Called by the events signals' receivers (``receivers``) as a system actor."""
    return _publish(event, now=now)


# --------------------------------------------------------------------------------------------------- notification
def _subscriptions(object_type: str, operation: str, program_id: int | None):
    subs = Subscription.objects.all()
    if program_id is not None:
        subs = subs.filter(Q(program_id=program_id) | Q(program__isnull=True))
    for sub in subs:
        for op in sub.object_operations:
            if object_type in op.get("objects", ()) and operation in op.get("operations", ()):
                yield sub, op
                break


def _wants(sub: Subscription, obj: dict) -> bool:
    """Whether ``sub`` is told of ``obj`` (a 3.0.1 document) by its ``targets``, which the spec's subscription
    "Used by server to filter callbacks" (3.0.1 and 3.1 openapi ``subscription.targets``): a subscription naming
    none is told of everything it may read; one naming some only of objects that carry targets and match one of its
    valuesMaps (same type, a common value: the ``targetType``/``targetValues`` query's rule) or, for a 3.1
    subscription's target strings (kept as one ``TARGET`` valuesMap), carry every one of them among their target
    values (the 3.1 ``targets`` query's rule). Objects without targets in their schema (reports) are not filtered."""
    if not sub.targets or "targets" not in obj:
        return True
    from .selectors import TargetFilter, has_target

    values = set(v31.target_strings(obj["targets"]) or ())
    for wanted in sub.targets:
        if wanted.get("type") == v31.TARGET:
            if values and set(map(str, wanted.get("values") or ())) <= values:
                return True
        elif has_target(obj["targets"], TargetFilter(type=wanted.get("type"),
                                                     values=tuple(map(str, wanted.get("values") or ())))):
            return True
    return False


def _queue(rows: list[Notification]) -> None:
    if not rows:
        return
    created = Notification.objects.bulk_create(rows)
    from .tasks import deliver_notification

    ids = [n.pk for n in created]
    if any(i is None for i in ids):  # backends that return no ids from bulk_create
        ids = list(Notification.objects.filter(status=NotificationStatus.PENDING).order_by("-id")
                   .values_list("pk", flat=True)[:len(rows)])
    for pk in ids:
        enqueue_on_commit(deliver_notification, notification_id=pk)


def _notification(sub: Subscription, op: dict, object_type: str, operation: str, obj: dict,
                  now: dt.datetime) -> Notification:
    if sub.openadr_version == "3.1.0":
        client_id = ""
        if object_type in ("VEN", "RESOURCE", "REPORT", "SUBSCRIPTION"):
            from .selectors import client_ids

            client_id = client_ids(object_type.lower(), [obj["id"]]).get(obj["id"]) or obj.get(
                "clientName") or obj.get("venName") or obj.get("resourceName") or ""
        obj = v31.object_doc(object_type, obj, client_id=client_id)
    body = json.dumps(docs.notification_doc(object_type, operation, obj), separators=(",", ":"))
    return Notification(subscription=sub, callback_url=op["callbackUrl"], bearer_token=op.get("bearerToken") or "",
                        object_type=object_type, operation=operation, object_id=obj["id"], body=body,
                        created_at=now)


def _ven_names(aggregator_ids) -> dict[int, str]:
    found = dict(Ven.objects.filter(aggregator_id__in=list(aggregator_ids)).values_list("aggregator_id", "ven_name"))
    codes = dict(Aggregator.objects.filter(pk__in=[a for a in aggregator_ids if a not in found])
                 .values_list("pk", "code"))
    return {**codes, **found}


def _target_names(oadr: OadrEvent, aggregators) -> list[tuple[int, list[str]]]:
    """``[(aggregator, resource names)]`` of ``oadr``'s target rows of ``aggregators``, by aggregator."""
    return list(OadrEventTarget.objects.filter(oadr_event=oadr, aggregator_id__in=list(aggregators))
                .order_by("aggregator_id").values_list("aggregator_id", "resource_names"))


def _notify_event(oadr: OadrEvent, *, targets: dict[int, tuple[bool, bool]], gone: list[int], body_changed: bool,
                  deleted: bool, now: dt.datetime, created: bool = False) -> None:
    """Notify the subscribers of an event's publication. ``targets``: ``{aggregator: (targeted before, names
    changed)}`` of the aggregators targeted now, ``gone``: those no longer targeted; the resource names are read
    from the target rows (those of ``gone`` not yet deleted) when a subscriber's document needs them."""
    old = {agg for agg, (before, _) in targets.items() if before} | set(gone)
    names = _ven_names(old | set(targets))
    rows = []
    bl_op = "DELETE" if deleted else ("POST" if created else "PUT")
    subs = Subscription.objects.filter(Q(program_id=oadr.program_id) | Q(program__isnull=True))
    bl_doc = None
    for sub in subs:
        if sub.aggregator_id is None:
            operation = bl_op
            if bl_doc is None:
                bl_doc = docs.event_doc(oadr, targets=[(names[a], n) for a, n in _target_names(oadr, targets)])
            obj = bl_doc
        else:
            agg = sub.aggregator_id
            if agg not in old and agg not in targets:
                continue
            if deleted or agg not in targets:
                operation = "DELETE"
            elif agg not in old:
                operation = "POST"
            elif body_changed or targets[agg][1]:
                operation = "PUT"
            else:
                continue
            obj = docs.event_doc(oadr, targets=[(names[agg], n) for _, n in _target_names(oadr, [agg])])
        if not _wants(sub, obj):
            continue
        for op in sub.object_operations:
            if "EVENT" in op.get("objects", ()) and operation in op.get("operations", ()):
                rows.append(_notification(sub, op, "EVENT", operation, obj, now))
                break
    _queue(rows)


def notify_object(object_type: str, operation: str, *, now: dt.datetime, ven_id: int | None = None,
                  program_id: int | None = None, doc: dict | None = None, aggregator_id: int | None = None) -> None:
    """Notify the subscribers of a change of a program, VEN, resource, report or subscription: business logic of
    every object, a VEN client only of its own VEN's (``ven_id``, or the owning ``aggregator_id`` of a VEN client's
    subscription) and of programs; a subscription naming targets only of objects matching them (``_wants``)."""
    rows = []
    owner = aggregator_id
    if ven_id is not None:
        owner = Ven.objects.filter(pk=ven_id).values_list("aggregator_id", flat=True).first()
    for sub, op in _subscriptions(object_type, operation, program_id):
        if sub.aggregator_id is not None and object_type != "PROGRAM" and sub.aggregator_id != owner:
            continue
        if doc is None:
            if object_type == "VEN":
                ven = Ven.objects.get(pk=ven_id)
                doc = docs.ven_doc(ven)
            elif object_type == "PROGRAM":
                doc = docs.program_doc(Program.objects.get(pk=program_id))
        if not _wants(sub, doc):
            continue
        rows.append(_notification(sub, op, object_type, operation, doc, now))
    _queue(rows)


# --------------------------------------------------------------------------------------------------------- reports
def _report_intervals(body: dict, event: Event):
    """Each interval of a report's resources with its place and period: ``(i, j, resource name, start, duration,
    interval)``. An interval's start is its own period's, else the end of the interval before it, else its
    resource's period's, else the report's, else the event's start (a default period gives the first interval's
    start: the intervals after it follow one another, as in an event); its duration is its own period's, else its
    resource's, else the report's, else the event's length."""
    default = body.get("intervalPeriod") or {}
    for i, res in enumerate(body["resources"]):
        cursor = None
        inherited = res.get("intervalPeriod") or default
        for j, interval in enumerate(res.get("intervals") or []):
            own = interval.get("intervalPeriod") or {}
            where = f"resources[{i}].intervals[{j}].intervalPeriod"
            start_text = own.get("start") or (None if cursor else inherited.get("start"))
            start = docs.parse_instant(start_text, f"{where}.start") if start_text else cursor or event.start
            duration_text = own.get("duration") or inherited.get("duration")
            duration = (docs.parse_iso_duration(duration_text, f"{where}.duration") if duration_text
                        else event.end - event.start)
            cursor = _period_end(start, duration, f"resources[{i}].intervals[{j}].intervalPeriod")
            yield i, j, res.get("resourceName"), start, duration, interval


def _usage_kwh_factor(body: dict) -> float:
    """kWh per unit of the report's ``USAGE`` values, from its ``payloadDescriptors`` (``units``: KWH, WH or MWH;
    none = KWH, the unit the event's report descriptor asks for). ``DomainValidationError`` naming the descriptor
    for any other unit (a power or a non-energy unit cannot be stored as kWh)."""
    factor = 1.0
    descriptors = body.get("payloadDescriptors") or []
    if not isinstance(descriptors, list):
        raise DomainValidationError({"payloadDescriptors": ["Give a list of report payload descriptors."]})
    for k, descriptor in enumerate(descriptors):
        if not isinstance(descriptor, dict) or descriptor.get("payloadType") != docs.USAGE:
            continue
        units = descriptor.get("units")
        if units is None:
            continue
        factor = docs.USAGE_UNITS.get(units.upper()) if isinstance(units, str) else None
        if factor is None:
            raise DomainValidationError({f"payloadDescriptors[{k}].units": [
                f"USAGE is energy: give its units as KWH, WH or MWH, not {units!r}."]})
    return factor


def _check_usage(body: dict, event: Event, ven: Ven) -> None:
    """Every ``USAGE`` interval of a report fits cpm's meter data (5, 15, 30 or 60 minutes, starting on a multiple
    of its length in UTC), gives one value per resource and interval (two different ones would both be dropped as
    conflicting duplicates), its units are energy, and each value of a reserved resource is within what the meter
    data loaders accept for its service point (``CPM_MAX_KWH_PER_HOUR`` or ``_CI`` x the interval's hours; watt-hours
    sent without ``units``, the default being KWH, are the usual cause: the message says so).
    ``DomainValidationError`` naming the first that does not, in one pass over the intervals, before anything is
    stored (the loader would otherwise drop the readings as row errors the VEN never sees)."""
    from settlement.meterdata.loaders import kwh_per_hour_limit

    factor = _usage_kwh_factor(body)
    classes = dict(Participation.objects.filter(event_id=event.pk, device__aggregator_id=ven.aggregator_id)
                   .values_list("device__aggregator_device_id", "service_point__customer_class"))
    seen: dict[tuple, tuple[str, Any]] = {}  # (resource, start, channel) -> (place, value) of its first USAGE
    for i, j, name, start, duration, interval in _report_intervals(body, event):
        usage = [(k, p) for k, p in enumerate(interval.get("payloads") or [])
                 if isinstance(p, dict) and p.get("type") == docs.USAGE]
        if not usage:
            continue
        seconds = duration.total_seconds()
        if seconds not in (300, 900, 1800, 3600) or int(start.timestamp()) % int(seconds):
            raise DomainValidationError({f"resources[{i}].intervals[{j}].intervalPeriod": [
                f"USAGE is stored in intervals of 5, 15, 30 or 60 minutes starting on a multiple of that length; "
                f"this one starts {start.isoformat()} and lasts {docs.iso_duration(duration)}."]})
        for k, payload in usage:
            value = (payload.get("values") or [None])[0]
            if not _finite_number(value):
                continue
            key, place = (name, start, value < 0), f"resources[{i}].intervals[{j}]"
            first = seen.setdefault(key, (place, value))
            if first[1] != value:
                raise DomainValidationError({f"{place}.intervalPeriod.start": [
                    f"{first[0]} already gives {name}'s USAGE from {start.isoformat()} ({first[1]}); this interval "
                    f"gives {value}: one value per resource and interval."]})
            if name not in classes:
                continue
            per_hour, setting = kwh_per_hour_limit(classes[name])
            limit = per_hour * seconds / 3600
            kwh = abs(float(value)) * factor
            if kwh > limit:
                raise DomainValidationError({f"{place}.payloads[{k}].values": [
                    f"{kwh:g} kWh in a {int(seconds // 60)}-minute interval is beyond the plausible {limit:g} kWh "
                    f"({setting} = {per_hour:g} kWh per hour); values in watt-hours need a USAGE payload descriptor "
                    "with units WH."]})


def _report_rows(report: Report, oadr: OadrEvent, ven: Ven) -> tuple[list[dict], dict[str, list], list[dict]]:
    """The outcomes and readings of a report, with per-resource errors."""
    event = oadr.event
    factor = _usage_kwh_factor(report.body)
    parts = {p.device.aggregator_device_id: p for p in Participation.objects.filter(
        event_id=event.pk, device__aggregator_id=ven.aggregator_id).select_related("device")}
    outcomes, errors = [], []
    readings: dict[str, list] = {"service_point": [], "device": [], "start": [], "kwh": [], "channel": [],
                                 "minutes": []}
    unknown: set[int] = set()
    states: dict[str, list[tuple[dt.datetime, str]]] = {}
    for i, res in enumerate(report.body["resources"]):
        if res.get("resourceName") not in parts:
            unknown.add(i)
            errors.append({"resource": res.get("resourceName"),
                           "detail": "This resource is not reserved for this event."})
    for i, _, name, start, duration, interval in _report_intervals(report.body, event):
        if i in unknown:
            continue
        p = parts[name]
        for payload in interval.get("payloads") or []:
            kind, values = payload.get("type"), payload.get("values") or [None]
            if kind == docs.OUTCOME:
                status = docs.OUTCOME_VALUES.get(values[0]) if isinstance(values[0], str) else None
                if status is None:
                    errors.append({"resource": name, "detail": f"Unknown OPERATING_STATE {values[0]!r}."})
                    continue
                states.setdefault(name, []).append((start, status))
            elif kind == docs.USAGE:
                value = values[0]
                if not _finite_number(value):
                    errors.append({"resource": name, "detail": f"USAGE {value!r} is not a number of kWh."})
                    continue
                minutes = int(duration.total_seconds() // 60)
                readings["service_point"].append(p.service_point_id)
                readings["device"].append(p.device_id)
                readings["start"].append(int(start.timestamp()))
                readings["kwh"].append(abs(float(value)) * factor)
                readings["channel"].append(0 if value >= 0 else 1)
                readings["minutes"].append(minutes)
    for name, reported in states.items():
        outcomes.extend({"event": event.pk, "device": name, "revision": event.revision, **row}
                        for row in _outcome_of(reported))
    return outcomes, readings, errors


def _outcome_of(states: list[tuple[dt.datetime, str]]) -> list[dict]:
    """A device's outcome rows from the states it reported per interval (``(interval start, status)``): an opt-out
    wins, at the start of the earliest opted-out interval, after a participation when an interval before it was
    curtailed; else any curtailed interval is participation, else an error a failure, else non-responsive (a device
    still at its normal state in the first interval, e.g. after a randomized start, has not failed to respond)."""
    by_status: dict[str, list[dt.datetime]] = {}
    for start, status in states:
        by_status.setdefault(status, []).append(start)
    participated = by_status.get(ParticipationStatus.PARTICIPATED, [])
    if ParticipationStatus.OPTED_OUT in by_status:
        at = min(by_status[ParticipationStatus.OPTED_OUT])
        before = [{"status": ParticipationStatus.PARTICIPATED}] if any(s < at for s in participated) else []
        return [*before, {"status": ParticipationStatus.OPTED_OUT, "opted_out_at": at}]
    for status in (ParticipationStatus.PARTICIPATED, ParticipationStatus.FAILED):
        if status in by_status:
            return [{"status": status}]
    return [{"status": ParticipationStatus.NON_RESPONSIVE}]


def _process_report(report: Report, *, now: dt.datetime, actor: Any) -> dict:
    """Outcomes through ``participation_outcomes_report`` (the VEN's actor), readings through the meter data loader
    (composed: the report use case checked the actor; the loader's own capability is the analysts')."""
    from settlement.meterdata.loaders import meter_readings_load
    from settlement.meterdata.models import MeterDataLoad

    oadr = OadrEvent.objects.select_related("event").get(pk=report.event_id)
    outcomes, readings, errors = _report_rows(report, oadr, report.ven)
    results: dict[str, Any] = {"errors": errors}
    if outcomes:
        rows = event_services.participation_outcomes_report(aggregator=report.ven.aggregator, outcomes=outcomes,
                                                            now=now, actor=actor)
        results["outcomes"] = {r["device"]: r["result"] if r["result"] != "error" else r["detail"] for r in rows}
    if readings["kwh"]:
        arrays = {"service_point": np.array(readings["service_point"], dtype=np.int64),
                  "device": np.array(readings["device"], dtype=np.int64),
                  "start": np.array(readings["start"], dtype=np.int64),
                  "kwh": np.array(readings["kwh"], dtype=np.float64),
                  "channel": np.array(readings["channel"], dtype=np.int8),
                  "minutes": np.array(readings["minutes"], dtype=np.int16)}
        load = meter_readings_load.__wrapped__(now=now, source=MeterDataLoad.Source.API, arrays=arrays,
                                               file_name=f"OpenADR 3 report {report.pk} of {report.ven.ven_name}",
                                               actor=actor)
        results["meter_data_load"] = {"id": load.pk, "status": load.status, "readings": len(readings["kwh"])}
    Report.objects.filter(pk=report.pk).update(results=results)
    report.results = results
    return results


def _report_body(data: dict, ven: Ven, actor: Any) -> tuple[OadrEvent, dict, str, str]:
    event_id = _text(data, "eventID", required=True)
    client_name = _text(data, "clientName", required=True)
    oadr = (OadrEvent.objects.filter(pk=int(event_id), deleted_at__isnull=True,
                                     targets__aggregator_id=ven.aggregator_id)
            .select_related("event").first() if ascii_digits(event_id) and len(event_id) < 18 else None)
    if oadr is None:
        raise DomainValidationError({"eventID": [f"No event {event_id} is targeted at VEN {ven.ven_name}."]})
    program_id = data.get("programID")
    if program_id is not None and str(program_id) != str(oadr.program_id):
        raise DomainValidationError({"programID": [f"Event {event_id} belongs to program {oadr.program_id}."]})
    resources = data.get("resources")
    if not isinstance(resources, list) or not resources or not all(
            isinstance(r, dict) and isinstance(r.get("resourceName"), str) and isinstance(r.get("intervals"), list)
            for r in resources):
        raise DomainValidationError({"resources": ["Give a list of {resourceName, intervals} objects."]})
    body = {"payloadDescriptors": data.get("payloadDescriptors"), "resources": resources}
    if data.get("intervalPeriod"):
        body["intervalPeriod"] = data["intervalPeriod"]
    _check_report_intervals(body)
    _check_usage(body, oadr.event, ven)
    return oadr, body, client_name, _text(data, "reportName", max_length=300) or ""


def _check_period(period: Any, field: str) -> None:
    """An ``intervalPeriod``: an object whose ``start`` (if given) is an RFC 3339 instant with an offset and whose
    ``duration`` (if given) a positive ISO 8601 duration; ``DomainValidationError`` naming ``field`` otherwise."""
    if period is None:
        return
    if not isinstance(period, dict):
        raise DomainValidationError({field: ["Give an intervalPeriod object {start, duration}."]})
    if period.get("start"):
        docs.parse_instant(period["start"], f"{field}.start")
    if period.get("duration"):
        if docs.parse_iso_duration(period["duration"], f"{field}.duration") <= dt.timedelta(0):
            raise DomainValidationError({f"{field}.duration": [f"{period['duration']!r} is not a positive "
                                                               "duration."]})


def _check_report_intervals(body: dict) -> None:
    """The shape of a report's resources before anything is stored (``_report_rows`` reads them as checked here): each
    interval an object with an optional ``intervalPeriod`` and a list of payload objects, each with a list of
    ``values``. ``DomainValidationError`` naming the first bad place (``resources[i].intervals[j]...``)."""
    _check_period(body.get("intervalPeriod"), "intervalPeriod")
    for i, res in enumerate(body["resources"]):
        _check_period(res.get("intervalPeriod"), f"resources[{i}].intervalPeriod")
        for j, interval in enumerate(res["intervals"]):
            where = f"resources[{i}].intervals[{j}]"
            if not isinstance(interval, dict):
                raise DomainValidationError({where: ["Give an interval object {id, intervalPeriod, payloads}."]})
            _check_period(interval.get("intervalPeriod"), f"{where}.intervalPeriod")
            payloads = interval.get("payloads")
            if payloads is None:
                continue
            if not isinstance(payloads, list):
                raise DomainValidationError({f"{where}.payloads": ["Give a list of {type, values} objects."]})
            for k, payload in enumerate(payloads):
                if not isinstance(payload, dict) or not isinstance(payload.get("values", []), list):
                    raise DomainValidationError({f"{where}.payloads[{k}]": ["Give a {type, values} object, values "
                                                                            "a list."]})


def _reporting_ven(actor: Any) -> Ven:
    aggregator = _own_aggregator(actor)
    ven = Ven.objects.filter(aggregator=aggregator).select_related("aggregator").first() if aggregator else None
    if ven is None:
        raise PermissionDenied("Only a registered VEN reports: register the VEN first (POST /vens).",
                               code="capability_required")
    return ven


@use_case("openadr3.report.create", Cap.REPORT_OUTCOMES)
def report_create(*, data: dict, client_id: str, now: dt.datetime, actor: Any) -> Report:
    """A VEN reports on an event targeted at it. ``OPERATING_STATE`` payloads (PARTICIPATED, OPTED_OUT,
    NON_RESPONSIVE, FAILED, or the spec's states: ``documents.OUTCOME_VALUES``) per resource become participation
    outcomes at the event's current revision
    (``participation_outcomes_report``; OPTED_OUT = an opt-out at the interval's start); ``USAGE`` payloads (kWh
    per interval) become the device's telemetry readings, versioned and idempotent meter data. Per-resource
    problems are kept in ``results`` (nothing raises for them)."""
    ven = _reporting_ven(actor)
    oadr, body, client_name, report_name = _report_body(data, ven, actor)
    with transaction.atomic():
        report = Report.objects.create(ven=ven, event_id=oadr.pk, program_id=oadr.program_id, client_name=client_name,
                                       client_id=client_id[:128], report_name=report_name, body=body,
                                       created_at=now, updated_at=now)
        audit_record(obj=report, action="create", now=now, actor=actor,
                     changes={"event": oadr.pk, "resources": len(body["resources"])})
    _process_report(report, now=now, actor=actor)
    with transaction.atomic():
        notify_object("REPORT", "POST", ven_id=ven.pk, program_id=oadr.program_id, now=now,
                      doc=docs.report_doc(report))
    return report


@use_case("openadr3.report.update", Cap.REPORT_OUTCOMES)
def report_update(*, report: Report, data: dict, now: dt.datetime, actor: Any) -> Report:
    """A VEN corrects its report: processed again (outcomes already recorded are unchanged, readings that changed
    become a new meter data version)."""
    ven = _reporting_ven(actor)
    if report.ven_id != ven.pk:
        raise NotFound(f"Report {report.pk} not found.")
    oadr, body, client_name, report_name = _report_body(data, ven, actor)
    if oadr.pk != report.event_id:
        raise DomainValidationError({"eventID": ["A report stays on its event."]})
    with transaction.atomic():
        Report.objects.filter(pk=report.pk).update(body=body, client_name=client_name, report_name=report_name,
                                                   updated_at=now)
        audit_record(obj=report, action="update", now=now, actor=actor, changes={"resources": len(body["resources"])})
    report.refresh_from_db()
    _process_report(report, now=now, actor=actor)
    with transaction.atomic():
        notify_object("REPORT", "PUT", ven_id=ven.pk, program_id=report.program_id, now=now,
                      doc=docs.report_doc(report))
    return report


@use_case("openadr3.report.delete", Cap.REPORT_OUTCOMES)
@transaction.atomic
def report_delete(*, report: Report, now: dt.datetime, actor: Any) -> dict:
    """Delete a report record (what cpm recorded from it stays: outcomes and readings have their own history)."""
    ven = _reporting_ven(actor)
    if report.ven_id != ven.pk:
        raise NotFound(f"Report {report.pk} not found.")
    doc = docs.report_doc(report)
    notify_object("REPORT", "DELETE", ven_id=ven.pk, program_id=report.program_id, now=now, doc=doc)
    audit_record(obj=report, action="delete", now=now, actor=actor, changes={"event": report.event_id})
    report.delete()
    return doc


# --------------------------------------------------------------------------------------------------- subscriptions
def _subscription_fields(data: dict) -> dict[str, Any]:
    client_name = _text(data, "clientName", required=True)
    program = None
    if data.get("programID") is not None:
        pid = str(data["programID"])
        program = Program.objects.filter(pk=int(pid)).first() if ascii_digits(pid) and len(pid) < 18 else None
        if program is None:
            raise DomainValidationError({"programID": [f"No program {pid}."]})
    ops = data.get("objectOperations")
    if not isinstance(ops, list) or not ops:
        raise DomainValidationError({"objectOperations": ["Give at least one object operation."]})
    clean = []
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise DomainValidationError({f"objectOperations[{i}]": ["Give an object."]})
        objects, operations, url = op.get("objects"), op.get("operations"), op.get("callbackUrl")
        if isinstance(operations, list):
            # The definition's subscription operations are READ, CREATE, UPDATE, DELETE; a notification's operation
            # is GET, POST, PUT, DELETE: either names are taken, kept as the latter (as the 3.1 API keeps them).
            operations = [v31.OPERATION_NAMES.get(o, o) if isinstance(o, str) else o for o in operations]
        if not isinstance(objects, list) or not objects or not all(o in OBJECT_TYPES for o in objects):
            raise DomainValidationError({f"objectOperations[{i}].objects": [f"Give objects among {OBJECT_TYPES}."]})
        if not isinstance(operations, list) or not operations or not all(o in OPERATIONS for o in operations):
            raise DomainValidationError({f"objectOperations[{i}].operations": [f"Give operations among {OPERATIONS}."]})
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
            raise DomainValidationError({f"objectOperations[{i}].callbackUrl": ["Give an http(s) URL."]})
        token = op.get("bearerToken")
        if token is not None and (not isinstance(token, str) or len(token) > 500):
            raise DomainValidationError({f"objectOperations[{i}].bearerToken": ["Give a text of at most 500 "
                                                                                 "characters."]})
        clean.append({"objects": objects, "operations": operations, "callbackUrl": url, "bearerToken": token})
    return {"client_name": client_name, "program": program, "object_operations": clean,
            "targets": _values_maps(data, "targets")}


@use_case("openadr3.subscription.create", *SUBSCRIPTION_CAPS)
@transaction.atomic
def subscription_create(*, data: dict, client_id: str, now: dt.datetime, actor: Any,
                        version: str = "3.0.1") -> Subscription:
    """Subscribe a client's webhook to operations on objects; a VEN client's subscription is scoped to its
    aggregator (it is notified only of what it may read). ``version`` ("3.0.1" or "3.1.0"): the OpenADR version
    of the API it was made through, which its notifications follow."""
    fields = _subscription_fields(data)
    own = _own_aggregator(actor)
    sub = Subscription.objects.create(aggregator=own, client_id=client_id[:128], created_at=now, updated_at=now,
                                      openadr_version=version, **fields)
    audit_record(obj=sub, action="create", now=now, actor=actor, changes={"clientName": sub.client_name})
    _notify_subscription(sub, "POST", now=now)
    return sub


def _notify_subscription(sub: Subscription, operation: str, *, now: dt.datetime, doc: dict | None = None) -> None:
    """Tell the subscribers of SUBSCRIPTION objects (business logic; a VEN only of its own subscriptions)."""
    notify_object("SUBSCRIPTION", operation, now=now, program_id=sub.program_id, aggregator_id=sub.aggregator_id,
                  doc=doc or docs.subscription_doc(sub))


@use_case("openadr3.subscription.update", *SUBSCRIPTION_CAPS)
@transaction.atomic
def subscription_update(*, subscription: Subscription, data: dict, now: dt.datetime, actor: Any,
                        version: str = "3.0.1") -> Subscription:
    """Replace a subscription's fields (a VEN client only its own); ``version`` as for ``subscription_create``."""
    _check_owner(subscription.aggregator_id, actor, what=f"Subscription {subscription.pk}")
    for key, value in _subscription_fields(data).items():
        setattr(subscription, key, value)
    subscription.openadr_version = version
    subscription.updated_at = now
    subscription.save()
    audit_record(obj=subscription, action="update", now=now, actor=actor,
                 changes={"clientName": subscription.client_name})
    _notify_subscription(subscription, "PUT", now=now)
    return subscription


@use_case("openadr3.subscription.delete", *SUBSCRIPTION_CAPS)
@transaction.atomic
def subscription_delete(*, subscription: Subscription, now: dt.datetime, actor: Any) -> dict:
    """Delete a subscription (a VEN client only its own); returns its document."""
    _check_owner(subscription.aggregator_id, actor, what=f"Subscription {subscription.pk}")
    doc = docs.subscription_doc(subscription)
    _notify_subscription(subscription, "DELETE", now=now, doc=doc)
    audit_record(obj=subscription, action="delete", now=now, actor=actor,
                 changes={"clientName": subscription.client_name})
    subscription.delete()
    return doc


# -------------------------------------------------------------------------------------------------------- delivery
def deliver_http(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """The network seam: ``events.services.dispatch.deliver_http`` (POST, returns the status)."""
    from events.services import dispatch

    return dispatch.deliver_http(url, body, headers, timeout)


@use_case("openadr3.notification.deliver", Cap.MANAGE_EVENTS)
def notification_deliver(*, notification: Notification, now: dt.datetime, actor: Any) -> bool:
    """POST a notification's body (as encoded when it was made) to its callback URL, with the subscription's
    bearer token. After ``OPENADR3_NOTIFY_ATTEMPTS`` failures it is FAILED (audited, as is DELIVERED). Returns
    True when nothing is left to do."""
    n = Notification.objects.get(pk=notification.pk)
    if n.status != NotificationStatus.PENDING:
        return True
    headers = {"Content-Type": "application/json", "User-Agent": "cpm-openadr3/1"}
    if n.bearer_token:
        headers["Authorization"] = f"Bearer {n.bearer_token}"
    try:
        status = deliver_http(n.callback_url, n.body.encode(), headers, 10)
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        error = str(exc)[:500] or exc.__class__.__name__
    attempts = n.attempts + 1
    with transaction.atomic():
        Notification.objects.filter(pk=n.pk).update(attempts=attempts, last_attempt_at=now, last_error=error)
        n.attempts, n.last_attempt_at, n.last_error = attempts, now, error
        if not error:
            transition(obj=n, to=NotificationStatus.DELIVERED, allowed=NOTIFICATION_TRANSITIONS, now=now, actor=actor,
                       reason=f"delivered after {attempts} attempt(s)")
            return True
        if attempts >= settings.OPENADR3_NOTIFY_ATTEMPTS:
            transition(obj=n, to=NotificationStatus.FAILED, allowed=NOTIFICATION_TRANSITIONS, now=now, actor=actor,
                       reason=error)
            return True
    return False

