"""Admin of settlement: batches with progress, event settlements with their chart and explanation, customer
settlements, settlement lines and bill-credit exports.

Every model is read-only here (written by services only); statuses change only through guarded actions
(``cpm.base.admin.guarded_action``), offered to users who may run their use case and calling the service with
``actor=request.user``. Meter data's admin lives with meter data (``settlement.meterdata.admin``, registered below).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from cpm.base.admin import (
    GuardedModelAdmin,
    LargeTableMixin,
    ReadOnlyInline,
    admin_now,
    apply_each,
    ask_reason,
    guarded_action,
)
from cpm.base.admin_tools import ChangelistToolsMixin, Tool
from cpm.base.errors import DomainError
from events.models import Participation
from settlement.meterdata import admin as meterdata_admin  # noqa: F401  (registers the meter data admin)

from . import selectors, services
from .charts import event_settlement_chart_svg
from .choices import CustomerSettlementStatus, ExportStatus
from .models import AbnormalDay, BillCreditExport, CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine


class SettlementReadOnlyAdmin(GuardedModelAdmin):
    """A settlement record: no add, change or delete (no write use case declared), every field read-only; its
    actions are guarded by their use cases."""

    write_use_cases: dict[str, str] = {}

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
class SettlementBatchAdmin(ChangelistToolsMixin, SettlementReadOnlyAdmin):
    changelist_tools = (Tool("Settle events", "settlement_settle_events", "event.settle"),
                        Tool("Settle a season", "settlement_settle_season", "season.settle"))
    list_display = ("id", "kind", "status", "program", "event", "progress", "items_total", "items_calculated",
                    "items_unchanged", "items_corrected", "items_pending", "items_failed", "job_link", "created_at")
    list_filter = ("kind", "status", "program")
    search_fields = ("event__name", "program__code")
    list_select_related = ("program", "event", "event__program", "season", "job")
    date_hierarchy = "created_at"
    readonly_fields = ("progress", "job_link", "error_list")
    exclude = ("errors",)

    def get_queryset(self, request):
        return selectors.batch_list().select_related("job")

    def get_urls(self):
        from .admin_settle import settle_events_view, settle_season_view

        view = self.admin_site.admin_view
        return [path("settle-events/", view(lambda request: settle_events_view(self, request)),
                     name="settlement_settle_events"),
                path("settle-season/", view(lambda request: settle_season_view(self, request)),
                     name="settlement_settle_season"), *super().get_urls()]

    def get_readonly_fields(self, request, obj=None):
        return ["progress", "job_link", "error_list"] + [f.name for f in self.model._meta.fields
                                                         if f.name not in ("errors", "job")]

    @admin.display(description="Progress")
    def progress(self, obj):
        return format_html('<progress max="100" value="{}"></progress> {} / {} chunks ({}%)',
                           obj.progress_percent, obj.chunks_done, obj.chunks_total, obj.progress_percent)

    @admin.display(description="Job")
    def job_link(self, obj):
        """The job running the chunks: its status, chunk progress and, when it failed, why (its page lists the
        chunks with their attempts and errors)."""
        job = obj.job
        if job is None:
            return "-"
        chunks = f"{job.progress} chunks" if job.chunks_total else "no chunks"
        text = format_html('<a href="{}">job #{}</a>: {}, {}', reverse("admin:cpm_job_change", args=[job.pk]),
                           job.pk, job.get_status_display(), chunks)
        return format_html("{} ({})", text, job.error[:200]) if job.error else text

    @admin.display(description="Errors")
    def error_list(self, obj):
        """What could not be settled: service point, participation (or account) and the error in words."""
        if not obj.errors:
            return "-"
        items = []
        for e in obj.errors:
            if isinstance(e, dict):
                who = ", ".join(f"{k.replace('_id', '')} {e[k]}" for k in ("service_point_id", "participation_id",
                                                                            "account_id") if k in e)
                items.append(format_html("<li>{}{}</li>", f"{who}: " if who else "", e.get("error", "")))
            else:
                items.append(format_html("<li>{}</li>", e))
        return format_html("<ul>{}</ul>", mark_safe("".join(items)))  # noqa: S308 - items escaped above


class LineInline(ReadOnlyInline, admin.TabularInline):
    model = SettlementLine
    fk_name = "event_settlement"
    fields = ("id", "kind", "line_code", "amount", "quantity", "unit", "rate", "reverses", "event_revision",
              "customer_settlement", "created_at", "description")
    readonly_fields = fields


@admin.register(EventSettlement)
class EventSettlementAdmin(LargeTableMixin, SettlementReadOnlyAdmin):
    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("id", "event", "event_day", "account", "service_point", "status", "measurement_status",
                    "kwh_avoided", "kw_drop_avg", "participation_fraction", "amount", "posted_amount", "revision")
    list_filter = ("status", "measurement_status", "program", "event_day")
    search_fields = ("account__account_number", "service_point__service_point_id", "event__name")
    list_select_related = ("event", "event__program", "account", "service_point", "program")
    readonly_fields = ("chart", "explanation_text")
    exclude = ("inputs", "components", "explanation")
    inlines = [LineInline]
    actions = ["approve", "reverse", "recalculate_event"]

    def get_queryset(self, request):
        return selectors.event_settlement_list()

    def get_object(self, request, object_id, from_field=None):
        """One settlement with its participation's event and program (the participation is named in the program's
        zone, not in UTC)."""
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and obj.participation_id:
            obj.participation = (Participation.objects.select_related("event__program", "device", "service_point")
                                 .get(pk=obj.participation_id))
        return obj

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

    @guarded_action("event_settlements.approve", description="Approve selected settlements (post their credits)")
    def approve(self, request, queryset):
        _run(self, request, lambda: services.event_settlements_approve(settlements=list(queryset),
                                                                       now=admin_now(), actor=request.user),
             "{count} settlement(s) approved.")

    @guarded_action("event_settlement.reverse",
                    description="Reverse selected approved settlements (asks for the reason; negative lines)")
    def reverse(self, request, queryset):
        return ask_reason(
            self, request, queryset, action="reverse", title="Reverse event settlements",
            question="Reverse these approved settlements? Each live line gets a negative line with the reason.",
            apply=lambda es, reason: services.event_settlement_reverse(settlement=es, reason=reason,
                                                                       now=admin_now(), actor=request.user),
            done="{count} settlement(s) reversed.")

    @guarded_action("event.settle", description="Recalculate the events of the selected settlements (corrections)")
    def recalculate_event(self, request, queryset):
        events = {es.event for es in queryset.select_related("event__program")}
        _run(self, request, lambda: len([services.event_settle(event=e, now=admin_now(), actor=request.user,
                                                               recalculate=True) for e in events]),
             "{count} recalculation batch(es) started.")


class CustomerLineInline(LineInline):
    fk_name = "customer_settlement"
    fields = ("id", "kind", "line_code", "amount", "quantity", "unit", "rate", "reverses", "event_settlement",
              "incentive_key", "created_at", "description")
    readonly_fields = fields


@admin.register(CustomerSettlement)
class CustomerSettlementAdmin(LargeTableMixin, SettlementReadOnlyAdmin):
    ordering = ("-pk",)  # an index scan; the model's ordering sorts through the account join
    list_display = ("id", "account", "program", "period_kind", "period", "status", "total_amount", "export_batch")
    list_filter = ("status", "period_kind", "program")
    search_fields = ("account__account_number",)
    list_select_related = ("account", "program", "export_batch")
    inlines = [CustomerLineInline]
    actions = ["approve", "export"]

    def get_queryset(self, request):
        return selectors.customer_settlement_list()

    @admin.display(description="Period (local days, both included)", ordering="period_start")
    def period(self, obj):
        return obj.period_display

    @guarded_action("customer_settlements.approve", description="Approve selected customer settlements")
    def approve(self, request, queryset):
        """Each selected CALCULATED settlement on its own (as ``customer_settlements_approve`` does, one at a time):
        a refused one is named with its reason and the others are approved and counted."""
        calculated = [cs for cs in queryset if cs.status == CustomerSettlementStatus.CALCULATED]
        done = apply_each(self, request, calculated, lambda cs: services.customer_settlement_approve(
            settlement=cs, now=admin_now(), actor=request.user))
        if done:
            self.message_user(request, f"{done} customer settlement(s) approved.", messages.SUCCESS)

    @guarded_action("bill_credits.export", description="Export the selected approved settlements as bill credits")
    def export(self, request, queryset):
        def go():
            export = services.bill_credit_export_create(now=admin_now(), actor=request.user,
                                                        settlements=list(queryset))
            return export.file_name if export else "nothing (no approved settlement not yet exported)"

        _run(self, request, go, "Exported {count}.")


@admin.register(SettlementLine)
class SettlementLineAdmin(LargeTableMixin, SettlementReadOnlyAdmin):
    list_display = ("id", "account", "program", "kind", "line_code", "amount", "event_settlement",
                    "customer_settlement", "reverses", "created_at")
    list_filter = ("kind", "program")
    search_fields = ("account__account_number", "incentive_key")
    list_select_related = ("account", "program", "event_settlement", "customer_settlement", "reverses")


@admin.register(BillCreditExport)
class BillCreditExportAdmin(SettlementReadOnlyAdmin):
    list_display = ("id", "file_name", "status", "program", "settlement_count", "line_count", "total_amount",
                    "created_at", "acknowledged_at", "download")
    list_filter = ("status", "program")
    search_fields = ("file_name",)
    list_select_related = ("program",)
    readonly_fields = ("download",)
    actions = ["acknowledge", "reject"]

    def get_queryset(self, request):
        return selectors.export_list()

    def get_urls(self):
        return [path("<int:pk>/download/", self.admin_site.admin_view(self.download_view),
                     name="settlement_billcreditexport_download"), *super().get_urls()]

    def download_view(self, request, pk):
        """The export's file, for users who may view exports (the file holds account numbers and amounts)."""
        if not self.has_view_permission(request):
            raise DjangoPermissionDenied
        export = get_object_or_404(BillCreditExport, pk=pk)
        response = HttpResponse(export.content.encode(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{export.file_name}"'
        return response

    @admin.display(description="File")
    def download(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:settlement_billcreditexport_download",
                                                          args=[obj.pk]), "CSV")

    @guarded_action("bill_credits.acknowledge", description="Acknowledge selected exports (billing loaded them)")
    def acknowledge(self, request, queryset):
        """Each selected batch on its own: a refused one (a rejected batch) is named with its reason and the others
        go on; one acknowledged before is named and not counted again."""
        pending = []
        for export in queryset:
            if export.status == ExportStatus.ACKNOWLEDGED:
                self.message_user(request, f"{export}: already acknowledged; nothing changed.", messages.WARNING)
            else:
                pending.append(export)
        done = apply_each(self, request, pending,
                          lambda export: services.bill_credit_export_acknowledge(export=export, now=admin_now(),
                                                                                 actor=request.user))
        if done:
            self.message_user(request, f"{done} export(s) acknowledged.", messages.SUCCESS)

    @guarded_action("bill_credits.reject",
                    description="Reject selected exports (billing could not load them; asks for the reason)")
    def reject(self, request, queryset):
        return ask_reason(
            self, request, queryset, action="reject", title="Reject bill-credit exports",
            question="Billing could not load these batches? Their settlements are approved again and go in the next "
                     "export.",
            apply=lambda export, reason: services.bill_credit_export_reject(export=export, reason=reason,
                                                                            now=admin_now(), actor=request.user),
            done="{count} export(s) rejected.")


@admin.register(AbnormalDay)
class AbnormalDayAdmin(GuardedModelAdmin):
    """Abnormal days: added, deleted and imported (CSV) through ``settlement.services.abnormal``; never changed (delete
    and add again, both audited)."""

    write_use_cases = {"add": "abnormal_day.create", "delete": "abnormal_day.delete"}
    list_display = ("day", "kind", "scope", "target", "reason", "created_at")
    list_filter = ("scope", "kind")
    search_fields = ("network_id", "reason", "service_point__service_point_id", "program__code")
    list_select_related = ("service_point", "program")
    raw_id_fields = ("service_point",)
    date_hierarchy = "day"
    fields = ("day", "scope", "service_point", "program", "network_id", "kind", "reason")
    change_list_template = "admin/settlement/abnormalday/change_list.html"

    @admin.display(description="Target")
    def target(self, obj):
        return obj.target_label

    def save_via_service(self, request, obj, form, change):
        data = {k: form.cleaned_data.get(k) for k in ("day", "scope", "service_point", "program", "network_id",
                                                       "kind", "reason")}
        obj.pk = services.abnormal_day_create(data=data, now=admin_now(), actor=request.user).pk

    def delete_via_service(self, request, obj):
        services.abnormal_day_delete(abnormal_day=obj, now=admin_now(), actor=request.user,
                                     reason="deleted in the admin")

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_days), name="settlement_abnormalday_import"),
                *super().get_urls()]

    def import_days(self, request):
        """Upload abnormal days (columns: ``settlement.services.abnormal``)."""
        from devices.admin import import_view

        from .services import abnormal

        return import_view(self, request, use_case="abnormal_days.import", title="Import abnormal days",
                           columns=abnormal.__doc__,
                           run=lambda f, form: services.abnormal_days_import(f, now=admin_now(), actor=request.user))
