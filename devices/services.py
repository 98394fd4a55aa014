"""Write path of the devices app: premises, service points, aggregators, devices and their installation history.

Every function is keyword-only, takes ``now`` (aware UTC) and ``actor`` (a user or a named system actor; required:
``None`` is refused), is a registered use case with its capability (``cpm.base.capabilities``), owns its
transaction and audits what it changes. Dates of installations are local calendar dates; periods are half-open
``[installed_on, removed_on)``.

An aggregator's user (``Aggregator.api_user``) registers and changes only its own devices, whichever door calls
(``_check_own``: ``PermissionDenied``, 403, code ``aggregator_foreign_device``); the API's querysets hide the others
too (404).

Errors: ``DomainValidationError`` (400, per field), ``ConflictError`` (409, naming the conflicting row),
``TransitionNotAllowed`` (409), ``PermissionDenied`` (403).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from cpm.base.audit import audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError, PermissionDenied
from cpm.base.numbers import to_decimal
from cpm.base.states import transition

from .choices import DEVICE_TRANSITIONS, DeviceOwnership, DeviceStatus, DeviceType
from .models import Aggregator, Device, DeviceInstallation, Premise, ServicePoint
from .selectors import aggregator_of, refuse_unlinked
from .signals import device_removed, device_status_changed

UTILITY_OWNED_MESSAGE = ("Utility-owned devices are out of scope: cpm enrolls customer-owned devices only "
                         "(bring your own device).")

# Fields a caller may set on a device (status and last_seen_at have their own services).
DEVICE_FIELDS = ("device_type", "manufacturer", "model", "serial_number", "capacity_kw", "usable_energy_kwh",
                 "firmware_version", "ownership")


_DB_STEP = Decimal("0.001")  # their decimal places
_DB_LIMIT = Decimal(10) ** 6  # Device.capacity_kw / usable_energy_kwh are numeric(9, 3): below 1,000,000
_TEXT_FIELDS = ("manufacturer", "model", "serial_number", "firmware_version")


def _decimal(value: Any, *, field: str, errors: dict[str, list[str]], required: bool, bound: int,
             setting: str, unit: str) -> Decimal | None:
    if value is None or value == "":
        if required:
            errors.setdefault(field, []).append(f"{field} is required.")
        return None
    shown = str(value)[:40]
    try:
        number = to_decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors.setdefault(field, []).append(f"{field} must be a number, got {shown!r}.")
        return None
    if not number.is_finite():
        errors.setdefault(field, []).append(f"{field} must be a finite number, got {shown!r}.")
        return None
    if number < 0:
        errors.setdefault(field, []).append(f"{field} must be zero or more, got {shown!r}.")
        return None
    limit = min(Decimal(bound), _DB_LIMIT - Decimal("0.001"))
    if number > limit:
        errors.setdefault(field, []).append(
            f"{field} {shown} is above the plausible maximum of {limit:,} {unit} ({setting}).")
        return None
    if number != number.quantize(_DB_STEP):
        # The column keeps 3 decimals: the value would be stored rounded, differ from the file on every re-import
        # (an "updated" and an audit entry each time) and round differently on SQLite and PostgreSQL.
        kept = "watt" if unit == "kW" else "watt-hour"
        errors.setdefault(field, []).append(f"{field} {shown} has more than 3 decimal places (kept to the {kept}).")
        return None
    return number


def validate_device_fields(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Check device attributes (``DEVICE_FIELDS``); return cleaned values or raise ``DomainValidationError``.

    ``capacity_kw`` (kW) and ``usable_energy_kwh`` (kWh) are finite non-negative decimals of at most 3 decimal places
    (what the columns keep) up to the plausibility
    bounds ``settings.CPM_MAX_DEVICE_KW`` (default 1,000 kW) and ``CPM_MAX_DEVICE_KWH`` (default 10,000 kWh), never
    beyond what the column holds; text fields fit their column; ``ownership`` must be customer-owned (utility-owned
    devices are refused with code ``utility_owned_device``). Every door (admin, API, imports) comes through here, so
    a value like 1e308 is a 400 naming the field, never a database overflow.
    """
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    if "ownership" in data or not partial:
        ownership = data.get("ownership") or DeviceOwnership.CUSTOMER_OWNED
        if ownership == DeviceOwnership.UTILITY_OWNED:
            raise DomainValidationError({"ownership": [UTILITY_OWNED_MESSAGE]}, code="utility_owned_device")
        if ownership not in DeviceOwnership.values:
            errors["ownership"] = [f"Unknown ownership {str(ownership)[:40]!r}."]
        clean["ownership"] = ownership
    if "device_type" in data or not partial:
        device_type = data.get("device_type")
        if device_type not in DeviceType.values:
            errors["device_type"] = [f"Unknown device type {str(device_type)[:40]!r}; expected one of "
                                     f"{', '.join(DeviceType.values)}."]
        clean["device_type"] = device_type
    if "capacity_kw" in data or not partial:
        clean["capacity_kw"] = _decimal(data.get("capacity_kw"), field="capacity_kw", errors=errors, required=True,
                                        bound=settings.CPM_MAX_DEVICE_KW, setting="CPM_MAX_DEVICE_KW", unit="kW")
    if "usable_energy_kwh" in data:
        clean["usable_energy_kwh"] = _decimal(data.get("usable_energy_kwh"), field="usable_energy_kwh",
                                              errors=errors, required=False, bound=settings.CPM_MAX_DEVICE_KWH,
                                              setting="CPM_MAX_DEVICE_KWH", unit="kWh")
    for name in _TEXT_FIELDS:
        if name in data:
            value = (data.get(name) or "").strip()
            limit = Device._meta.get_field(name).max_length
            if len(value) > limit:
                errors.setdefault(name, []).append(f"{name} has {len(value):,} characters; at most {limit} allowed.")
            elif "\x00" in value:
                errors.setdefault(name, []).append(f"{name} contains a NUL character.")
            clean[name] = value
    if errors:
        raise DomainValidationError(errors)
    return clean


