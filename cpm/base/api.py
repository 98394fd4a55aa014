"""API base classes shared by every app: pagination, permissions, throttling, error mapping, input validation and
the one source of ``now``.

Writes are guarded by use case: a view declares ``use_cases = {"<action>": "<use case>"}`` (``create``,
``update``, ``partial_update``, ``destroy`` or an ``@action``'s name); ``ModelPermissions`` refuses (403) a user who
may not run it before the service is called, and the service checks again (``cpm.base.capabilities``).
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from rest_framework import pagination, permissions, status, throttling
from rest_framework.response import Response

from .capabilities import may
from .errors import DomainError, DomainValidationError
from .pagination import EstimatedCountPaginator


def api_now() -> dt.datetime:
    """The request's ``now`` for services (aware UTC; the only place the API reads the clock)."""
    return dt.datetime.now(dt.UTC)


def flatten_errors(errors, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors -> ``{"field": ["message"]}`` / ``{"devices[1]": [...]}`` /
    ``{"seasons[1].end_date": [...]}`` (the services' key shape). Items of a ListField/DictField (integer keys) are
    ``[i]``; a nested object's own ``non_field_errors`` are keyed by the object's path."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                name = key if key != "non_field_errors" or not prefix else ""
                path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            flat.update(flatten_errors(value, path))
    elif isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
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


def view_use_case(view) -> str | None:
    """The write use case a view declares for its current action (``view.use_cases``), or None."""
    return getattr(view, "use_cases", {}).get(getattr(view, "action", None))


class Pagination(pagination.PageNumberPagination):
    """Pages of 50 (``page_size`` up to 1,000); ``count`` is the planner's estimate for results over 10,000 rows
    (``cpm.base.pagination``)."""

    django_paginator_class = EstimatedCountPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class ModelPermissions(permissions.DjangoModelPermissions):
    """Django model permissions, with ``view`` required for reads (DRF's default lets any user read).

    A view may name the permission an action needs instead (``action_permissions = {"approve":
    "cpm.approve_enrollments"}``): approvals, exports and opt-outs are capabilities of roles (``cpm/roles.py``),
    not mere model changes, so a CSR who may change enrollments still cannot approve them.
    """

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
    }

    def has_permission(self, request, view):
        use_case = view_use_case(view)
        if use_case and request.method not in permissions.SAFE_METHODS:
            # A write: the use case's capability decides (the service checks it again); reads of the object still
            # need ``view`` (get_object runs under the same permission classes).
            user = request.user
            return bool(user and user.is_authenticated and may(user, use_case))
        required = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if required:  # one permission, or a tuple of permissions any of which suffices
            user = request.user
            options = (required,) if isinstance(required, str) else tuple(required)
            return bool(user and user.is_authenticated and any(user.has_perm(p) for p in options))
        return super().has_permission(request, view)


class WriteThrottle(throttling.UserRateThrottle):
    """Rate limit on API writes per user (``API_WRITE_RATE``); reads are not throttled."""

    scope = "writes"

    def allow_request(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        return super().allow_request(request, view)


def exception_handler(exc, context):
    """Map domain errors to 400/404/409 with a machine code and per-field messages; never 500 for bad input."""
    from rest_framework.views import exception_handler as drf_exception_handler  # lazy: avoids an import cycle

    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response({"code": "invalid", **detail}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IntegrityError):
        return Response({"code": "conflict", "detail": "The change conflicts with existing data."},
                        status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)


__all__ = ["DomainValidationError", "ModelPermissions", "Pagination", "WriteThrottle", "api_now", "exception_handler",
           "flatten_errors", "validated", "view_use_case"]
