"""Admin of meter data: load jobs with their counts and row errors, stored interval days and aggregator-reported kW
drops (read-only: written by the loaders). Registered when ``settlement.admin`` imports this module."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.urls import path
from django.utils.html import format_html_join

from cpm.base.admin import LargeTableMixin, ReadOnlyAdmin, admin_now, guarded_action, run_each
from cpm.base.admin_tools import ChangelistToolsMixin, Tool
from cpm.base.admintime import display_zone

from .intervals import decode
from .models import IntervalDay, MeterDataLoad, ReportedKwDrop


@admin.register(MeterDataLoad)
class MeterDataLoadAdmin(ChangelistToolsMixin, ReadOnlyAdmin):
    """Interval-data load jobs with their counts and per-row errors (written by the load services); the upload page
    (``admin_upload``) submits a file as a new load."""

    changelist_tools = (Tool("Upload meter data", "settlement_meterdataload_upload", "meter_data.load"),)
    readonly_fields = ("row_errors",)

    list_display = ("id", "source", "file_name", "status", "created_at", "readings_new", "readings_unchanged",
                    "readings_corrected", "readings_rejected")
    list_filter = ("source", "status")
    search_fields = ("file_name",)
    date_hierarchy = "created_at"
    actions = ["retry"]

    def get_urls(self):
        from .admin_upload import upload_view

        return [path("upload/", self.admin_site.admin_view(lambda request: upload_view(self, request)),
                     name="settlement_meterdataload_upload"), *super().get_urls()]

    @admin.display(description="row errors")
    def row_errors(self, obj):
        if not obj.errors:
            return "none"
        return format_html_join("\n", "<div class=\"row-error\">{}{}: {}</div>", (
            (f"row {e.get('row')}, " if e.get("row") is not None else "", e.get("field", ""), e.get("message", ""))
            for e in obj.errors[:1000]))

    @guarded_action("meter_data.retry", description="Retry selected failed loads (from their stored files)")
    def retry(self, request, queryset):
        from .loaders import meter_data_load_retry

        run_each(self, request, queryset, "Loads queued again",
                 lambda load: meter_data_load_retry(load_id=load.pk, now=admin_now(), actor=request.user))


class IntervalMinutesFilter(admin.SimpleListFilter):
    """The interval lengths the table allows (its check constraint), not a DISTINCT over every row."""

    title = "interval minutes"
    parameter_name = "interval_minutes"

    def lookups(self, request, model_admin):
        return [(str(m), f"{m} minutes") for m in (5, 15, 30, 60)]

    def queryset(self, request, queryset):
        return queryset.filter(interval_minutes=int(self.value())) if self.value() in ("5", "15", "30", "60") \
            else queryset


@admin.register(IntervalDay)
class IntervalDayAdmin(LargeTableMixin, ReadOnlyAdmin):
    """One UTC day of interval kWh per service point and channel; corrections are new versions."""

    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("service_point", "device", "channel", "utc_day", "interval_minutes", "version", "is_current",
                    "received_at", "total_kwh")
    # No date hierarchy and no filter listing the table's distinct values: at a year of a utility's meters
    # (tens of millions of rows) those scan the table on every page. The filters below are fixed lists.
    list_filter = ("channel", "is_current", IntervalMinutesFilter, ("day", admin.DateFieldListFilter))
    search_fields = ("service_point__service_point_id",)
    list_select_related = ("service_point", "device")
    exclude = ("values",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "values"] + ["total_kwh", "values_kwh"]

    @admin.display(description="total kWh")
    def total_kwh(self, obj):
        import numpy as np

        return round(float(np.nansum(decode(obj.values))), 3)

    @admin.display(description="day (UTC)", ordering="day")
    def utc_day(self, obj):
        return obj.day

    @admin.display(description="values (kWh per interval, by local hour)")
    def values_kwh(self, obj):
        """One line per hour: the local start of the hour in the display zone, with the abbreviation, and its
        intervals' kWh ("2026-11-01 01:00 PDT: 0.800"); a UTC day is 17:00 to 16:00 in Los Angeles, and the
        fall-back day's two 01:00 hours read apart. A missing value reads "(missing)"."""
        tz, per_hour = display_zone(), max(1, 60 // obj.interval_minutes)
        start = dt.datetime.combine(obj.day, dt.time(0), tzinfo=dt.UTC)
        values = ["(missing)" if v != v else f"{v:.3f}" for v in decode(obj.values)]
        lines = []
        for k in range(0, len(values), per_hour):
            at = (start + dt.timedelta(minutes=obj.interval_minutes * k)).astimezone(tz)
            lines.append((f"{at:%Y-%m-%d %H:%M %Z}", ", ".join(values[k:k + per_hour])))
        return format_html_join("", "<div>{}: {}</div>", lines)


@admin.register(ReportedKwDrop)
class ReportedKwDropAdmin(ReadOnlyAdmin):
    """kW drop reported by an aggregator or DERMS per event and service point (kW-drop files); corrections are new
    versions. Blank values are missing data, shown blank."""

    ordering = ("-pk",)
    list_display = ("event", "service_point", "actual_start", "interval_seconds", "max_kw_drop", "intervals_reported",
                    "intervals_missing", "version", "is_current", "load")
    list_filter = ("is_current",)
    search_fields = ("service_point__service_point_id", "event__name")
    list_select_related = ("event", "service_point", "load")
    exclude = ("kw_drop",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "kw_drop"] + ["values_kw", "values_by_interval"]

    @admin.display(description="kW drop per interval (blank = not reported)")
    def values_kw(self, obj):
        return ", ".join("" if v is None else f"{v:g}" for v in obj.kw_drop)

    @admin.display(description="Reported kW drop by interval (the program's local time)")
    def values_by_interval(self, obj):
        """One line per interval: its local start in the event's program zone with the abbreviation and the kW
        drop reported for it ("2026-07-15 15:00 PDT: 2 kW"; "(not reported)" for a blank), so an interval can be
        found by the time people know it, the fall-back night's two 01:00 intervals apart."""
        tz = ZoneInfo(obj.event.program.time_zone)
        step = dt.timedelta(seconds=obj.interval_seconds)
        lines = [(f"{(obj.actual_start + step * k).astimezone(tz):%Y-%m-%d %H:%M %Z}",
                  "(not reported)" if v is None else f"{v:g} kW") for k, v in enumerate(obj.kw_drop)]
        return format_html_join("", "<div>{}: {}</div>", lines)