def _check_own(actor: Any, *, aggregator_id: int | None = None, device: Device | None = None) -> None:
    """Refuse an aggregator's user acting on another aggregator's device (or registering one for it); the utility's
    users and system actors act on every device. The device's aggregator is read from the stored row."""
    own = aggregator_of(actor)
    if own is None:
        return
    refuse_unlinked(actor, own)
    if device is not None:
        aggregator_id = Device.objects.filter(pk=device.pk).values_list("aggregator_id", flat=True).first()
    if aggregator_id != own.pk:
        what = f"device {device.pk} is not one of them" if device is not None else \
            "it cannot register a device for another aggregator"
        raise PermissionDenied(f"Aggregator {own.code} manages only its own devices; {what}.",
                               code="aggregator_foreign_device", field="device" if device is not None else "aggregator")


@use_case("device.register", Cap.MANAGE_DEVICES)
@transaction.atomic
def device_register(
    *,
    aggregator: Aggregator,
    aggregator_device_id: str,
    device_type: str,
    capacity_kw: Decimal | str | float,
    now: dt.datetime,
    actor: Any,
    manufacturer: str = "",
    model: str = "",
    serial_number: str = "",
    usable_energy_kwh: Decimal | str | None = None,
    firmware_version: str = "",
    ownership: str = DeviceOwnership.CUSTOMER_OWNED,
) -> Device:
    """Register a customer-owned device known to ``aggregator`` as ``aggregator_device_id`` (status REGISTERED).

    Raises ``DomainValidationError`` for a utility-owned device (code ``utility_owned_device``) or bad fields, and
    ``ConflictError`` when the aggregator already has a device with that id.
    """
    _check_own(actor, aggregator_id=aggregator.pk)
    aggregator_device_id = (aggregator_device_id or "").strip()
    if not aggregator_device_id:
        raise DomainValidationError({"aggregator_device_id": ["aggregator_device_id is required."]})
    limit = Device._meta.get_field("aggregator_device_id").max_length
    if len(aggregator_device_id) > limit:
        raise DomainValidationError({"aggregator_device_id": [
            f"aggregator_device_id has {len(aggregator_device_id):,} characters; at most {limit} allowed."]})
    clean = validate_device_fields({
        "device_type": device_type, "capacity_kw": capacity_kw, "manufacturer": manufacturer, "model": model,
        "serial_number": serial_number, "usable_energy_kwh": usable_energy_kwh,
        "firmware_version": firmware_version, "ownership": ownership,
    })
    existing = Device.objects.filter(aggregator=aggregator, aggregator_device_id=aggregator_device_id).first()
    if existing is not None:
        raise ConflictError(f"Aggregator {aggregator.code} already has device {aggregator_device_id!r} "
                            f"(device {existing.pk}).", code="device_exists", device=existing.pk)
    try:
        with transaction.atomic():
            device = Device.objects.create(aggregator=aggregator, aggregator_device_id=aggregator_device_id,
                                           status=DeviceStatus.REGISTERED, **clean)
    except IntegrityError as exc:  # a concurrent registration of the same id won
        raise ConflictError(f"Aggregator {aggregator.code} already has device {aggregator_device_id!r}.",
                            code="device_exists") from exc
    audit_record(obj=device, action="create", now=now, actor=actor,
                 changes={k: str(v) for k, v in clean.items() if v not in (None, "")})
    return device


