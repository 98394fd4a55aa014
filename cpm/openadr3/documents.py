"""OpenADR 3.0.1 documents of cpm's objects (what the API answers and the notifications carry), and the parsing of
the spec's value types.

Datetimes are RFC 3339 with an offset: event times in the program's zone (``2026-07-15T15:00:00-07:00``), object
metadata in UTC (``...+00:00``). Durations are ISO 8601 (``PT3H``). No queries here: callers select what a
document needs (``selectors``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils.dateparse import parse_datetime, parse_duration

from cpm.base.errors import DomainValidationError
from cpm.base.timeutils import zone
from events.choices import EventCategory, EventDirection

# Event priority (lower is higher) and SIMPLE level by cpm category.
PRIORITY = {EventCategory.EMERGENCY: 0, EventCategory.RELIABILITY: 1, EventCategory.ECONOMIC: 2,
            EventCategory.TEST: 3}
LEVEL = {EventCategory.EMERGENCY: 3, EventCategory.RELIABILITY: 2, EventCategory.ECONOMIC: 1,
         EventCategory.TEST: 0}
CATEGORY_OF_PRIORITY = {v: k for k, v in PRIORITY.items()}
SIMPLE = "SIMPLE"
# The kW asked of the event: negative = reduce load by that many kW, positive = increase.
KW_TARGET = "DISPATCH_SETPOINT_RELATIVE"
# Report payloads cpm reads: the device's outcome, and its metered energy per interval.
OUTCOME = "OPERATING_STATE"
USAGE = "USAGE"
# kWh per unit of a USAGE value, by the report payload descriptor's ``units``.
USAGE_UNITS = {"KWH": 1.0, "WH": 0.001, "MWH": 1000.0}
# cpm's own names, and the spec's OPERATING_STATE enumerations (OpenADR 3 report payloads, the CTA-2045 states): a
# curtailment or heightened operation in effect = participated; opted out = opted out; an error = failed; "no demand
# response directive is being followed" (NORMAL, IDLE_NORMAL, RUNNING_NORMAL) during the event = non-responsive.
OUTCOME_VALUES = {"PARTICIPATED": "participated", "OPTED_OUT": "opted_out", "NON_RESPONSIVE": "non_responsive",
                  "FAILED": "failed",
                  "RUNNING_CURTAILED": "participated", "IDLE_CURTAILED": "participated",
                  "RUNNING_HEIGHTENED": "participated", "IDLE_HEIGHTENED": "participated",
                  "IDLE_OPTED_OUT": "opted_out", "RUNNING_OPTED_OUT": "opted_out",
                  "ERROR": "failed", "SGD_ERROR_CONDITION": "failed",
                  "NORMAL": "non_responsive", "IDLE_NORMAL": "non_responsive", "RUNNING_NORMAL": "non_responsive"}


def rfc3339(instant: dt.datetime, tz_name: str | None = None) -> str:
    """An aware instant as RFC 3339 text with its offset, in ``tz_name`` (IANA) or UTC."""
    return instant.astimezone(zone(tz_name) if tz_name else dt.UTC).isoformat()


def iso_duration(delta: dt.timedelta) -> str:
    """``timedelta(hours=3)`` -> ``PT3H`` (ISO 8601; whole seconds)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "PT0S"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "P" + (f"{days}D" if days else "")
    if hours or minutes or secs:
        text += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return text


def parse_instant(value: Any, field: str) -> dt.datetime:
    """RFC 3339 text with an offset -> aware datetime; ``DomainValidationError`` naming ``field`` otherwise."""
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise DomainValidationError({field: [f"{value!r} is not an RFC 3339 date-time with an offset."]})
    return parsed


def parse_iso_duration(value: Any, field: str) -> dt.timedelta:
    """ISO 8601 duration text -> timedelta; ``DomainValidationError`` naming ``field`` otherwise."""
    try:
        parsed = parse_duration(value) if isinstance(value, str) and value.startswith(("P", "-P")) else None
    except (OverflowError, ValueError):  # more days than a timedelta holds
        parsed = None
    if parsed is None:
        raise DomainValidationError({field: [f"{value!r} is not an ISO 8601 duration (e.g. PT1H)."]})
    return parsed


def _meta(obj_id: Any, object_type: str, created: dt.datetime, modified: dt.datetime) -> dict[str, Any]:
    return {"id": str(obj_id), "createdDateTime": rfc3339(created), "modificationDateTime": rfc3339(modified),
            "objectType": object_type}


