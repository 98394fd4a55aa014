"""Status transitions: an explicit map per status field, enforced by services, audited.

Usage in a service::

    transition(obj=program, field="status", to=ProgramStatus.ACTIVE, allowed=PROGRAM_TRANSITIONS,
               now=now, actor=actor, reason="launch")

The change is a conditional UPDATE (``WHERE status = <from>``), so two concurrent transitions of the same row cannot
both succeed: the loser gets ``TransitionNotAllowed``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import models

from .audit import audit_bulk, audit_record
from .errors import TransitionNotAllowed

TransitionMap = Mapping[str, frozenset[str] | set[str] | tuple[str, ...]]


def check_transition(*, allowed: TransitionMap, current: str, to: str, label: str) -> None:
    """Raise ``TransitionNotAllowed`` unless ``current -> to`` is in ``allowed``."""
    if to not in allowed.get(current, ()):
        permitted = ", ".join(sorted(allowed.get(current, ()))) or "none"
        raise TransitionNotAllowed(
            f"{label} cannot go from {current} to {to} (allowed from {current}: {permitted}).",
            from_status=current,
            to_status=to,
        )


def transition(
    *,
    obj: models.Model,
    to: str,
    allowed: TransitionMap,
    now: dt.datetime,
    actor: Any,
    reason: str = "",
    field: str = "status",
    extra_updates: dict[str, Any] | None = None,
    changes: dict[str, Any] | None = None,
) -> models.Model:
    """Move ``obj.<field>`` to ``to`` if the map allows it; audit who, when, from, to and why (and ``changes``: what
    else the change did, e.g. how many participations it cancelled, in the same one entry).

    Raises ``TransitionNotAllowed`` for a refused transition or when another transaction changed the status first.
    """
    current = getattr(obj, field)
    label = f"{obj._meta.verbose_name.capitalize()} {obj}"
    check_transition(allowed=allowed, current=current, to=to, label=label)
    updates = {field: to, **(extra_updates or {})}
    if "updated_at" in {f.name for f in obj._meta.concrete_fields}:
        updates["updated_at"] = now
    changed = type(obj)._default_manager.filter(pk=obj.pk, **{field: current}).update(**updates)
    if changed != 1:
        raise TransitionNotAllowed(f"{label} changed status concurrently; reload and try again.",
                                   from_status=current, to_status=to)
    for key, value in updates.items():
        setattr(obj, key, value)
    audit_record(obj=obj, action="status_change", now=now, actor=actor, from_status=current, to_status=to,
                 reason=reason, changes=changes)
    return obj


def transition_bulk(
    *,
    queryset: models.QuerySet,
    to: str,
    allowed: TransitionMap,
    now: dt.datetime,
    actor: Any,
    reason: str = "",
    field: str = "status",
    extra_updates: dict[str, Any] | None = None,
) -> int:
    """Move every row of ``queryset`` whose ``<field>`` may go to ``to`` (by the map) in one conditional UPDATE per
    current status, and write one audit entry per moved row (who, when, from, to, why) in the same transaction.

    Rows in a status that may not reach ``to`` are left as they are. Returns how many moved. Call inside
    ``transaction.atomic``; lock the rows first (``select_for_update``) when a concurrent move must be excluded.
    """
    model = queryset.model
    has_updated_at = "updated_at" in {f.name for f in model._meta.concrete_fields}
    moved = 0
    for current in sorted({s for s, targets in allowed.items() if to in targets}):
        rows = queryset.filter(**{field: current})
        pks = list(rows.values_list("pk", flat=True))
        if not pks:
            continue
        updates = {field: to, **(extra_updates or {})}
        if has_updated_at:
            updates["updated_at"] = now
        n = model._default_manager.filter(pk__in=pks, **{field: current}).update(**updates)
        if n != len(pks):
            raise TransitionNotAllowed(f"{model._meta.verbose_name_plural.capitalize()} changed status concurrently; "
                                       "reload and try again.", from_status=current, to_status=to)
        audit_bulk(model=model, rows=[(pk, current, to, reason) for pk in pks], now=now, actor=actor)
        moved += n
    return moved