@use_case("device.update", Cap.MANAGE_DEVICES)
@transaction.atomic
def device_update(*, device: Device, data: dict[str, Any], now: dt.datetime, actor: Any) -> Device:
    """Change a device's attributes (``DEVICE_FIELDS``); returns the device. Only changed values are audited.

    What changes is decided against the stored row (locked), not against ``device``: a caller may hand an instance
    that already carries the new values (the admin's form puts them there before saving), which would compare
    equal to them and save nothing."""
    _check_own(actor, device=device)
    clean = validate_device_fields(data, partial=True)
    stored = Device.objects.select_for_update().get(pk=device.pk)
    changes = {k: [str(getattr(stored, k)), str(v)] for k, v in clean.items() if getattr(stored, k) != v}
    if changes:
        for key in changes:
            setattr(device, key, clean[key])
        device.save(update_fields=[*changes, "updated_at"])
        audit_record(obj=device, action="update", now=now, actor=actor, changes=changes)
    return device


@use_case("device.set_status", Cap.MANAGE_DEVICES)
@transaction.atomic
def device_set_status(*, device: Device, status: str, now: dt.datetime, actor: Any, reason: str = "") -> Device:
    """Move a device along REGISTERED -> ACTIVE <-> INACTIVE -> RETIRED (``DEVICE_TRANSITIONS``), audited.

    Raises ``DomainValidationError`` for an unknown status and ``TransitionNotAllowed`` (409) for a refused move.
    """
    _check_own(actor, device=device)
    if status not in DeviceStatus.values:
        raise DomainValidationError({"status": [f"Unknown device status {status!r}."]})
    before = device.status
    transition(obj=device, to=status, allowed=DEVICE_TRANSITIONS, now=now, actor=actor, reason=reason)
    kwargs = {"device_id": device.pk, "from_status": before, "to_status": status}
    transaction.on_commit(lambda: device_status_changed.send(sender=Device, **kwargs))
    return device


@use_case("device.heartbeat", Cap.REPORT_OUTCOMES, Cap.MANAGE_DEVICES)
def device_heartbeat(*, device: Device, seen_at: dt.datetime, now: dt.datetime, actor: Any) -> Device:
    """Record that the device was online at ``seen_at`` (aware; stored UTC). Never moves ``last_seen_at`` back and
    refuses times in the future (more than 5 minutes after ``now``, clock skew allowance)."""
    _check_own(actor, device=device)
    if seen_at.tzinfo is None:
        raise DomainValidationError({"seen_at": ["seen_at must include a time zone offset."]})
    seen_at = seen_at.astimezone(dt.UTC)
    if seen_at > now + dt.timedelta(minutes=5):
        raise DomainValidationError({"seen_at": [f"seen_at {seen_at.isoformat()} is in the future."]})
    # Conditional update: concurrent heartbeats keep the latest time.
    Device.objects.filter(Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=seen_at), pk=device.pk).update(
        last_seen_at=seen_at, updated_at=now)
    device.refresh_from_db(fields=["last_seen_at", "updated_at"])
    return device


