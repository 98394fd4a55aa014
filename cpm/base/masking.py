"""Masking of personal data for roles without ``cpm.view_personal_data``."""

from __future__ import annotations


def mask_email(value: str) -> str:
    """``pat.jones@example.com`` -> ``p*******@example.com``."""
    if not value or "@" not in value:
        return "***" if value else ""
    local, domain = value.split("@", 1)
    return f"{local[:1]}{'*' * max(1, len(local) - 1)}@{domain}"


def mask_phone(value: str) -> str:
    """Keep the last two digits: ``555-0142`` -> ``***-**42``."""
    if not value:
        return ""
    digits = [c for c in value if c.isdigit()]
    tail = "".join(digits[-2:])
    return f"***-**{tail}"


def contact_visible(user) -> bool:
    """Whether ``user`` may see unmasked contact details (the capability ``view_personal_data``)."""
    from .capabilities import Cap, actor_can

    return actor_can(user, Cap.VIEW_PERSONAL_DATA)


def masked_contact(user, *, email: str = "", phone: str = "", visible: bool | None = None) -> dict[str, str]:
    """``{"email": ..., "phone": ...}`` as ``user`` may see them: unmasked with ``view_personal_data``, masked
    otherwise (every API serializer, admin page and download of customers goes through here). ``visible``: the
    user's ``contact_visible`` when the caller already knows it (a list asks once, not per row)."""
    if contact_visible(user) if visible is None else visible:
        return {"email": email or "", "phone": phone or ""}
    return {"email": mask_email(email or ""), "phone": mask_phone(phone or "")}


# Fields holding a contact detail, wherever they are (a customer's ``email`` and ``phone``, a message's ``recipient``,
# the keys of an audit entry's ``changes``): a list filtered or searched by one of them tells whether a guess is
# right, so the filter is as personal as the value.
CONTACT_LOOKUP_PARTS = frozenset({"email", "phone", "recipient"})


def contact_lookup(lookup: str) -> bool:
    """Whether the ORM lookup ``lookup`` (``email__startswith``, ``customer__phone``, ``changes__email``) reads a
    contact detail."""
    return any(part.lower() in CONTACT_LOOKUP_PARTS for part in str(lookup).split("__"))


def contact_lookup_allowed(user, lookup: str) -> bool:
    """A lookup touching contact details only for users who may see them (``view_personal_data``)."""
    return not contact_lookup(lookup) or contact_visible(user)


def masked_changes(changes: dict) -> dict:
    """An audit entry's ``changes`` with contact values masked (each ``value`` or ``[old, new]``)."""
    masks = {"email": mask_email, "phone": mask_phone}
    out = dict(changes or {})
    for key, mask in masks.items():
        if key in out:
            value = out[key]
            out[key] = [mask(str(v or "")) for v in value] if isinstance(value, list) else mask(str(value or ""))
    return out


def is_secret_key(key: str) -> bool:
    """A credential's field (an aggregator's ``webhook_secret``, a password): never written to or shown from the
    audit trail, whoever reads it."""
    lowered = str(key).lower()
    return "secret" in lowered or "password" in lowered


def _secret_state(value) -> str:
    return "(set)" if value not in (None, "", "None") else ""


def redacted_changes(changes: dict) -> dict:
    """``changes`` with every credential replaced by whether it is set: a created one ``"(set)"``, a change
    ``["(set)", "(changed)"]`` (or ``""`` where there was none / it was removed)."""
    out = dict(changes or {})
    for key, value in out.items():
        if not is_secret_key(key) or value in ("(set)", "", None):
            continue
        if isinstance(value, list | tuple) and len(value) == 2:
            old, new = (_secret_state(v) for v in value)
            out[key] = [old, "(changed)" if new and old else new]
        else:
            out[key] = _secret_state(value)
    return out


def changes_for(user, changes: dict) -> dict:
    """``changes`` as ``user`` may see them: credentials never shown, contact values masked without
    ``view_personal_data``."""
    changes = redacted_changes(changes)
    return changes if contact_visible(user) else masked_changes(changes)
