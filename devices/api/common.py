"""Helpers shared by the devices and enrollments APIs: input validation to per-field 400s, permissions, ``now``."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from cpm.base.api import ModelPermissions
from cpm.base.errors import DomainValidationError


def flatten_errors(errors, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors -> ``{"field": ["message"]}`` / ``{"devices[1]": [...]}`` (the services' shape)."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, path))
    elif isinstance(errors, list) and all(isinstance(e, str) for e in errors):
        flat.setdefault(prefix or "non_field_errors", []).extend(str(e) for e in errors)
    elif isinstance(errors, list):
        for i, value in enumerate(errors):
            if value:
                flat.update(flatten_errors(value, f"{prefix}[{i}]"))
    else:
        flat.setdefault(prefix or "non_field_errors", []).append(str(errors))
    return flat


def validated(serializer_class, data, **kwargs) -> dict:
    """Validate ``data`` with ``serializer_class``; raise ``DomainValidationError`` (400 per field) if bad."""
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        raise DomainValidationError(flatten_errors(serializer.errors))
    return dict(serializer.validated_data)


def now():
    """The request's ``now`` for services (the only place the API reads the clock)."""
    return timezone.now()


class StatusChangePermission(ModelPermissions):
    """Actions (POST on a detail route) change the object: they need ``change``, not ``add``."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


class ReasonSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField()
    enrollment_id = serializers.IntegerField(required=False)
    program_code = serializers.CharField(required=False)
    device_id = serializers.IntegerField(required=False)