def _lock_device(device: Device) -> Device:
    return Device.objects.select_for_update().get(pk=device.pk)


@use_case("device.install", Cap.MANAGE_DEVICES)
@transaction.atomic
def device_install(
    *, device: Device, service_point: ServicePoint, installed_on: dt.date, now: dt.datetime, actor: Any
) -> DeviceInstallation:
    """Install ``device`` at ``service_point`` from local date ``installed_on``.

    A device is at one service point at a time: an open installation elsewhere is closed on ``installed_on`` (a
    move). Installing where it already is returns the open installation unchanged (idempotent). Raises
    ``DomainValidationError`` if ``installed_on`` is before the open installation's start or the device is retired.
    """
    _check_own(actor, device=device)
    device = _lock_device(device)
    if device.status == DeviceStatus.RETIRED:
        raise DomainValidationError({"device": [f"Device {device.pk} is retired and cannot be installed."]})
    current = DeviceInstallation.objects.filter(device=device, removed_on__isnull=True).first()
    if current is not None:
        if current.service_point_id == service_point.pk:
            return current
        if installed_on < current.installed_on:
            raise DomainValidationError({"installed_on": [
                f"installed_on {installed_on} is before the current installation at {current.service_point} "
                f"(from {current.installed_on})."]})
        _close_installation(current, removed_on=installed_on, now=now, actor=actor, reason="moved")
    later = DeviceInstallation.objects.filter(device=device, removed_on__gt=installed_on).order_by("-removed_on")
    if later.exists():
        raise DomainValidationError({"installed_on": [
            f"installed_on {installed_on} overlaps an earlier installation that ended {later[0].removed_on}."]})
    installation = DeviceInstallation.objects.create(device=device, service_point=service_point,
                                                     installed_on=installed_on)
    audit_record(obj=installation, action="create", now=now, actor=actor,
                 changes={"service_point": service_point.service_point_id, "installed_on": str(installed_on)})
    return installation


def _close_installation(installation: DeviceInstallation, *, removed_on: dt.date, now, actor, reason: str) -> None:
    installation.removed_on = removed_on
    installation.save(update_fields=["removed_on"])
    audit_record(obj=installation, action="update", now=now, actor=actor, reason=reason,
                 changes={"removed_on": str(removed_on)})
    device_removed.send(sender=Device, device=installation.device, installation=installation,
                        removed_on=removed_on, now=now, actor=actor)


@use_case("device.remove", Cap.MANAGE_DEVICES)
@transaction.atomic
def device_remove(*, device: Device, removed_on: dt.date, now: dt.datetime, actor: Any) -> DeviceInstallation:
    """Close the device's open installation on local date ``removed_on`` (the device is uninstalled).

    Sends ``devices.signals.device_removed`` (enrollments end the device's subscriptions that date). Raises
    ``DomainValidationError`` if the device is not installed or ``removed_on`` is before the installation.
    """
    _check_own(actor, device=device)
    device = _lock_device(device)
    current = DeviceInstallation.objects.filter(device=device, removed_on__isnull=True).first()
    if current is None:
        raise DomainValidationError({"device": [f"Device {device.pk} is not installed anywhere."]})
    if removed_on < current.installed_on:
        raise DomainValidationError({"removed_on": [
            f"removed_on {removed_on} is before the installation date {current.installed_on}."]})
    _close_installation(current, removed_on=removed_on, now=now, actor=actor, reason="removed")
    return current


# --- CIS reference data (premises, service points, aggregators): upserts used by imports and admin ---------------

PREMISE_FIELDS = ("address_line1", "address_line2", "city", "state", "postal_code", "service_territory",
                  "substation", "feeder", "transformer", "latitude", "longitude")
