"""Abnormal days (outages, abnormal operation): recorded per service point, feeder, substation, territory or program;
left out of baseline day selection by settlement (``settlement.measurement``).

Use cases (capability ``Cap.RUN_SETTLEMENT``: the settlement analyst decides which days are not a fair sample of
a customer's load, since they change what settlement pays): ``abnormal_day.create``, ``abnormal_day.delete``,
``abnormal_days.import`` (a CSV, all or nothing, errors per line, two rows giving one day, scope and target different
kinds or reasons both refused naming each other; the shared import machinery of
``devices.imports``). Every change is audited.

CSV columns (``abnormal_days.import``)::

    day         required; local date YYYY-MM-DD (the settled program's calendar)
    scope       required; service_point | feeder | substation | territory | program
    target      required; the CIS service point id, the feeder / substation / territory code, or the program code
    kind        optional; outage (default) | abnormal | other
    reason      required; in words (shown in settlement explanations)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from cpm.base.audit import audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError, DomainValidationError
from devices.models import ServicePoint
from programs.models import Program

from ..choices import AbnormalDayKind, AbnormalDayScope
from ..models import AbnormalDay

NETWORK_SCOPES = (AbnormalDayScope.FEEDER, AbnormalDayScope.SUBSTATION, AbnormalDayScope.TERRITORY)
IMPORT_COLUMNS = {"day": None, "scope": 16, "target": 64, "kind": 16, "reason": 300}
IMPORT_REQUIRED = ("day", "scope", "target", "reason")
# One abnormal day per day, scope and target: two rows of a file giving it different kinds or reasons are both refused.
IMPORT_KEYS = (("abnormal day", ("day", "scope", "target"), ("kind", "reason")),)


def _target(data: dict) -> dict:
    """Model fields of the scope's target from ``data`` (``service_point``/``program`` objects or ids, or
    ``network_id``), refusing a target that does not match the scope."""
    scope = data.get("scope")
    if scope not in AbnormalDayScope.values:
        raise DomainValidationError({"scope": [f"Choose one of {', '.join(AbnormalDayScope.values)}."]})
    out = {"scope": scope, "service_point": None, "program": None, "network_id": ""}
    if scope == AbnormalDayScope.SERVICE_POINT:
        sp = data.get("service_point")
        if sp is None:
            raise DomainValidationError({"service_point": ["A service point is required for this scope."]})
        out["service_point"] = sp if isinstance(sp, ServicePoint) else ServicePoint.objects.get(pk=sp)
    elif scope == AbnormalDayScope.PROGRAM:
        program = data.get("program")
        if program is None:
            raise DomainValidationError({"program": ["A program is required for this scope."]})
        out["program"] = program if isinstance(program, Program) else Program.objects.get(pk=program)
    else:
        code = str(data.get("network_id") or "").strip()
        if not code:
            raise DomainValidationError({"network_id": [f"The {scope} code is required for this scope."]})
        out["network_id"] = code
    extra = [f for f in ("service_point", "program", "network_id") if data.get(f) and not out[f]]
    if extra:
        raise DomainValidationError({f: [f"Not used by scope {scope}."] for f in extra})
    return out


@use_case("abnormal_day.create", Cap.RUN_SETTLEMENT)
def abnormal_day_create(*, data: dict, now: dt.datetime, actor: Any) -> AbnormalDay:
    """Record an abnormal day. ``data``: ``day`` (date), ``scope``, the target (``service_point``, ``program`` or
    ``network_id``), ``kind`` (default outage), ``reason``. The same day, scope, target and reason again returns the
    existing record (idempotent); the same day and target with another reason is a ``ConflictError``."""
    fields = _target(data)
    day = data.get("day")
    if isinstance(day, str):
        from devices.imports import parse_date

        day = parse_date(day, "day")
    if not isinstance(day, dt.date):
        raise DomainValidationError({"day": ["A date is required."]})
    low, high = settings.CPM_IMPORT_MIN_YEAR, settings.CPM_IMPORT_MAX_YEAR
    if not low <= day.year <= high:
        raise DomainValidationError({"day": [
            f"{day.isoformat()} is outside the plausible years {low}..{high} (CPM_IMPORT_MIN_YEAR, "
            "CPM_IMPORT_MAX_YEAR)."]})
    reason = str(data.get("reason") or "").strip()
    if not reason:
        raise DomainValidationError({"reason": ["Say why the day is abnormal."]})
    kind = data.get("kind") or AbnormalDayKind.OUTAGE
    if kind not in AbnormalDayKind.values:
        raise DomainValidationError({"kind": [f"Choose one of {', '.join(AbnormalDayKind.values)}."]})
    with transaction.atomic():
        existing = AbnormalDay.objects.select_for_update().filter(day=day, **fields).first()
        if existing is not None:
            if existing.reason == reason and existing.kind == kind:
                return existing
            raise ConflictError(f"{existing} is already recorded ({existing.reason!r}); delete it first to change it.",
                                code="abnormal_day_exists")
        record = AbnormalDay(day=day, kind=kind, reason=reason, created_at=now, **fields)
        try:
            record.full_clean()
        except ValidationError as exc:
            raise DomainValidationError({k: list(v) for k, v in exc.message_dict.items()}) from None
        record.save()
        audit_record(obj=record, action="created", now=now, actor=actor, reason=reason,
                     changes={"day": day.isoformat(), "scope": record.scope, "target": record.target_label,
                              "kind": kind})
    return record


@use_case("abnormal_day.delete", Cap.RUN_SETTLEMENT)
def abnormal_day_delete(*, abnormal_day: AbnormalDay, now: dt.datetime, actor: Any, reason: str = "") -> None:
    """Delete a recorded abnormal day (settlements already calculated keep their inputs until recalculated)."""
    with transaction.atomic():
        audit_record(obj=abnormal_day, action="deleted", now=now, actor=actor, reason=reason,
                     changes={"day": abnormal_day.day.isoformat(), "scope": abnormal_day.scope,
                              "target": abnormal_day.target_label, "reason": abnormal_day.reason})
        abnormal_day.delete()


@use_case("abnormal_days.import", Cap.RUN_SETTLEMENT)
def abnormal_days_import(source, *, now: dt.datetime, actor: Any, name: str = ""):
    """Import abnormal days from a CSV (columns in the module docstring): all or nothing, every bad row reported as
    ``line N: field: message`` (``devices.imports.ImportFailed``); re-importing the same file changes nothing.
    Returns the ``devices.imports.ImportReport``. (``devices.imports`` is imported here, not at module level: it
    raises the csv module's process-wide field limit, which the meter-data CSV parser relies on.)"""
    from devices.imports import Format, parse_date, require, run_import

    def handle(row: dict[str, str], report) -> None:
        require(row, "day", "scope", "target", "reason")
        scope, target = row["scope"], row["target"]
        data: dict[str, Any] = {"day": parse_date(row["day"], "day"), "scope": scope, "kind": row.get("kind") or "",
                                "reason": row["reason"]}
        if scope == AbnormalDayScope.SERVICE_POINT:
            data["service_point"] = ServicePoint.objects.filter(service_point_id=target).first()
            if data["service_point"] is None:
                raise DomainValidationError({"target": [f"Unknown service point {target!r}."]})
        elif scope == AbnormalDayScope.PROGRAM:
            data["program"] = Program.objects.filter(code=target).first()
            if data["program"] is None:
                raise DomainValidationError({"target": [f"Unknown program {target!r}."]})
        else:
            data["network_id"] = target
        before = AbnormalDay.objects.count()
        record = abnormal_day_create.__wrapped__(data=data, now=now, actor=actor)  # checked once for the import
        report.count("abnormal_day", record.pk, "new" if AbnormalDay.objects.count() > before else "unchanged")

    return run_import(source, fmt=Format(columns=IMPORT_COLUMNS, required=IMPORT_REQUIRED, keys=IMPORT_KEYS),
                      handle=handle, name=name)
