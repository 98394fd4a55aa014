"""Admin of the devices app: an adapter over ``devices.services``.

Searchable lists with their joins; each object's History page is its audit trail. Premises and service points are
added and changed through their upserts (Cap.MAINTAIN_CUSTOMERS), aggregators through ``aggregator_upsert``
(Cap.MANAGE_PROGRAMS), devices through ``device_register`` / ``device_update`` (Cap.MANAGE_DEVICES); the status
only through the guarded actions; installations are listed read-only and written by the device page's "Install at
service point" / "Removed on" fields (``device_install`` / ``device_remove``, Cap.MANAGE_DEVICES). The device-list
import page is offered only to users who may run ``devices.import``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from cpm.base.admin import (
    GuardedModelAdmin,
    LargeTableMixin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    admin_now,
    guarded_action,
    run_each,
)
from cpm.base.admin_tools import ChangelistToolsMixin, Tool
from cpm.base.admintime import display_zone
from cpm.base.capabilities import may
from cpm.base.errors import DomainValidationError
from cpm.base.uploads import validate_upload
from programs.admin import register_known_codes

from . import imports, services
from .choices import DeviceStatus
from .models import Aggregator, Device, DeviceInstallation, Premise, ServicePoint


def upserted(call):
    """Run an upsert service; a model validation error it raises (``full_clean``) becomes a ``DomainError`` the
    guarded change page reports."""
    try:
        return call()
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        raise DomainValidationError(detail) from exc


class KeyReadOnlyOnChange:
    """The CIS key of an upserted row is chosen when it is added and never changes (it is the upsert's lookup)."""

    key_field = ""

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, self.key_field) if obj is not None else readonly


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8, header row first.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        # Size and extension here; the importer checks the text itself, naming the line and column of a bad byte.
        validate_upload(upload, kinds=("csv",), text=False)
        return upload


def import_view(modeladmin, request, *, use_case: str, title: str, columns: str, extra_form=None, run):
    """An admin upload page, only for users who may run ``use_case``: validates, runs ``run(file, form)`` (an
    all-or-nothing import service called with ``actor=request.user``), shows counts/errors."""
    if not may(request.user, use_case):
        raise PermissionDenied
    form_class = extra_form or ImportForm
    form = form_class(request.POST or None, request.FILES or None)
    context = {**modeladmin.admin_site.each_context(request), "title": title, "form": form, "columns": columns,
               "help_text": "All or nothing: any row error imports nothing. Re-importing a file changes nothing.",
               "opts": modeladmin.model._meta}
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        context["file_name"] = upload.name
        try:
            context["report"] = run(upload, form)
        except imports.ImportFailed as exc:
            context["errors"] = exc.report.error_lines()
    return TemplateResponse(request, "admin/cpm_import.html", context)


# The CIS import (enrollments' admin) loads customers, accounts, premises and service points.
CIS_IMPORT = Tool("Import a CIS extract", "enrollments_customer_import", "customers.import")


@admin.register(Premise)
class PremiseAdmin(ChangelistToolsMixin, KeyReadOnlyOnChange, LargeTableMixin, GuardedModelAdmin):
    write_use_cases = {"add": "premise.upsert", "change": "premise.upsert"}
    changelist_tools = (CIS_IMPORT,)
    key_field = "premise_id"
    list_display = ("premise_id", "address_line1", "city", "service_territory", "substation", "feeder")
    list_filter = ("service_territory", "substation")
    search_fields = ("premise_id", "address_line1", "city", "postal_code")

    def save_via_service(self, request, obj, form, change):
        values = {k: getattr(obj, k) for k in services.PREMISE_FIELDS}
        saved, _ = upserted(lambda: services.premise_upsert(premise_id=obj.premise_id, values=values,
                                                           now=admin_now(), actor=request.user))
        obj.pk = saved.pk


@admin.register(ServicePoint)
class ServicePointAdmin(ChangelistToolsMixin, KeyReadOnlyOnChange, LargeTableMixin, GuardedModelAdmin):
    write_use_cases = {"add": "service_point.upsert", "change": "service_point.upsert"}
    changelist_tools = (CIS_IMPORT,)
    key_field = "service_point_id"
    list_display = ("service_point_id", "meter_number", "premise", "customer_class", "rate_code", "is_active")
    list_filter = ("customer_class", "is_active", "premise__service_territory")
    search_fields = ("service_point_id", "meter_number", "premise__premise_id", "premise__address_line1")
    list_select_related = ("premise",)
    raw_id_fields = ("premise",)

    def save_via_service(self, request, obj, form, change):
        values = {k: getattr(obj, k) for k in services.SERVICE_POINT_FIELDS}
        saved, _ = upserted(lambda: services.service_point_upsert(
            service_point_id=obj.service_point_id, premise=obj.premise, values=values, now=admin_now(),
            actor=request.user))
        obj.pk = saved.pk


