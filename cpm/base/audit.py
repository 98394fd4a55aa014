"""Audit recording: the one trail (Zulip style: the audit row is written in the same transaction as the change).

Every state change, bulk ones included, is an ``AuditEntry`` with the actor, the reason, before (``from_status``)
and after (``to_status``, ``changes``), a generic ``action`` (create, update, status_change, ...) and a namespaced
``code`` saying what happened to what (``event.cancelled``, ``event_settlement.approved``,
``bill_credit_export.exported``). Each object's admin "History" page shows its entries
(``cpm.base.admin.AuditHistoryMixin``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from django.db import models

from cpm.models import AuditEntry

from . import bulk
from .capabilities import CustomerActor, SystemActor
from .masking import redacted_changes

_VERBS = {
    "create": "created",
    "update": "updated",
    "override": "rule_overridden",
    "export": "exported",
    "view_personal_data": "personal_data_viewed",
    "delete": "deleted",
}


def entity_name(model: type[models.Model] | models.Model) -> str:
    """``EventSettlement`` -> ``event_settlement`` (the namespace of an audit code)."""
    name = model._meta.object_name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def audit_code(model, action: str, to_status: str = "") -> str:
    """The namespaced code of an audited action: ``<entity>.<status reached>`` for a status change
    (``event.cancelled``), ``<entity>.<past participle>`` otherwise (``program.created``); an ``action`` that
    already holds a dot is a code of its own (``bill_credits.exported``)."""
    if "." in action:
        return action
    if action == "status_change" and to_status:
        return f"{entity_name(model)}.{to_status}"
    return f"{entity_name(model)}.{_VERBS.get(action, action)}"


def actor_label(actor: Any) -> str:
    """A stable label for the actor: a user's username, ``system:<name>`` for a ``SystemActor``,
    ``customer:<id> (<via>)`` for a ``CustomerActor``."""
    if isinstance(actor, SystemActor | CustomerActor):
        return actor.label
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return getattr(actor, "get_username", lambda: str(actor))()


def actor_user(actor: Any):
    """The user behind ``actor`` (for the foreign key), or None for a system actor."""
    return actor if getattr(actor, "pk", None) is not None and hasattr(actor, "get_username") else None


def audit_record(
    *,
    obj: models.Model,
    action: str,
    now: dt.datetime,
    actor: Any,
    from_status: str = "",
    to_status: str = "",
    reason: str = "",
    changes: dict | None = None,
    code: str = "",
) -> AuditEntry:
    """Write one audit entry for ``obj``. ``actor`` is a User or a ``SystemActor``; ``code`` defaults to
    ``audit_code(obj, action, to_status)``."""
    return AuditEntry.objects.create(
        at=now,
        actor=actor_user(actor),
        actor_label=actor_label(actor)[:150],
        action=("status_change" if to_status else "update") if "." in action else action,
        code=(code or audit_code(obj, action, to_status))[:64],
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        from_status=from_status or "",
        to_status=to_status or "",
        reason=reason or "",
        changes=redacted_changes(changes or {}),  # a credential's value never enters the trail
    )


def audit_entries(*, model: type[models.Model], rows: Iterable[tuple], now: dt.datetime, actor: Any,
                  action: str = "status_change", code: str = "") -> list[AuditEntry]:
    """Unsaved audit entries of a bulk change, one per row ``(pk, from_status, to_status, reason)``: the same
    content as ``audit_record`` for each object, to be written in one insert by the caller (``bulk_create`` or
    the bulk writer) in the transaction of the change."""
    user = actor_user(actor)
    label = actor_label(actor)[:150]
    object_type = model._meta.label_lower
    verbose = model._meta.verbose_name.capitalize()
    return [AuditEntry(at=now, actor=user, actor_label=label, action=action,
                       code=(code or audit_code(model, action, to))[:64], object_type=object_type,
                       object_id=str(pk), object_repr=f"{verbose} #{pk}"[:200], from_status=frm or "",
                       to_status=to or "", reason=reason or "", changes={})
            for pk, frm, to, reason in rows]


def audit_bulk(*, model: type[models.Model], rows: Iterable[tuple], now: dt.datetime, actor: Any,
               action: str = "status_change", code: str = "") -> int:
    """Write the audit entries of a bulk change (``audit_entries``) in batches; returns how many."""
    entries = audit_entries(model=model, rows=rows, now=now, actor=actor, action=action, code=code)
    AuditEntry.objects.bulk_create(entries, batch_size=2000)
    return len(entries)


_AUDIT_COLUMNS = ["at", "actor_id", "actor_label", "action", "code", "object_type", "object_id", "object_repr",
                  "from_status", "to_status", "reason", "changes"]


def audit_write(*, model: type[models.Model], rows: Iterable[tuple], now: dt.datetime, actor: Any,
                action: str = "status_change", code: str = "") -> int:
    """Write the audit entries of a bulk change, one per row ``(pk, from_status, to_status, reason)``, with the same
    content as ``audit_entries`` (and so as ``audit_record`` for each object), as plain rows in one insert
    (``cpm.base.bulk.insert_rows``: COPY on PostgreSQL, ``bulk_create`` elsewhere) in the caller's transaction:
    no model instance per entry. Returns how many."""
    user = actor_user(actor)
    user_id = user.pk if user is not None else None
    label = actor_label(actor)[:150]
    object_type = model._meta.label_lower
    verbose = model._meta.verbose_name.capitalize()
    no_changes = bulk.RawJson("{}")
    codes: dict[str, str] = {}
    out = []
    for pk, frm, to, reason in rows:
        row_code = codes.get(to)
        if row_code is None:
            row_code = codes[to] = (code or audit_code(model, action, to))[:64]
        out.append((now, user_id, label, action, row_code, object_type, str(pk), f"{verbose} #{pk}"[:200], frm or "",
                    to or "", reason or "", no_changes))
    return bulk.insert_rows(AuditEntry, _AUDIT_COLUMNS, out)
