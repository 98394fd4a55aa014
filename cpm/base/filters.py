"""API filter backends: query parameters are validated, never a cause of HTTP 500, never silently ignored.

- ``FilterBackend`` (django-filter): a NUL character in any parameter is a 400 naming the parameter (PostgreSQL
  refuses NUL in text); date-times are converted to UTC before they reach the database (Python accepts offsets up
  to +/-23:59, PostgreSQL only +/-15:59: ``2026-07-01T10:00+20:00`` is a valid instant and is now filtered as
  such; one whose UTC time falls outside years 1-9999 is a 400 naming the parameter); invalid values (unknown
  choices, bad dates) are a 400 naming the parameter (django-filter's form errors).
- ``AwareIsoDateTimeFilter``: a date-time parameter must carry its UTC offset (``2026-07-15T00:00:00-07:00``,
  ``...Z``); one without (``2026-07-15T00:00``, ``2026-07-15``) is a 400 naming the parameter, as the API's
  date-time inputs are (``cpm.base.api.AwareDateTimeField``). django-filter read it as UTC without a word: the
  local day an integrator meant, seven or eight hours off, and the repeated hour of the fall-back night as neither
  of its two instants.
- ``IdFilter``: a database id is a whole number within 64 bits; anything else (``1.5``, ``1e20``) is a 400 naming
  the parameter (a NumberFilter read 1.5 as id 1 and sent 1e20 to SQLite as an OverflowError, HTTP 500).
- ``OrderingFilter``: an ``ordering`` naming a field the view does not order by is a 400 listing the allowed ones.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from django_filters import IsoDateTimeFilter, NumberFilter
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters

from .errors import DomainValidationError


def _check_nul(request) -> None:
    bad = {key: ["Null characters are not allowed."] for key, values in request.query_params.lists()
           if "\x00" in key or any("\x00" in v for v in values)}
    if bad:
        raise DomainValidationError({k.replace("\x00", "\\x00"): v for k, v in bad.items()})


def _to_utc(value):
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    if isinstance(value, slice):
        return slice(_to_utc(value.start), _to_utc(value.stop), value.step)
    if isinstance(value, list | tuple):
        return type(value)(_to_utc(v) for v in value)
    return value


MAX_ID = 2**63 - 1

NAIVE_MESSAGE = ("Give the time with its UTC offset (e.g. 2026-07-15T15:30:00-07:00 or 2026-07-15T22:30:00Z): a time "
                 "without one is ambiguous.")


class AwareIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time with a UTC offset; one without is refused (``NAIVE_MESSAGE``)."""

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is None and _is_date(value.strip()):
                parsed = dt.datetime.min  # a date alone ("2026-07-15"): naive too
            if parsed is not None and (parsed.tzinfo is None or parsed.utcoffset() is None):
                raise ValidationError(NAIVE_MESSAGE, code="naive")
        return super().to_python(value)


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


class AwareIsoDateTimeFilter(IsoDateTimeFilter):
    """A filter on an instant (see the module docstring)."""

    field_class = AwareIsoDateTimeField


class IdField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class IdFilter(NumberFilter):
    """A filter on a database id (see the module docstring)."""

    field_class = IdField


def describe(filterset_class, **texts: str):
    """Give filters of ``filterset_class`` (declared, or generated from its ``Meta.fields``) their description in
    the API docs (``help_text``, read by drf-spectacular); returns the class."""
    for name, text in texts.items():
        filterset_class.base_filters[name].extra["help_text"] = text
    return filterset_class


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend with NUL refusal and date-times in UTC (see the module docstring)."""

    def filter_queryset(self, request, queryset, view):
        _check_nul(request)
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            raise DomainValidationError({key: [str(m) for m in messages]
                                         for key, messages in filterset.errors.items()})
        for name, value in list(filterset.form.cleaned_data.items()):
            try:
                filterset.form.cleaned_data[name] = _to_utc(value)
            except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
                raise DomainValidationError({name: [
                    "This date-time is outside years 1 to 9999 in UTC."]}) from None
        return filterset.qs


class OrderingFilter(filters.OrderingFilter):
    """DRF's ordering, refusing unknown fields (400 naming ``ordering`` and the allowed fields)."""

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params:
            _check_nul(request)
            fields = [param.strip() for param in params.split(",") if param.strip()]
            valid = self.remove_invalid_fields(queryset, fields, view, request)
            if len(valid) != len(fields):
                allowed = sorted(name for name, _label in self.get_valid_fields(queryset, view, {"request": request}))
                unknown = [f for f in fields if f not in valid]
                raise DomainValidationError({self.ordering_param: [
                    f"Cannot order by {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'} "
                    "(prefix '-' for descending)."]})
            return valid
        return self.get_default_ordering(view)


class SearchFilter(filters.SearchFilter):
    """DRF's search, refusing NUL characters; a view may choose its search fields per request
    (``view.get_search_fields(request)``, e.g. contact details only for users who may see them)."""

    def get_search_fields(self, view, request):
        chooser = getattr(view, "get_search_fields", None)
        return chooser(request) if callable(chooser) else super().get_search_fields(view, request)

    def filter_queryset(self, request, queryset, view):
        _check_nul(request)
        return super().filter_queryset(request, queryset, view)
