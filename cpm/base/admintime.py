"""Local time and readable numbers in the admin.

A person reads and types times in the program's IANA zone, labelled with it; the database and the API keep UTC
(ISO 8601 with offsets). ``LocalTimeAdminMixin`` (a base of ``GuardedModelAdmin``, ``ReadOnlyAdmin``
and ``AuditHistoryAdmin``):

- finds each model's way to a program's ``time_zone`` (``local_zone_path``, detected through its foreign keys:
  ``program__time_zone``, ``event__program__time_zone``, ...; a model without one uses ``CPM_DISPLAY_TIME_ZONE``);
- shows the datetime columns of a list in each row's zone with the zone's abbreviation ("2026-07-15 15:00 PDT");
- renders change, history, delete and list pages under that zone (``timezone.override``), so read-only fields, the
  date hierarchy and date filters are local, and ``FORMAT_MODULE_PATH`` (``cpm/formats``) labels every datetime;
- takes datetimes in forms as local wall-clock times, labelled "Start (America/Los_Angeles, local time)", and
  refuses a time of the spring-forward gap or a repeated autumn time without its offset, in words naming the field;
- shows decimals by what they are (``cpm.base.money.format_decimal_field``): money with currency and two decimals,
  kWh and kW with units, other numbers without trailing zeros, and JSON lists of codes as comma-separated values
  (``install_decimal_display``);
- shows a JSON object (an audit entry's changes, a dispatch payload, a message's figures) as "Label: value" lines,
  its ISO 8601 instants in the page's zone with the abbreviation (``readable_json``), never as code.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.contrib.admin import helpers, widgets
from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.utils import display_for_field as django_display_for_field
from django.core.exceptions import ValidationError
from django.db import models
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .money import format_decimal_field
from .timeutils import WallClockError, format_local, local_wall_to_utc_strict, zone


def display_zone() -> ZoneInfo:
    """The zone of times that belong to no program (``CPM_DISPLAY_TIME_ZONE``)."""
    return zone(getattr(settings, "CPM_DISPLAY_TIME_ZONE", "UTC"))


@cache
def zone_path(model) -> str:
    """The lookup from ``model`` to an IANA ``time_zone`` field (a program's), through at most three foreign keys;
    "" when there is none."""
    frontier = [(model, "")]
    for _depth in range(4):
        found, nxt = None, []
        for current, prefix in frontier:
            names = {f.name for f in current._meta.concrete_fields}
            if "time_zone" in names:
                found = f"{prefix}time_zone"
                break
            for f in current._meta.concrete_fields:
                if f.is_relation and f.many_to_one and f.related_model is not None and f.related_model is not model:
                    nxt.append((f.related_model, f"{prefix}{f.name}__"))
        if found:
            return found
        frontier = nxt
    return ""


@cache
def named_event_paths(model) -> tuple[str, ...]:
    """``select_related`` paths that load what ``model``'s objects need to name themselves, and the events they
    name, in a person's zone: an event names itself with its start in its program's zone only when that program is
    loaded (``Event.__str__``, no query), else in UTC. A model declares the relations its name reads as
    ``name_needs`` (the event: ``("program",)``; a participation: ``("event__program",)``); here: the model's own,
    and those of the objects its foreign keys point to (``event__program``, ``participation__event__program``).
    Declared on the models, so this base names no app."""
    paths = list(getattr(model, "name_needs", ()))
    for f in model._meta.concrete_fields:
        if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is not model:
            paths += [f"{f.name}__{p}" for p in getattr(f.related_model, "name_needs", ())]
    return tuple(dict.fromkeys(paths))


def resolve_zone(obj, path: str) -> ZoneInfo:
    """The zone of ``obj`` following ``path`` (``event__program__time_zone``); the display zone when a link is
    missing."""
    value = obj
    for part in path.split("__") if path else ():
        value = getattr(value, part, None)
        if value is None:
            return display_zone()
    try:
        return zone(value) if isinstance(value, str) and value else display_zone()
    except ValueError:
        return display_zone()


# -- typing local wall-clock times --------------------------------------------------------------------------------

_OFFSET = re.compile(r"^\s*(?P<time>\d{1,2}:\d{2}(?::\d{2})?)\s*(?P<off>(?:UTC|GMT)?\s*[+-]\d{1,2}(?::?\d{2})?)?\s*$")


class OffsetTimeField(forms.TimeField):
    """A time, optionally followed by a UTC offset ("01:30 -07:00") that picks one of the two repeated autumn
    times."""

    def to_python(self, value):
        if isinstance(value, str):
            match = _OFFSET.match(value)
            if match and match.group("off"):
                base = super().to_python(match.group("time"))
                digits = re.sub(r"[^\d+-]", "", match.group("off"))
                sign = -1 if digits.startswith("-") else 1
                digits = digits.lstrip("+-")
                hours, minutes = (int(digits[:-2] or 0), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
                offset = dt.timedelta(hours=hours, minutes=minutes) * sign
                return base.replace(tzinfo=dt.timezone(offset))
        return super().to_python(value)


INVALID_TIME = ("Enter a valid time as HH:MM (24-hour clock); for a time the clocks repeat on the night they go back, "
                "add its UTC offset, e.g. 01:30 -07:00.")


class LocalSplitDateTimeWidget(widgets.AdminSplitDateTime):
    """Shows a UTC instant as the current zone's wall clock; a repeated autumn time shows its offset so saving the
    page again keeps the same instant."""

    def decompress(self, value):
        if not value:
            return [None, None]
        local = timezone.localtime(value) if timezone.is_aware(value) else value
        tz = timezone.get_current_timezone()
        naive = local.replace(tzinfo=None)
        first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
        if timezone.is_aware(value) and first.utcoffset() != second.utcoffset():
            offset = int(local.utcoffset().total_seconds() // 60)
            sign = "-" if offset < 0 else "+"
            return [local.date(), f"{local:%H:%M:%S} {sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"]
        return [local.date(), local.time()]


class LocalSplitDateTimeField(forms.SplitDateTimeField):
    """A date and a local wall-clock time in the current zone (the program's), converted to UTC; the spring gap and
    the repeated autumn hour (without an offset) are refused in words naming the field."""

    widget = LocalSplitDateTimeWidget

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        date_field, time_field = self.fields
        # The time box's own message: the whole field's ("Enter a list of values.") named nothing a person typed.
        self.fields = (date_field, OffsetTimeField(error_messages={"invalid": INVALID_TIME},
                                                   input_formats=time_field.input_formats, localize=self.localize))

    def compress(self, data_list):
        if not data_list:
            return None
        day, time = data_list
        if day in self.empty_values:
            raise ValidationError(self.error_messages["invalid_date"], code="invalid_date")
        if time in self.empty_values:
            raise ValidationError(self.error_messages["invalid_time"], code="invalid_time")
        wall = dt.datetime.combine(day, time.replace(tzinfo=None), tzinfo=time.tzinfo)
        tz = timezone.get_current_timezone()
        try:
            return local_wall_to_utc_strict(wall, tz, field=str(self.label or "Time")).astimezone(tz)
        except WallClockError as exc:
            raise ValidationError(str(exc), code=exc.kind) from exc


def local_label(label: str, tz: ZoneInfo) -> str:
    return f"{label} ({tz.key}, local time)"


# -- readable JSON ------------------------------------------------------------------------------------------------

_ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$")


_UNITS = {"kw": "kW", "kwh": "kWh", "mw": "MW", "mwh": "MWh", "wh": "Wh"}


def _json_label(key) -> str:
    """A JSON key as a label: words capitalised at the start, units as written ("forecast_kw": "Forecast kW")."""
    words = [_UNITS.get(w.lower(), w) for w in str(key).replace("_", " ").split()]
    text = " ".join(words)
    return text if words and words[0] in _UNITS.values() else text[:1].upper() + text[1:]


def _json_text(value, tz: ZoneInfo):
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and _ISO_INSTANT.match(value):
        try:
            return format_local(dt.datetime.fromisoformat(value.replace("Z", "+00:00")), tz)
        except ValueError:
            return value
    return value


def readable_json(value, *, tz: ZoneInfo | None = None) -> SafeString:
    """A JSON value as people read it (HTML): an object as "Label: value" lines (``<ul class="readable-json">``,
    nested objects nested), a list of plain values comma-separated ("none" when empty), ISO 8601 instants with an
    offset in ``tz`` (default: the current zone) with the abbreviation ("2026-07-15 15:00 PDT"), dates and text as
    they are, escaped."""
    tz = tz or timezone.get_current_timezone()
    if isinstance(value, dict):
        if not value:
            return mark_safe("-")  # noqa: S308 - a constant
        return format_html('<ul class="readable-json">{}</ul>', format_html_join(
            "", "<li>{}: {}</li>", ((_json_label(k), readable_json(v, tz=tz)) for k, v in value.items())))
    if isinstance(value, list):
        if not value:
            return mark_safe("none")  # noqa: S308 - a constant
        if all(not isinstance(v, dict | list) for v in value):
            return mark_safe(", ".join(str(conditional_escape(_json_text(v, tz))) for v in value))  # noqa: S308
        return format_html('<ul class="readable-json">{}</ul>', format_html_join(
            "", "<li>{}</li>", ((readable_json(v, tz=tz),) for v in value)))
    return conditional_escape(_json_text(value, tz))


# -- readable decimals --------------------------------------------------------------------------------------------

def display_for_field(value, field, empty_value_display, avoid_link=False):
    """Django's ``display_for_field`` with decimals shown by what they are (money, kWh, kW, shares) and a JSON list
    of plain values (codes: eligible device types, targeted territories) as the values separated by commas, never
    as JSON text."""
    if isinstance(field, models.DecimalField) and value is not None:
        return format_decimal_field(value, field.name, decimal_places=field.decimal_places)
    if (isinstance(field, models.JSONField) and isinstance(value, list) and value
            and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value)):
        return ", ".join(str(v) for v in value)
    if isinstance(field, models.JSONField) and isinstance(value, dict) and value:
        return readable_json(value)
    return django_display_for_field(value, field, empty_value_display, avoid_link=avoid_link)


def install_decimal_display() -> None:
    """Lists and read-only fields of the admin show decimals through ``display_for_field`` above (the two admin
    modules that render model values; idempotent)."""
    admin_list.display_for_field = display_for_field
    helpers.display_for_field = display_for_field


install_decimal_display()


# -- the mixin ----------------------------------------------------------------------------------------------------

def _render_in(tz: ZoneInfo, view):
    with timezone.override(tz):
        response = view()
        if isinstance(response, TemplateResponse) and not response.is_rendered:
            response.render()
    return response


class LocalTimeAdminMixin:
    """See the module docstring. ``local_zone_path``: the lookup to the zone (None: detected; "": none)."""

    local_zone_path: str | None = None

    def _zone_path(self) -> str:
        return zone_path(self.model) if self.local_zone_path is None else self.local_zone_path

    def _zone_relation(self) -> str:
        return self._zone_path().rpartition("__")[0]

    def zone_for(self, obj) -> ZoneInfo:
        return resolve_zone(obj, self._zone_path()) if obj is not None else display_zone()

    # lists
    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return [self._local_column(name) if isinstance(name, str) else name for name in shown]

    def _local_column(self, name: str):
        try:
            field = self.model._meta.get_field(name)
        except Exception:  # noqa: BLE001 - a method or property of the admin or model: shown as it is
            return name
        if not isinstance(field, models.DateTimeField):
            return name

        def column(obj, _name=name):
            return format_local(getattr(obj, _name), self.zone_for(obj))

        column.short_description = field.verbose_name
        column.admin_order_field = name
        column.__name__ = f"{name}_local"
        column.source_field = name  # machine-readable exports use the field itself (UTC, ISO 8601)
        return column

    def get_object(self, request, object_id, from_field=None):
        """Django's ``get_object`` with the programs of the events the object names loaded (its page names them in
        their zones). An id beyond the database's integers is not found (None): Django checks the range of an
        integer key but not of a related one used as the key (an OpenADR event's is its cpm event), where SQLite
        raised ``OverflowError``, an HTTP 500."""
        try:
            return self._get_object(request, object_id, from_field)
        except OverflowError:
            return None

    def _get_object(self, request, object_id, from_field=None):
        paths = named_event_paths(self.model)
        if not paths:
            return super().get_object(request, object_id, from_field)
        queryset = self.get_queryset(request).select_related(*paths)
        model = queryset.model
        field = model._meta.pk if from_field is None else model._meta.get_field(from_field)
        try:
            return queryset.get(**{field.name: field.to_python(object_id)})
        except (model.DoesNotExist, ValidationError, ValueError):
            return None

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        paths = named_event_paths(db_field.related_model) if "queryset" not in kwargs else ()
        if paths:
            # The choices name events in their programs' zones.
            qs = self.get_field_queryset(None, db_field, request)
            kwargs["queryset"] = (qs if qs is not None else db_field.related_model._default_manager.all()
                                  ).select_related(*paths)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_select_related(self, request):
        related = super().get_list_select_related(request)
        wanted = [p for p in (self._zone_relation(), *named_event_paths(self.model)) if p]
        if not wanted or related is True:
            return related
        related = [] if related is False else list(related)
        return [*related, *(p for p in dict.fromkeys(wanted) if p not in related)]

    def changelist_view(self, request, extra_context=None):
        return _render_in(self._zone_for_list(request), lambda: super(LocalTimeAdminMixin, self).changelist_view(
            request, extra_context))

    def _zone_for_list(self, request) -> ZoneInfo:
        """The zone a list counts its days in (date drill-down, date filters): the program's when the list is
        filtered to one program (``?program__id__exact=7``, ``?event__program__id__exact=7``), else the display
        zone. Each row's times are shown in their own program's zone either way."""
        path = self._zone_path()
        relation = path.rpartition("__")[0]
        if not relation:
            return display_zone()
        for key in (f"{relation}__id__exact", f"{relation}__exact", f"{relation}__pk__exact"):
            pk = request.GET.get(key)
            if not pk:
                continue
            try:
                model = self.model
                for part in relation.split("__"):  # to the model holding ``time_zone`` (the program)
                    model = model._meta.get_field(part).related_model
                value = model._default_manager.filter(pk=pk).values_list("time_zone", flat=True).first()
                return zone(value) if value else display_zone()
            except (ValueError, TypeError, ValidationError, LookupError):
                return display_zone()
        return display_zone()

    def history_view(self, request, object_id, extra_context=None):
        obj = self._object_for_zone(request, object_id)
        return _render_in(self.zone_for(obj), lambda: super(LocalTimeAdminMixin, self).history_view(
            request, object_id, extra_context))

    def delete_view(self, request, object_id, extra_context=None):
        obj = self._object_for_zone(request, object_id)
        return _render_in(self.zone_for(obj), lambda: super(LocalTimeAdminMixin, self).delete_view(
            request, object_id, extra_context))

    # forms
    def _object_for_zone(self, request, object_id):
        if object_id is None:
            return None
        try:
            return self.get_object(request, object_id)
        except Exception:  # noqa: BLE001 - a bad id: the view itself answers it
            return None

    def _zone_for_add(self, request) -> ZoneInfo:
        """The zone of a new object: the program picked in the form (posted, or ``?program=`` in the URL) when the
        model links to one; otherwise the display zone. When the model links to a program and none is picked yet,
        ``request.cpm_zone_from_choice`` names the form field whose choice decides the zone (the labels say so)."""
        path = self._zone_path()
        first, _, rest = path.partition("__")
        if not rest:
            return display_zone()
        pk = request.POST.get(first) or request.GET.get(first)
        if not pk:
            request.cpm_zone_from_choice = first
            return display_zone()
        try:
            field = self.model._meta.get_field(first)
            value = (field.related_model._default_manager.filter(pk=pk).values_list(rest, flat=True).first())
            return zone(value) if value else display_zone()
        except (ValueError, TypeError, ValidationError):
            return display_zone()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        obj = self._object_for_zone(request, object_id)
        tz = self.zone_for(obj) if obj is not None else self._zone_for_add(request)
        request.cpm_local_zone = tz
        return _render_in(tz, lambda: super(LocalTimeAdminMixin, self).changeform_view(
            request, object_id, form_url, extra_context))

    def get_form(self, request, obj=None, change=False, **kwargs):
        """Read-only datetimes are shown in the page's zone: a help text that says the value is UTC ("UTC start
        (inclusive).") is reworded to say what the page shows."""
        tz = getattr(request, "cpm_local_zone", None) or display_zone()
        help_texts = {}
        for name in self.get_readonly_fields(request, obj):
            try:
                field = self.model._meta.get_field(name)
            except Exception:  # noqa: BLE001 - a method or property: no model help text
                continue
            text = str(getattr(field, "help_text", "") or "")
            if isinstance(field, models.DateTimeField) and text.startswith("UTC "):
                rest = text[4:]
                help_texts[name] = f"{rest[:1].upper()}{rest[1:]} Shown in {tz.key} local time (stored in UTC)."
        if help_texts:
            kwargs["help_texts"] = {**help_texts, **(kwargs.get("help_texts") or {})}
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        chooser = getattr(request, "cpm_zone_from_choice", None) if request is not None else None
        if isinstance(db_field, models.DateTimeField) and db_field.editable:
            tz = getattr(request, "cpm_local_zone", None) or display_zone()
            label = str(db_field.verbose_name)
            label = label[:1].upper() + label[1:]
            help_text = str(db_field.help_text or "")
            # What the field means, without the storage zone: "UTC time participants are notified (dispatch)." reads
            # "Time participants are notified (dispatch).", followed by the zone it is typed in.
            meaning = f"{help_text[4:5].upper()}{help_text[5:]} " if help_text.startswith("UTC ") else ""
            if chooser:
                # No program picked yet: the typed time is read in the zone of the program picked in this form.
                fk = self.model._meta.get_field(chooser)
                whose = "program" if self._zone_path() == f"{chooser}__time_zone" else f"{fk.verbose_name}'s program"
                fallback = f"; {tz.key} when none is selected" if fk.null else ""
                label = f"{label} (local time in the selected {whose}'s zone{fallback})"
                help_text = (f"{meaning}Type the wall-clock time of the selected {whose}'s time zone (shown next to "
                             f"each {fk.verbose_name} in its list); stored in UTC.")
            else:
                label = local_label(label, tz)
                if "UTC" in help_text or not help_text:
                    help_text = f"{meaning}Local wall-clock time in {tz.key} (stored in UTC)."
            return db_field.formfield(form_class=LocalSplitDateTimeField, widget=LocalSplitDateTimeWidget,
                                      label=label, help_text=help_text, **kwargs)
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if chooser and db_field.name == chooser and self._zone_path() == f"{chooser}__time_zone" and formfield:
            # The zone each program's times are typed in, next to its name.
            formfield.label_from_instance = lambda obj: f"{obj} ({obj.time_zone})"
        return formfield