SERVICE_POINT_FIELDS = ("meter_number", "customer_class", "rate_code", "is_active", "net_metered")


def upsert(model, *, lookup: dict[str, Any], values: dict[str, Any], now: dt.datetime, actor: Any):
    """Create or update one row by ``lookup``; returns ``(obj, outcome)`` with outcome new/updated/unchanged.

    Not a use case of its own: the building block of the guarded upserts (``premise_upsert``, ``customer_upsert``,
    ...), which check the actor first.

    Idempotent: saving the same values again writes nothing and reports ``unchanged``. ``full_clean`` runs so bad
    values raise ``django.core.exceptions.ValidationError`` naming the field.

    Concurrency: an existing row is locked (``select_for_update``) until the caller's transaction ends, so two
    upserts of one key run one after the other. A creation that loses to a concurrent one (the unique key, seen
    by the database when the other commits) is undone in its savepoint and retried as an update of the winner's
    row: two identical imports at once end as if run in turn, never with an ``IntegrityError``.
    """
    with transaction.atomic():  # the row lock lasts until the caller's transaction (or this one) ends
        return _upsert_locked(model, lookup=lookup, values=values, now=now, actor=actor)


def _upsert_locked(model, *, lookup: dict[str, Any], values: dict[str, Any], now: dt.datetime, actor: Any):
    obj = model.objects.select_for_update().filter(**lookup).first()
    if obj is None:
        obj = model(**lookup, **values)
        # The key's uniqueness is the database's to decide (a concurrent creation may not be visible yet).
        obj.full_clean(validate_unique=False)
        obj.validate_unique(exclude=list(lookup))
        try:
            with transaction.atomic():
                obj.save(force_insert=True)
        except IntegrityError:
            obj = model.objects.select_for_update().filter(**lookup).first()
            if obj is None:
                raise
        else:
            audit_record(obj=obj, action="create", now=now, actor=actor,
                         changes={k: str(v) for k, v in values.items()})
            return obj, "new"
    changes = {}
    for key, value in values.items():
        field = model._meta.get_field(key)
        if field.is_relation:
            old, new = getattr(obj, field.attname), getattr(value, "pk", None)
            if old != new:
                changes[key] = [str(old), str(new)]
                setattr(obj, key, value)
            continue
        try:
            new = field.to_python(value)
        except ValidationError as exc:
            raise ValidationError({key: exc.messages}) from None
        old = getattr(obj, key)
        if old != new:
            changes[key] = [str(old), str(new)]
            setattr(obj, key, new)
    if not changes:
        return obj, "unchanged"
    obj.full_clean()
    obj.save()
    audit_record(obj=obj, action="update", now=now, actor=actor, changes=changes)
    return obj, "updated"


@use_case("premise.upsert", Cap.MAINTAIN_CUSTOMERS)
def premise_upsert(*, premise_id: str, values: dict[str, Any], now: dt.datetime, actor: Any):
    """Create or update a premise by CIS ``premise_id``; ``values`` keys from ``PREMISE_FIELDS``."""
    return upsert(Premise, lookup={"premise_id": premise_id}, values=values, now=now, actor=actor)


@use_case("service_point.upsert", Cap.MAINTAIN_CUSTOMERS)
def service_point_upsert(*, service_point_id: str, premise: Premise, values: dict[str, Any], now: dt.datetime,
                         actor: Any):
    """Create or update a service point by ``service_point_id``; ``values`` keys from ``SERVICE_POINT_FIELDS``."""
    return upsert(ServicePoint, lookup={"service_point_id": service_point_id},
                  values={"premise": premise, **values}, now=now, actor=actor)


@use_case("aggregator.upsert", Cap.MANAGE_PROGRAMS)
def aggregator_upsert(*, code: str, values: dict[str, Any], now: dt.datetime, actor: Any):
    """Create or update an aggregator by ``code``."""
    return upsert(Aggregator, lookup={"code": code}, values=values, now=now, actor=actor)