AGGREGATOR_FIELDS = ("name", "contact_name", "contact_email", "api_user", "webhook_url", "webhook_secret")


class AggregatorForm(forms.ModelForm):
    """The webhook secret is typed, never shown back: a password box, empty on every page; left empty it keeps the
    secret the aggregator has (``AggregatorAdmin.save_via_service``)."""

    webhook_secret = forms.CharField(
        required=False, max_length=128, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="Signs every dispatch message (X-CPM-Signature). Never shown: type a new one to replace it, leave "
                  "empty to keep the current one.")

    class Meta:
        model = Aggregator
        fields = ("code", "name", "contact_name", "contact_email", "api_user", "webhook_url", "webhook_secret")


@admin.register(Aggregator)
class AggregatorAdmin(KeyReadOnlyOnChange, GuardedModelAdmin):
    """Aggregators. The webhook secret is a credential (whoever knows it can send the aggregator's cloud signed
    events): never displayed, only whether one is set; the program administrator types a replacement."""

    write_use_cases = {"add": "aggregator.upsert", "change": "aggregator.upsert"}
    key_field = "code"
    form = AggregatorForm
    list_display = ("code", "name", "contact_email", "api_user")
    search_fields = ("code", "name")
    list_select_related = ("api_user",)
    raw_id_fields = ("api_user",)

    @admin.display(description="webhook secret")
    def webhook_secret_state(self, obj):
        return "set (not shown)" if obj is not None and obj.webhook_secret else "none"

    def get_fields(self, request, obj=None):
        fields = [f for f in super().get_fields(request, obj) if f != "webhook_secret_state"]
        if not self.has_change_permission(request, obj):  # read-only: whether a secret is set, never its value
            return ["webhook_secret_state" if f == "webhook_secret" else f for f in fields]
        at = fields.index("webhook_secret") if "webhook_secret" in fields else len(fields)
        return [*fields[:at], "webhook_secret_state", *fields[at:]] if obj is not None else fields

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "webhook_secret_state")

    def save_via_service(self, request, obj, form, change):
        values = {k: getattr(obj, k) for k in AGGREGATOR_FIELDS}
        if change and not form.cleaned_data.get("webhook_secret"):  # left empty: the stored secret stays
            values["webhook_secret"] = Aggregator.objects.filter(pk=obj.pk).values_list(
                "webhook_secret", flat=True).first() or ""
        saved, _ = upserted(lambda: services.aggregator_upsert(code=obj.code, values=values, now=admin_now(),
                                                              actor=request.user))
        obj.pk = saved.pk


class InstallationInline(ReadOnlyInline, admin.TabularInline):
    model = DeviceInstallation
    fields = ("service_point", "installed_on", "removed_on")
    readonly_fields = fields


class DeviceImportForm(ImportForm):
    aggregator = forms.ModelChoiceField(queryset=Aggregator.objects.all())


class DeviceForm(forms.ModelForm):
    """The device's fields, and where it is installed: a service point typed by its id installs (or moves) the
    device there from "Installed on" (today when left empty); "Removed on" ends its current installation. Checked
    here against the installations so a refusal is shown on its field with what was typed; ``device_install`` /
    ``device_remove`` stay the rule."""

    install_service_point = forms.CharField(
        label="Install at service point", required=False, max_length=64,
        help_text="The service point id (e.g. SP-0001234) where the device is installed; a device installed "
                  "elsewhere is moved. Leave empty to leave its installation as it is.")
    installed_on = forms.DateField(
        label="Installed on", required=False, widget=AdminDateWidget,
        help_text="Local date the device was installed at that service point; today when left empty.")
    removed_on = forms.DateField(
        label="Removed on", required=False, widget=AdminDateWidget,
        help_text="Local date the device was removed from its current service point (ends its installation and "
                  "its program subscriptions that day).")

    class Meta:
        model = Device
        fields = ("device_type", "manufacturer", "model", "serial_number", "aggregator", "aggregator_device_id",
                  "ownership", "capacity_kw", "usable_energy_kwh", "firmware_version")

    def clean(self):
        cleaned = super().clean()
        sp_id = (cleaned.get("install_service_point") or "").strip()
        installed_on, removed_on = cleaned.get("installed_on"), cleaned.get("removed_on")
        current = None
        if self.instance.pk is not None:
            current = (DeviceInstallation.objects.filter(device=self.instance, removed_on__isnull=True)
                       .select_related("service_point").first())
        if sp_id and removed_on:
            self.add_error("removed_on", "Either install the device at a service point or remove it, not both.")
            return cleaned
        if not sp_id and installed_on:
            self.add_error("install_service_point", "Give the service point the device was installed at.")
        if sp_id:
            service_point = ServicePoint.objects.filter(service_point_id=sp_id).first()
            if service_point is None:
                self.add_error("install_service_point", f"No service point has the id {sp_id!r}.")
                return cleaned
            cleaned["install_service_point"] = service_point
            day = installed_on or timezone.localdate(admin_now(), display_zone())
            cleaned["installed_on"] = day
            if current is not None and current.service_point_id != service_point.pk and day < current.installed_on:
                self.add_error("installed_on", f"{day} is before the device's installation at "
                                               f"{current.service_point.service_point_id} (from "
                                               f"{current.installed_on}).")
        if removed_on:
            if current is None:
                self.add_error("removed_on", "The device is not installed anywhere.")
            elif removed_on < current.installed_on:
                self.add_error("removed_on", f"{removed_on} is before the installation date "
                                             f"{current.installed_on} (at {current.service_point.service_point_id}).")
        return cleaned


