"""Admin of settlement: batches with progress, event settlements with their chart and explanation, customer
settlements, settlement lines and bill-credit exports. Statuses change only through actions calling services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from cpm.base.admin import LargeTableMixin
from cpm.base.errors import DomainError

from . import selectors, services
from .charts import event_settlement_chart_svg
from .models import (
    BillCreditExport,
    CustomerSettlement,
    EventSettlement,
    IntervalDay,
    MeterDataLoad,
    SettlementBatch,
    SettlementLine,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Settlement records are written by services only: no add, no delete, every field read-only."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields] + list(self.readonly_fields)


def _run(modeladmin, request, fn, ok: str) -> None:
    try:
        count = fn()
    except DomainError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return
    modeladmin.message_user(request, ok.format(count=count), messages.SUCCESS)


@admin.register(SettlementBatch)
class SettlementBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "status", "program", "event", "progress", "items_total", "items_calculated",
                    "items_unchanged", "items_corrected", "items_pending", "items_failed", "created_at")
    list_filter = ("kind", "status", "program")
    search_fields = ("event__name", "program__code")
    list_select_related = ("program", "event", "season")
    date_hierarchy = "created_at"
    readonly_fields = ("progress",)

    def get_queryset(self, request):
        return selectors.batch_list()

    @admin.display(description="Progress")
    def progress(self, obj):
        return format_html('<progress max="100" value="{}"></progress> {} / {} chunks ({}%)',
                           obj.progress_percent, obj.chunks_done, obj.chunks_total, obj.progress_percent)


class LineInline(admin.TabularInline):
    model = SettlementLine
    fk_name = "event_settlement"
    extra = 0
    can_delete = False
    fields = ("id", "kind", "line_code", "amount", "quantity", "unit", "rate", "reverses", "event_revision",
              "customer_settlement", "created_at", "description")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EventSettlement)
class EventSettlementAdmin(LargeTableMixin, ReadOnlyAdmin):
    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("id", "event", "event_day", "account", "service_point", "status", "measurement_status",
                    "kwh_avoided", "kw_drop_avg", "participation_fraction", "amount", "posted_amount", "revision")
    list_filter = ("status", "measurement_status", "program", "event_day")
    search_fields = ("account__account_number", "service_point__service_point_id", "event__name")
    list_select_related = ("event", "account", "service_point", "program")
    readonly_fields = ("chart", "explanation_text")
    exclude = ("inputs", "components", "explanation")
    inlines = [LineInline]
    actions = ["approve", "reverse", "recalculate_event"]

    def get_queryset(self, request):
        return selectors.event_settlement_list()

    def get_readonly_fields(self, request, obj=None):
        return ["chart", "explanation_text"] + [f.name for f in self.model._meta.fields
                                                  if f.name not in ("inputs", "components", "explanation")]

    @admin.display(description="Baseline, adjusted baseline and actual")
    def chart(self, obj):
        svg = event_settlement_chart_svg(obj) if obj and obj.pk else ""
        return mark_safe(f'<div class="settlement-chart">{svg}</div>') if svg else "-"  # noqa: S308 - our SVG

    @admin.display(description="Explanation")
    def explanation_text(self, obj):
        return obj.explanation

    @admin.action(description="Approve selected settlements (post their credits)")
    def approve(self, request, queryset):
        _run(self, request, lambda: services.event_settlements_approve(settlements=list(queryset),
                                                                       now=timezone.now(), actor=request.user),
             "{count} settlement(s) approved.")

    @admin.action(description="Reverse selected approved settlements (asks for the reason; negative lines)")
    def reverse(self, request, queryset):
        from cpm.base.admin import ask_reason

        return ask_reason(
            self, request, queryset, action="reverse", title="Reverse event settlements",
            question="Reverse these approved settlements? Each live line gets a negative line with the reason.",
            apply=lambda es, reason: services.event_settlement_reverse(settlement=es, reason=reason,
                                                                       now=timezone.now(), actor=request.user),
            done="{count} settlement(s) reversed.")

    @admin.action(description="Recalculate the events of the selected settlements (corrections)")
    def recalculate_event(self, request, queryset):
        events = {es.event for es in queryset.select_related("event__program")}
        _run(self, request, lambda: len([services.event_settle(event=e, now=timezone.now(), actor=request.user,
                                                               recalculate=True) for e in events]),
             "{count} recalculation batch(es) started.")


class CustomerLineInline(LineInline):
    fk_name = "customer_settlement"
    fields = ("id", "kind", "line_code", "amount", "quantity", "unit", "rate", "reverses", "event_settlement",
              "incentive_key", "created_at", "description")
    readonly_fields = fields


@admin.register(CustomerSettlement)
class CustomerSettlementAdmin(LargeTableMixin, ReadOnlyAdmin):
    ordering = ("-pk",)  # an index scan; the model's ordering sorts through the account join
    list_display = ("id", "account", "program", "period_kind", "period_start", "period_end", "status",
                    "total_amount", "export_batch")
    list_filter = ("status", "period_kind", "program")
    search_fields = ("account__account_number",)
    list_select_related = ("account", "program", "export_batch")
    inlines = [CustomerLineInline]
    actions = ["approve", "export"]

    def get_queryset(self, request):
        return selectors.customer_settlement_list()

    @admin.action(description="Approve selected customer settlements")
    def approve(self, request, queryset):
        _run(self, request, lambda: services.customer_settlements_approve(settlements=list(queryset),
                                                                          now=timezone.now(), actor=request.user),
             "{count} customer settlement(s) approved.")

    @admin.action(description="Export the selected approved settlements as bill credits")
    def export(self, request, queryset):
        def go():
            export = services.bill_credit_export_create(now=timezone.now(), actor=request.user,
                                                        settlements=list(queryset))
            return export.file_name if export else "nothing (no approved settlement not yet exported)"

        _run(self, request, go, "Exported {count}.")


@admin.register(SettlementLine)
class SettlementLineAdmin(LargeTableMixin, ReadOnlyAdmin):
    list_display = ("id", "account", "program", "kind", "line_code", "amount", "event_settlement",
                    "customer_settlement", "reverses", "created_at")
    list_filter = ("kind", "program")
    search_fields = ("account__account_number", "incentive_key")
    list_select_related = ("account", "program", "event_settlement", "customer_settlement", "reverses")


@admin.register(BillCreditExport)
class BillCreditExportAdmin(ReadOnlyAdmin):
    list_display = ("id", "file_name", "status", "program", "settlement_count", "line_count", "total_amount",
                    "created_at", "acknowledged_at", "download")
    list_filter = ("status", "program")
    search_fields = ("file_name",)
    list_select_related = ("program",)
    readonly_fields = ("download",)
    actions = ["acknowledge"]

    def get_queryset(self, request):
        return selectors.export_list()

    def get_urls(self):
        return [path("<int:pk>/download/", self.admin_site.admin_view(self.download_view),
                     name="settlement_billcreditexport_download"), *super().get_urls()]

    def download_view(self, request, pk):
        export = BillCreditExport.objects.get(pk=pk)
        response = HttpResponse(export.content.encode(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{export.file_name}"'
        return response

    @admin.display(description="File")
    def download(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:settlement_billcreditexport_download",
                                                          args=[obj.pk]), "CSV")

    @admin.action(description="Acknowledge selected exports (billing loaded them)")
    def acknowledge(self, request, queryset):
        def go():
            for export in queryset:
                services.bill_credit_export_acknowledge(export=export, now=timezone.now(), actor=request.user)
            return queryset.count()

        _run(self, request, go, "{count} export(s) acknowledged.")


@admin.register(MeterDataLoad)
class MeterDataLoadAdmin(ReadOnlyAdmin):
    """Interval-data load jobs with their counts and per-row errors (written by the load services)."""

    list_display = ("id", "source", "file_name", "status", "created_at", "readings_new", "readings_unchanged",
                    "readings_corrected", "readings_rejected")
    list_filter = ("source", "status")
    search_fields = ("file_name",)
    date_hierarchy = "created_at"


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
    list_display = ("service_point", "device", "channel", "day", "interval_minutes", "version", "is_current",
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

        from .intervals import decode

        return round(float(np.nansum(decode(obj.values))), 3)

    @admin.display(description="values (kWh, blank = missing)")
    def values_kwh(self, obj):
        from .intervals import decode

        return ", ".join("" if v != v else f"{v:.3f}" for v in decode(obj.values))
