"""Audit recording (Zulip style: the audit row is written in the same transaction as the change)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models

from .models import AuditEntry


def actor_label(actor: Any) -> str:
    """A stable label for the actor: a user's username, a system job's name, or ``system``."""
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return getattr(actor, "get_username", lambda: str(actor))()


def audit_record(
    *,
    obj: models.Model,
    action: str,
    now: dt.datetime,
    actor: Any = None,
    from_status: str = "",
    to_status: str = "",
    reason: str = "",
    changes: dict | None = None,
) -> AuditEntry:
    """Write one audit entry for ``obj``. ``actor`` is a User, a job name (str) or None (system)."""
    user = actor if getattr(actor, "pk", None) is not None and hasattr(actor, "get_username") else None
    return AuditEntry.objects.create(
        at=now,
        actor=user,
        actor_label=actor_label(actor)[:150],
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        from_status=from_status or "",
        to_status=to_status or "",
        reason=reason or "",
        changes=changes or {},
    )