@admin.register(Device)
class DeviceAdmin(ChangelistToolsMixin, LargeTableMixin, GuardedModelAdmin):
    write_use_cases = {"add": "device.register", "change": "device.update"}
    changelist_tools = (Tool("Import an aggregator device list", "devices_device_import", "devices.import"),)
    list_display = ("id", "device_type", "manufacturer", "model", "serial_number", "aggregator",
                    "aggregator_device_id", "capacity_kw", "status", "last_seen_at")
    list_filter = ("device_type", "status", "aggregator")
    search_fields = ("serial_number", "aggregator_device_id", "manufacturer", "model")
    list_select_related = ("aggregator",)
    readonly_fields = ("status", "last_seen_at", "created_at", "updated_at")
    form = DeviceForm
    inlines = [InstallationInline]
    actions = ["activate", "deactivate", "retire"]

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        # Who knows the device, under which id, is fixed at registration.
        return (*readonly, "aggregator", "aggregator_device_id") if obj is not None else readonly

    def save_via_service(self, request, obj, form, change):
        values = {k: getattr(obj, k) for k in services.DEVICE_FIELDS}
        now = admin_now()
        if change:
            services.device_update(device=obj, data=values, now=now, actor=request.user)
        else:
            saved = services.device_register(aggregator=obj.aggregator,
                                             aggregator_device_id=obj.aggregator_device_id, **values, now=now,
                                             actor=request.user)
            obj.pk = saved.pk
        service_point, removed_on = form.cleaned_data.get("install_service_point"), form.cleaned_data.get("removed_on")
        if service_point:
            services.device_install(device=obj, service_point=service_point,
                                    installed_on=form.cleaned_data["installed_on"], now=now, actor=request.user)
        elif removed_on:
            services.device_remove(device=obj, removed_on=removed_on, now=now, actor=request.user)

    def _set(self, request, queryset, to):
        now = admin_now()
        run_each(self, request, queryset, f"Set {to}", lambda d: services.device_set_status(
            device=d, status=to, now=now, actor=request.user, reason="admin action"))

    @guarded_action("device.set_status", description="Activate selected devices")
    def activate(self, request, queryset):
        self._set(request, queryset, DeviceStatus.ACTIVE)

    @guarded_action("device.set_status", description="Deactivate selected devices")
    def deactivate(self, request, queryset):
        self._set(request, queryset, DeviceStatus.INACTIVE)

    @guarded_action("device.set_status", description="Retire selected devices")
    def retire(self, request, queryset):
        self._set(request, queryset, DeviceStatus.RETIRED)

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_devices), name="devices_device_import"),
                *super().get_urls()]

    def import_devices(self, request):
        """Upload an aggregator device list (columns: ``devices.imports``)."""
        return import_view(self, request, use_case="devices.import", title="Import an aggregator device list",
                           columns=imports.__doc__, extra_form=DeviceImportForm,
                           run=lambda f, form: imports.import_devices(f, aggregator=form.cleaned_data["aggregator"],
                                                                      now=admin_now(), actor=request.user))


@admin.register(DeviceInstallation)
class DeviceInstallationAdmin(LargeTableMixin, ReadOnlyAdmin):
    """Installation history (written by device_install / device_remove; read-only here)."""

    list_display = ("device", "service_point", "installed_on", "removed_on")
    list_filter = ("installed_on",)
    search_fields = ("device__serial_number", "device__aggregator_device_id", "service_point__service_point_id")
    list_select_related = ("device", "service_point")


# The program set-up form lists the codes found on service points and premises as the allowed values of its
# eligibility lists (programs cannot import devices: the devices app tells it, here, where admins are loaded).
KNOWN_CODE_LIMIT = 500


def _known(model, column: str):
    def source():
        return (model.objects.exclude(**{column: ""}).order_by(column).values_list(column, flat=True)
                .distinct()[:KNOWN_CODE_LIMIT])

    return source


for _field, _model, _column in (("eligible_rate_codes", ServicePoint, "rate_code"),
                                ("eligible_territories", Premise, "service_territory"),
                                ("eligible_substations", Premise, "substation"),
                                ("eligible_feeders", Premise, "feeder")):
    register_known_codes(_field, _known(_model, _column))
