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
from django.utils import timezone
from rest_framework import exceptions as drf_exceptions
from rest_framework import pagination, permissions, serializers, status, throttling
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from .capabilities import may
from .errors import DomainError, DomainValidationError
from .numbers import has_digit_separator, to_int
from .pagination import EstimatedCountPaginator


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested deeper than Python's recursion allows (``[[[[...]]]]`` ten thousand
    deep: valid JSON) answered as malformed JSON (400) instead of a ``RecursionError`` (HTTP 500). The parser of
    the REST API (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``) and of the OpenADR 3 VTN."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise drf_exceptions.ParseError("JSON parse error - the body is nested too deeply.") from None


def api_now() -> dt.datetime:
    """The request's ``now`` for services (aware UTC; the only place the API reads the clock)."""
    return dt.datetime.now(dt.UTC)


class AwareDateTimeField(serializers.DateTimeField):
    """An instant: an ISO 8601 date-time with a UTC offset or ``Z``. One without an offset is refused, naming the
    field, rather than read as UTC (``TIME_ZONE``): ``2026-07-15T15:30:00`` meant in Los Angeles is seven hours
    later than 15:30 UTC, enough to put an opt-out before its event. (Fields that read an offset-less time as the
    program's wall clock say so: ``events.api.serializers.WallClockDateTimeField``.)"""

    default_error_messages = {
        "naive": "Give the time with its UTC offset (e.g. 2026-07-15T15:30:00-07:00 or 2026-07-15T22:30:00Z): a "
                 "time without one is ambiguous.",
    }

    def enforce_timezone(self, value):
        if isinstance(value, dt.datetime) and timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


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


def json_not_found(request, exception=None):
    """``handler404``: under ``/api/`` an unknown URL answers the error contract in JSON, elsewhere Django's page."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"code": "not_found", "detail": f"No API resource at {request.path}."}, status=404)
    return page_not_found(request, exception)


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

    def get_page_size(self, request):
        """``page_size`` as DRF reads it, except that a size written with a digit separator (``1_0``) is not a
        number: the default size, as for ``abc``."""
        if has_digit_separator(request.query_params.get(self.page_size_query_param)):
            return self.page_size
        return super().get_page_size(request)

    def paginate_queryset(self, queryset, request, view=None):
        """A page number that is not a positive integer the database can offset to is a 404 naming the page (not
        an overflow error, nor page 10 for ``1_0``)."""
        from rest_framework.exceptions import NotFound

        raw = request.query_params.get(self.page_query_param)
        if raw not in (None, "", "last"):
            try:
                number = to_int(raw)
            except ValueError:
                number = 0
            if not 1 <= number <= 10**9:
                raise NotFound(f"Invalid page \"{raw}\": pages are numbered from 1.")
        return super().paginate_queryset(queryset, request, view)


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


ERROR_CONTRACT = """Every error of every endpoint has one shape (``Error`` in the schema)::

    {"code": "<machine code>", "detail": "<one sentence>", "<field>": ["<message>", ...], ...}

``code`` is machine-readable (``invalid``, ``conflict``, ``transition_not_allowed``, ``not_found``,
``not_authenticated``, ``permission_denied``, ``capability_required``, ``throttled``, ...); ``detail`` is a sentence
a person can read; field errors, when there are any, are listed under the field's path (``devices[1].serial``;
a field named ``code`` is reported as ``code_field``). Missing or bad credentials give 401 with
``WWW-Authenticate: Token``; a signed-in user without the right gives 403; an unknown object 404; a state or
uniqueness conflict 409.
"""


def _error_body(code: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict:
    body: dict = {"code": code, "detail": detail}
    for key, messages in (fields or {}).items():
        body["code_field" if key == "code" else key] = [str(m) for m in messages]
    return body


def _first_message(fields: dict[str, list[str]]) -> str:
    key, messages = next(iter(fields.items()))
    return messages[0] if key == "non_field_errors" else f"{key}: {messages[0]}"


def exception_handler(exc, context):
    """Map every error to the one contract (``ERROR_CONTRACT``): domain errors to 400/403/404/409, DRF's and Django's
    to their status with a machine code and per-field messages; never 500 for bad input."""
    from rest_framework import exceptions as drf_exceptions
    from rest_framework.views import exception_handler as drf_exception_handler  # lazy: avoids an import cycle

    if isinstance(exc, DomainError):
        body = exc.as_dict()
        body.setdefault("detail", exc.message)
        return Response(body, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(_error_body("invalid", _first_message(fields), fields), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IntegrityError):
        return Response(_error_body("conflict", "The change conflicts with existing data."),
                        status=status.HTTP_409_CONFLICT)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = flatten_errors(exc.detail) or {"non_field_errors": ["Invalid input."]}
        response.data = _error_body("invalid", _first_message(fields), fields)
    elif isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail
        text = detail if isinstance(detail, str) else _first_message(flatten_errors(detail))
        code = getattr(detail, "code", None) or exc.default_code
        response.data = _error_body(str(code), str(text))
    else:  # Http404 and Django's PermissionDenied, mapped by DRF
        code = "not_found" if response.status_code == 404 else "permission_denied"
        data = response.data if isinstance(response.data, dict) else {}
        response.data = _error_body(code, str(data.get("detail", "")))
    return response


__all__ = ["ERROR_CONTRACT", "DomainValidationError", "ModelPermissions", "Pagination", "WriteThrottle", "api_now",
           "exception_handler",
           "flatten_errors", "validated", "view_use_case"]