def event_payload_descriptors() -> list[dict[str, Any]]:
    return [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": SIMPLE, "units": None, "currency": None},
            {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": KW_TARGET, "units": "KW", "currency": None}]


def program_doc(program) -> dict[str, Any]:
    """A cpm program as an OpenADR program (programName = the program's code). No ``intervalPeriod``: the schema's
    is an object with a start, not nullable, so a program without one leaves it out."""
    return {
        **_meta(program.pk, "PROGRAM", program.created_at, program.updated_at),
        "programName": program.code, "programLongName": program.name, "retailerName": None,
        "retailerLongName": None, "programType": program.program_type, "country": None,
        "principalSubdivision": None, "programDescriptions": None,
        "bindingEvents": False, "localPrice": False, "payloadDescriptors": event_payload_descriptors(),
        "targets": None,
    }


def event_body(event, *, randomize_start_seconds: int = 0) -> dict[str, Any]:
    """The published fields of a cpm event (no targets, no metadata): one interval over ``[start, end)`` (the
    event's ``intervalPeriod``; the interval has none of its own, and leaves the key out: not nullable) with the
    SIMPLE level of its category and, when it has one, its kW target (negative = reduce)."""
    tz = event.program.time_zone
    period: dict[str, Any] = {"start": rfc3339(event.start, tz), "duration": iso_duration(event.end - event.start)}
    if randomize_start_seconds:
        period["randomizeStart"] = iso_duration(dt.timedelta(seconds=randomize_start_seconds))
    payloads: list[dict[str, Any]] = [{"type": SIMPLE, "values": [LEVEL[event.category]]}]
    if event.target_kw is not None:
        kw = Decimal(event.target_kw)
        payloads.append({"type": KW_TARGET,
                         "values": [float(-kw if event.direction == EventDirection.REDUCE else kw)]})
    return {
        "programID": str(event.program_id), "eventName": event.name, "priority": PRIORITY[event.category],
        "payloadDescriptors": event_payload_descriptors(),
        "reportDescriptors": [
            {"payloadType": OUTCOME, "readingType": None, "units": None, "targets": None, "aggregate": False,
             "startInterval": -1, "numIntervals": -1, "historical": True, "frequency": -1, "repeat": 1},
            {"payloadType": USAGE, "readingType": "DIRECT_READ", "units": "KWH", "targets": None,
             "aggregate": False, "startInterval": -1, "numIntervals": -1, "historical": True, "frequency": -1,
             "repeat": 1},
        ],
        "intervalPeriod": period,
        "intervals": [{"id": 0, "payloads": payloads}],
    }


def event_doc(oadr_event, *, targets: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """An OpenADR event from its published row; ``targets``: ``[(ven name, [resource names])]`` the reader may see
    (every VEN for business logic, its own for a VEN)."""
    doc = _meta(oadr_event.event_id, "EVENT", oadr_event.created_at, oadr_event.updated_at)
    doc.update(oadr_event.body)
    # Bodies published before intervals left out a missing intervalPeriod carry it as null (not nullable).
    doc["intervals"] = [{k: v for k, v in interval.items() if not (k == "intervalPeriod" and v is None)}
                        for interval in doc.get("intervals") or []]
    doc["modificationNumber"] = oadr_event.modification_number
    ven_names = [name for name, _ in targets]
    resources = [r for _, names in targets for r in names]
    doc["targets"] = [{"type": "VEN_NAME", "values": ven_names}, {"type": "RESOURCE_NAME", "values": resources}]
    return doc


def ven_doc(ven, resources: list | None = None) -> dict[str, Any]:
    doc = _meta(ven.pk, "VEN", ven.created_at, ven.updated_at)
    doc.update({"venName": ven.ven_name, "attributes": ven.attributes or None, "targets": ven.targets or None,
                "resources": [resource_doc(r, ven) for r in resources] if resources is not None else None})
    return doc


def resource_doc(resource, ven=None) -> dict[str, Any]:
    doc = _meta(resource.pk, "RESOURCE", resource.created_at, resource.updated_at)
    doc.update({"resourceName": resource.resource_name, "venID": str(resource.ven_id),
                "attributes": resource.attributes or None, "targets": resource.targets or None})
    return doc


def report_doc(report) -> dict[str, Any]:
    doc = _meta(report.pk, "REPORT", report.created_at, report.updated_at)
    doc.update({"programID": str(report.program_id), "eventID": str(report.event_id),
                "clientName": report.client_name, "reportName": report.report_name or None,
                "payloadDescriptors": report.body.get("payloadDescriptors"), "resources": report.body["resources"]})
    return doc


def subscription_doc(sub) -> dict[str, Any]:
    doc = _meta(sub.pk, "SUBSCRIPTION", sub.created_at, sub.updated_at)
    doc.update({"clientName": sub.client_name, "programID": str(sub.program_id) if sub.program_id else None,
                "objectOperations": sub.object_operations, "targets": sub.targets or None})
    return doc


def notification_doc(object_type: str, operation: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The spec's notification: the object type, the operation (GET/POST/PUT/DELETE), the object, its targets."""
    return {"objectType": object_type, "operation": operation, "object": obj, "targets": obj.get("targets")}


def problem(status: int, title: str, detail: str, instance: str = "") -> dict[str, Any]:
    """The spec's problem (RFC 7807 ``application/problem+json``)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return body
