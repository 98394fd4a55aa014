"""Admin of the devices app: searchable lists with their joins, change history, status only through actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from cpm.base.admin import AuditHistoryAdmin
from cpm.base.admin import LargeTableMixin
from cpm.base.errors import DomainError
from cpm.base.uploads import validate_upload

from . import imports, services
from .choices import DeviceStatus
from .models import Aggregator, Device, DeviceInstallation, Premise, ServicePoint


def run_service_action(modeladmin, request, queryset, call, label: str) -> None:
    """Call ``call(obj)`` per selected row; report successes and each refusal (never a 500)."""
    done, failed = 0, []
    for obj in queryset:
        try:
            call(obj)
            done += 1
        except DomainError as exc:
            failed.append(f"{obj}: {exc.message}")
    if done:
        modeladmin.message_user(request, f"{label}: {done} done.", messages.SUCCESS)
    for line in failed:
        modeladmin.message_user(request, line, messages.ERROR)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8, header row first.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        validate_upload(upload, kinds=("csv",))
        return upload


def import_view(modeladmin, request, *, title: str, columns: str, extra_form=None, run):
    """An admin upload page: validates, runs ``run(file, form)`` (an all-or-nothing import), shows counts/errors."""
    if not modeladmin.has_add_permission(request):
        raise PermissionDenied
    form_class = extra_form or ImportForm
    form = form_class(request.POST or None, request.FILES or None)
    context = {**modeladmin.admin_site.each_context(request), "title": title, "form": form, "columns": columns,
               "help_text": "All or nothing: any row error imports nothing. Re-importing a file changes nothing.",
               "opts": modeladmin.model._meta}
    if request.method == "POST" and form.is_valid():
        try:
            context["report"] = run(form.cleaned_data["file"], form)
        except imports.ImportFailed as exc:
            context["errors"] = exc.report.errors
    return TemplateResponse(request, "admin/cpm_import.html", context)


@admin.register(Premise)
class PremiseAdmin(LargeTableMixin, AuditHistoryAdmin):
    list_display = ("premise_id", "address_line1", "city", "service_territory", "substation", "feeder")
    list_filter = ("service_territory", "substation")
    search_fields = ("premise_id", "address_line1", "city", "postal_code")


@admin.register(ServicePoint)
class ServicePointAdmin(LargeTableMixin, AuditHistoryAdmin):
    list_display = ("service_point_id", "meter_number", "premise", "customer_class", "rate_code", "is_active")
    list_filter = ("customer_class", "is_active", "premise__service_territory")
    search_fields = ("service_point_id", "meter_number", "premise__premise_id", "premise__address_line1")
    list_select_related = ("premise",)
    raw_id_fields = ("premise",)


@admin.register(Aggregator)
class AggregatorAdmin(AuditHistoryAdmin):
    list_display = ("code", "name", "contact_email", "api_user")
    search_fields = ("code", "name")
    list_select_related = ("api_user",)
    raw_id_fields = ("api_user",)


class InstallationInline(admin.TabularInline):
    model = DeviceInstallation
    extra = 0
    fields = ("service_point", "installed_on", "removed_on")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class DeviceImportForm(ImportForm):
    aggregator = forms.ModelChoiceField(queryset=Aggregator.objects.all())


@admin.register(Device)
class DeviceAdmin(LargeTableMixin, AuditHistoryAdmin):
    list_display = ("id", "device_type", "manufacturer", "model", "serial_number", "aggregator",
                    "aggregator_device_id", "capacity_kw", "status", "last_seen_at")
    list_filter = ("device_type", "status", "aggregator")
    search_fields = ("serial_number", "aggregator_device_id", "manufacturer", "model")
    list_select_related = ("aggregator",)
    readonly_fields = ("status", "last_seen_at", "created_at", "updated_at")
    inlines = [InstallationInline]
    actions = ["activate", "deactivate", "retire"]

    def _set(self, request, queryset, to):
        now = timezone.now()
        run_service_action(self, request, queryset, lambda d: services.device_set_status(
            device=d, status=to, now=now, actor=request.user, reason="admin action"), f"Set {to}")

    @admin.action(description="Activate selected devices", permissions=["change"])
    def activate(self, request, queryset):
        self._set(request, queryset, DeviceStatus.ACTIVE)

    @admin.action(description="Deactivate selected devices", permissions=["change"])
    def deactivate(self, request, queryset):
        self._set(request, queryset, DeviceStatus.INACTIVE)

    @admin.action(description="Retire selected devices", permissions=["change"])
    def retire(self, request, queryset):
        self._set(request, queryset, DeviceStatus.RETIRED)

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_devices), name="devices_device_import"),
                *super().get_urls()]

    def import_devices(self, request):
        """Upload an aggregator device list (columns: ``devices.imports``)."""
        return import_view(self, request, title="Import an aggregator device list", columns=imports.__doc__,
                           extra_form=DeviceImportForm,
                           run=lambda f, form: imports.import_devices(f, aggregator=form.cleaned_data["aggregator"],
                                                                      now=timezone.now(), actor=request.user))


@admin.register(DeviceInstallation)
class DeviceInstallationAdmin(LargeTableMixin, AuditHistoryAdmin):
    """Installation history (written by device_install / device_remove; read-only here)."""

    list_display = ("device", "service_point", "installed_on", "removed_on")
    list_filter = ("installed_on",)
    search_fields = ("device__serial_number", "device__aggregator_device_id", "service_point__service_point_id")
    list_select_related = ("device", "service_point")
    readonly_fields = ("device", "service_point", "installed_on", "removed_on")

    def has_add_permission(self, request):
        return False
