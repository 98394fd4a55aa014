"""Helpers shared by the events services: the event's local dates, local wall-clock times to UTC, the statuses that
release a device, and the audited bulk move of participations."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from cpm.base.audit import actor_label, audit_bulk
from cpm.base.errors import DomainValidationError, TransitionNotAllowed

from ..choices import EventStatus, ParticipationStatus
from ..models import Event, Participation

# Participation statuses that hold a device (the database no-overlap check, events migration 0011, uses the same
# condition).
RELEASED = ParticipationStatus.CANCELLED


def event_local_dates(event: Event, tz: ZoneInfo) -> tuple[dt.date, dt.date]:
    """First and last local dates the event touches (end is exclusive: an event ending at midnight stays on its
    start day)."""
    return (event.start.astimezone(tz).date(),
            (event.end - dt.timedelta(microseconds=1)).astimezone(tz).date())


def to_utc(value: dt.datetime, tz: ZoneInfo, field: str) -> dt.datetime:
    """An aware datetime in UTC; a naive one is local wall-clock time in the program's zone, refused when it does
    not exist (spring DST gap) or is ambiguous (autumn repeated hour) without an offset, or out of range (its UTC
    instant outside years 1 to 9999)."""
    if not isinstance(value, dt.datetime):
        raise DomainValidationError({field: ["Enter a date and time."]})
    try:
        return _to_utc(value, tz, field)
    except OverflowError:
        raise DomainValidationError({field: [f"{value:%Y-%m-%d %H:%M} is out of range (its UTC time falls outside "
                                             "years 1 to 9999)."]}) from None


def _to_utc(value: dt.datetime, tz: ZoneInfo, field: str) -> dt.datetime:
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value.astimezone(dt.UTC)
    first = value.replace(tzinfo=tz, fold=0)
    second = value.replace(tzinfo=tz, fold=1)
    if first.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != value:
        raise DomainValidationError({field: [f"{value:%Y-%m-%d %H:%M} does not exist in {tz.key} (DST change)."]})
    if first.utcoffset() != second.utcoffset():
        raise DomainValidationError({field: [f"{value:%Y-%m-%d %H:%M} occurs twice in {tz.key} (DST change); "
                                             "give a UTC offset."]})
    return first.astimezone(dt.UTC)


def actor_name(actor: Any) -> str:
    """The actor as text for records that keep a name (``EventRevision.changed_by``)."""
    return actor_label(actor)[:150]


def require_scheduled(event: Event) -> None:
    if event.status != EventStatus.SCHEDULED:
        raise TransitionNotAllowed(f"Event {event} is {event.status}; devices are reserved only for a scheduled "
                                   "event.", from_status=event.status, to_status=event.status)


def participations_move(queryset: QuerySet[Participation], *, to: str, now: dt.datetime, actor: Any,
                        reason: str) -> int:
    """Move every participation of ``queryset`` to ``to`` in one UPDATE and write one audit entry per moved row
    (its own from-status, the actor and the reason), in the caller's transaction. The rows are locked while read,
    so the audited from-statuses are the ones replaced. Returns how many moved.

    Used by the lifecycle's bulk changes (dispatch, cancel); the reservation engine's spans do not use it (their
    ledger is the audit of each decision, see ``events.services.reservation``)."""
    rows = list(queryset.select_for_update().order_by("pk").values_list("pk", "status"))
    if not rows:
        return 0
    Participation.objects.filter(pk__in=[pk for pk, _ in rows]).update(status=to, updated_at=now)
    audit_bulk(model=Participation, rows=[(pk, current, to, reason) for pk, current in rows], now=now, actor=actor)
    return len(rows)
