"""CSV imports: the shared all-or-nothing machinery, and aggregator device lists.

Every import is atomic: each row is checked (and written inside a savepoint); if any row fails, nothing is written
and every error is reported with its row number (the header is row 1, the first data row is row 2). Re-importing
the same file changes nothing and reports every row ``unchanged``. Counts are per entity: new / updated / unchanged.

Aggregator device list (``import_devices --aggregator CODE FILE``), one row per device. Columns:

    aggregator_device_id  required; the aggregator's id for the device (unique per aggregator)
    device_type           required; thermostat | ev_charger | battery | solar_inverter | water_heater
    capacity_kw           required; controllable capacity, kW (decimal, >= 0)
    usable_energy_kwh     optional; batteries: usable energy, kWh
    manufacturer, model, serial_number, firmware_version   optional text
    ownership             optional; customer_owned (default). utility_owned rows are refused (out of scope)
    service_point_id      optional; where the device is installed (CIS service point id)
    installed_on          required with service_point_id; local date YYYY-MM-DD
    status                optional; registered | active | inactive | retired (moved by allowed transitions)

Devices go through the device services (register, update, install, set status), so every rule and audit applies.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import DomainError, DomainValidationError

from . import services
from .choices import DeviceStatus
from .models import Aggregator, Device, DeviceInstallation, ServicePoint

OUTCOMES = ("new", "updated", "unchanged")


@dataclass
class ImportReport:
    """What an import did (or would have done): counts per entity and outcome, and row errors."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    rows: int = 0
    _seen: set = field(default_factory=set, repr=False)

    def count(self, entity: str, key: Any, outcome: str) -> None:
        """Count ``outcome`` for ``entity`` ``key`` once per import (a customer repeated on many rows counts once,
        with its first outcome)."""
        if (entity, key) in self._seen:
            return
        self._seen.add((entity, key))
        bucket = self.counts.setdefault(entity, dict.fromkeys(OUTCOMES, 0))
        bucket[outcome] += 1

    def summary(self) -> str:
        parts = [f"{entity}: " + ", ".join(f"{n} {o}" for o, n in c.items()) for entity, c in self.counts.items()]
        return f"{self.rows} rows; " + ("; ".join(parts) or "nothing")


class ImportFailed(Exception):
    """Raised when any row failed: nothing was written; ``report.errors`` lists ``(row number, message)``."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        super().__init__("; ".join(f"row {n}: {m}" for n, m in report.errors[:20]))


def error_text(exc: Exception) -> str:
    """One line naming the field(s) of a domain or model validation error."""
    if isinstance(exc, DomainValidationError):
        return "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.errors.items())
    if isinstance(exc, DomainError):
        return exc.message
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return "; ".join(f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items())
        return " ".join(exc.messages)
    return str(exc)


def read_csv(source) -> tuple[list[str], list[dict[str, str]]]:
    """Read CSV from text, bytes (UTF-8, BOM allowed) or a file object; returns (header, rows), values stripped."""
    if hasattr(source, "read"):
        source = source.read()
    if isinstance(source, bytes):
        source = source.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(source.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    return header, rows


def run_import(source, *, required: Iterable[str], handle: Callable[[dict[str, str], ImportReport], None],
               ) -> ImportReport:
    """Apply ``handle(row, report)`` to every row, all or nothing (see module docstring)."""
    header, rows = read_csv(source)
    report = ImportReport(rows=len(rows))
    missing = [c for c in required if c not in header]
    if missing:
        report.errors.append((1, f"missing column(s): {', '.join(missing)}"))
        raise ImportFailed(report)
    with transaction.atomic():
        for number, row in enumerate(rows, start=2):
            try:
                with transaction.atomic():
                    handle(row, report)
            except (DomainError, ValidationError, ValueError, LookupError) as exc:
                report.errors.append((number, error_text(exc)))
        if report.errors:
            transaction.set_rollback(True)
    if report.errors:
        raise ImportFailed(report)
    return report


def parse_date(value: str, column: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise DomainValidationError({column: [f"{value!r} is not a date (YYYY-MM-DD)."]}) from None


def parse_bool(value: str, column: str, default: bool = False) -> bool:
    if value == "":
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise DomainValidationError({column: [f"{value!r} is not true/false."]})


def require(row: dict[str, str], *columns: str) -> None:
    missing = [c for c in columns if not row.get(c)]
    if missing:
        raise DomainValidationError({c: ["This value is required."] for c in missing})


# --- aggregator device lists -------------------------------------------------------------------------------------

DEVICE_COLUMNS = ("aggregator_device_id", "device_type", "capacity_kw")
_DEVICE_ATTRS = ("device_type", "capacity_kw", "usable_energy_kwh", "manufacturer", "model", "serial_number",
                 "firmware_version", "ownership")


@use_case("devices.import", Cap.MANAGE_DEVICES)
def import_devices(source, *, aggregator: Aggregator, now: dt.datetime, actor: Any) -> ImportReport:
    """Import an aggregator's device list (columns in the module docstring); all or nothing; idempotent."""
    def handle(row: dict[str, str], report: ImportReport) -> None:
        require(row, *DEVICE_COLUMNS)
        attrs = {k: row[k] for k in _DEVICE_ATTRS if k in row}
        attrs["usable_energy_kwh"] = attrs.get("usable_energy_kwh") or None
        attrs["ownership"] = attrs.get("ownership") or "customer_owned"
        key = row["aggregator_device_id"]
        device = Device.objects.filter(aggregator=aggregator, aggregator_device_id=key).first()
        if device is None:
            device = services.device_register(aggregator=aggregator, aggregator_device_id=key, now=now, actor=actor,
                                              **attrs)
            outcome = "new"
        else:
            before = {k: getattr(device, k) for k in _DEVICE_ATTRS}
            services.device_update(device=device, data=attrs, now=now, actor=actor)
            outcome = "updated" if before != {k: getattr(device, k) for k in _DEVICE_ATTRS} else "unchanged"
        if row.get("service_point_id"):
            require(row, "installed_on")
            service_point = ServicePoint.objects.filter(service_point_id=row["service_point_id"]).first()
            if service_point is None:
                raise DomainValidationError({"service_point_id": [
                    f"Unknown service point {row['service_point_id']!r}."]})
            current = DeviceInstallation.objects.filter(device=device, removed_on__isnull=True).first()
            if current is None or current.service_point_id != service_point.pk:
                services.device_install(device=device, service_point=service_point,
                                        installed_on=parse_date(row["installed_on"], "installed_on"), now=now,
                                        actor=actor)
                outcome = "updated" if outcome == "unchanged" else outcome
        status = row.get("status")
        if status and status != device.status:
            if status not in DeviceStatus.values:
                raise DomainValidationError({"status": [f"Unknown status {status!r}."]})
            if device.status == DeviceStatus.REGISTERED and status == DeviceStatus.INACTIVE:
                services.device_set_status(device=device, status=DeviceStatus.ACTIVE, now=now, actor=actor,
                                           reason="import")
            services.device_set_status(device=device, status=status, now=now, actor=actor, reason="import")
            outcome = "updated" if outcome == "unchanged" else outcome
        report.count("devices", key, outcome)

    return run_import(source, required=DEVICE_COLUMNS, handle=handle)
