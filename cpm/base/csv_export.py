"""CSV export of an admin changelist's selection (issue 17.4): the columns of the list as the user sees them
(``get_list_display``), machine-readable: times in UTC ISO 8601 with their offset (``2026-07-15T23:00:00+00:00``)
and, after the list's columns, each time again as a person reads it, in the row's program zone with the zone's
abbreviation (column ``start (local time)``: ``2026-07-15 16:00 PDT``),
dates ISO, money (decimal fields with two places) with two decimals, booleans ``true``/``false``, choices as their
stored codes, HTML of display columns as text. Contact details (e-mail, phone) are masked for users without
Cap.VIEW_PERSONAL_DATA (``cpm.base.masking``); a text cell that a spreadsheet would run as a formula is quoted.

A read, not a write: the action carries ``read_only = True`` and no use case, and is offered to whoever may view the
list (``allowed_permissions = ("view",)``)."""

from __future__ import annotations

import csv
import datetime as dt
import html
from decimal import Decimal

from django.contrib.admin.utils import label_for_field, lookup_field
from django.db import models
from django.http import HttpResponse
from django.utils.html import strip_tags
from django.utils.safestring import SafeData

from .masking import contact_visible, mask_email, mask_phone

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _mask_for(name: str):
    lowered = name.lower()
    if lowered.endswith("email"):
        return mask_email
    if lowered.endswith("phone"):
        return mask_phone
    return None


def cell(field, value) -> str:
    """One value as machine-readable text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        if isinstance(field, models.DecimalField) and field.decimal_places == 2:
            return f"{value:.2f}"
        return str(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, models.Model):
        text = str(value)
    else:
        text = str(value)
        if isinstance(value, SafeData) or "<" in text:
            text = html.unescape(strip_tags(text))
    return f"'{text}" if text.startswith(FORMULA_START) else text


def export_rows(modeladmin, request, queryset):
    """(header, rows) of ``queryset`` in the list's columns as ``request.user`` may see them."""
    # A local-time column of the list is exported as its field (UTC with offset: a file is read by programs).
    shown = [n for n in modeladmin.get_list_display(request) if n != "action_checkbox"]
    names = [getattr(n, "source_field", n) for n in shown]
    # The local-time columns of the list (``LocalTimeAdminMixin``), again as people read them, after the others.
    local = [n for n in shown if getattr(n, "source_field", None)]
    visible = contact_visible(request.user)
    header = [str(label_for_field(n, modeladmin.model, modeladmin)) for n in names]
    header += [f"{label_for_field(n.source_field, modeladmin.model, modeladmin)} (local time)" for n in local]
    # The list's joins, with the way to each row's zone (``LocalTimeAdminMixin.get_list_select_related``).
    related = modeladmin.get_list_select_related(request)
    if isinstance(related, list | tuple) and related:  # the list's joins (names in words, e.g. an event's zone)
        queryset = queryset.select_related(*related)
    elif related is True:
        queryset = queryset.select_related()
    rows = []
    for obj in queryset:
        row = []
        for name in names:
            field, _attr, value = lookup_field(name, obj, modeladmin)
            text = cell(field, value)
            label = getattr(name, "__name__", str(name)) if field is None else field.name
            mask = None if visible else _mask_for(label)
            row.append(mask(text) if mask and text else text)
        row += [column(obj) or "" for column in local]
        rows.append(row)
    return header, rows


def export_csv_response(modeladmin, request, queryset) -> HttpResponse:
    opts = modeladmin.model._meta
    header, rows = export_rows(modeladmin, request, queryset)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{opts.app_label}-{opts.model_name}-{stamp}.csv"'
    writer = csv.writer(response, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return response
