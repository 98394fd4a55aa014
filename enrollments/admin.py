"""Admin of the enrollments app: lists with their joins, change history, statuses only through actions calling
services. Enrollments and subscriptions are created by the enrollment services (API, CSR pages), never by a form."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import path
from django.utils import timezone

from cpm.base.admin import AuditHistoryAdmin
from cpm.base.admin import LargeTableMixin
from devices.admin import ImportForm, import_view, run_service_action

from . import imports, services
from .choices import ReasonCode
from .models import Account, Customer, Enrollment, ProgramSubscription, ServiceAgreement


class CisImportForm(ImportForm):
    kind = forms.ChoiceField(choices=[(k, k.replace("_", " ")) for k in imports.KINDS])


@admin.register(Customer)
class CustomerAdmin(LargeTableMixin, AuditHistoryAdmin):
    list_display = ("cis_person_id", "last_name", "first_name", "email", "life_support")
    list_filter = ("life_support",)
    search_fields = ("cis_person_id", "last_name", "first_name", "email", "phone")

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_cis), name="enrollments_customer_import"),
                *super().get_urls()]

    def import_cis(self, request):
        """Upload a CIS extract (columns: ``enrollments.imports``)."""
        return import_view(self, request, title="Import a CIS extract", columns=imports.__doc__,
                           extra_form=CisImportForm,
                           run=lambda f, form: imports.import_cis(f, kind=form.cleaned_data["kind"],
                                                                  now=timezone.now(), actor=request.user))


@admin.register(Account)
class AccountAdmin(LargeTableMixin, AuditHistoryAdmin):
    list_display = ("account_number", "customer", "status", "opened_on", "closed_on")
    list_filter = ("status",)
    search_fields = ("account_number", "customer__last_name", "customer__cis_person_id")
    list_select_related = ("customer",)
    readonly_fields = ("status", "closed_on")
    raw_id_fields = ("customer",)
    actions = ["close_today"]

    @admin.action(description="Close selected accounts today (ends their enrollments)", permissions=["change"])
    def close_today(self, request, queryset):
        now = timezone.now()
        run_service_action(self, request, queryset, lambda a: services.account_close(
            account=a, closed_on=timezone.localdate(now), now=now, actor=request.user,
            reason_text="admin action"), "Closed")


@admin.register(ServiceAgreement)
class ServiceAgreementAdmin(LargeTableMixin, AuditHistoryAdmin):
    list_display = ("agreement_id", "account", "service_point", "start_date", "end_date")
    search_fields = ("agreement_id", "account__account_number", "service_point__service_point_id")
    list_select_related = ("account", "service_point")
    raw_id_fields = ("account", "service_point")


class SubscriptionInline(admin.TabularInline):
    model = ProgramSubscription
    extra = 0
    fields = ("device", "start_date", "end_date", "end_reason", "exclusive")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Enrollment)
class EnrollmentAdmin(LargeTableMixin, AuditHistoryAdmin):
    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("id", "program", "account", "service_point", "status", "source", "effective_date", "end_date",
                    "reason_code")
    # A date filter of fixed choices, not a date hierarchy (which scans every enrollment on every page).
    list_filter = ("status", "source", "program", "reason_code", ("requested_at", admin.DateFieldListFilter))
    search_fields = ("account__account_number", "service_point__service_point_id", "external_transaction_id",
                     "account__customer__last_name")
    list_select_related = ("program", "account", "service_point")
    readonly_fields = ("account", "service_point", "program", "status", "source", "external_transaction_id",
                       "requested_at", "effective_date", "end_date", "reason_code", "reason_text", "answers",
                       "created_at", "updated_at")
    inlines = [SubscriptionInline]
    actions = ["approve", "reject", "suspend", "resume", "unenroll_today"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _run(self, request, queryset, call, label):
        now = timezone.now()
        run_service_action(self, request, queryset, lambda e: call(e, now), label)

    @admin.action(description="Approve selected enrollments", permissions=["change"])
    def approve(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_approve(
            enrollment=e, now=now, actor=request.user), "Approved")

    @admin.action(description="Reject selected requests", permissions=["change"])
    def reject(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_reject(
            enrollment=e, now=now, actor=request.user, reason_code=ReasonCode.OTHER,
            reason_text="rejected in admin"), "Rejected")

    @admin.action(description="Suspend selected enrollments", permissions=["change"])
    def suspend(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_suspend(
            enrollment=e, now=now, actor=request.user, reason="admin action"), "Suspended")

    @admin.action(description="Resume selected enrollments", permissions=["change"])
    def resume(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_resume(
            enrollment=e, now=now, actor=request.user, reason="admin action"), "Resumed")

    @admin.action(description="Unenroll selected from today (customer request)", permissions=["change"])
    def unenroll_today(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_unenroll(
            enrollment=e, effective_date=services.program_today(e.program, now), now=now, actor=request.user,
            reason_code=ReasonCode.CUSTOMER_REQUEST, reason_text="admin action"), "Unenrolled")


@admin.register(ProgramSubscription)
class ProgramSubscriptionAdmin(LargeTableMixin, AuditHistoryAdmin):
    """Subscriptions (written by the enrollment services; read-only here)."""

    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("id", "enrollment", "program_code", "device", "start_date", "end_date", "end_reason",
                    "exclusive")
    list_filter = ("exclusive", "end_reason", "enrollment__program")
    search_fields = ("device__serial_number", "device__aggregator_device_id",
                     "enrollment__account__account_number")
    list_select_related = ("enrollment", "enrollment__program", "device")
    readonly_fields = ("enrollment", "device", "start_date", "end_date", "end_reason", "exclusive")

    @admin.display(description="program", ordering="enrollment__program__code")
    def program_code(self, obj):
        return obj.enrollment.program.code

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
