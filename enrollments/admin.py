"""Admin of the enrollments app: an adapter over ``enrollments.services``.

Customers, accounts and service agreements are added and changed through their upserts (Cap.MAINTAIN_CUSTOMERS);
a customer's e-mail and phone are masked for users without Cap.VIEW_PERSONAL_DATA on the list, the change page (a
read-only masked display, never the raw value in an input), the search and the History page. Enrollments and
subscriptions are read-only: they are created by the enrollment services (API, CSR page), and their status moves
only through the guarded actions (approve, reject, suspend, resume: Cap.APPROVE_ENROLLMENTS; unenroll:
Cap.MANAGE_ENROLLMENTS). The CIS import page is offered only to users who may run ``customers.import``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
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
from cpm.base.masking import contact_visible, mask_email, mask_phone
from devices.admin import ImportForm, KeyReadOnlyOnChange, import_view, upserted

from . import imports, services
from .choices import ReasonCode
from .models import Account, Customer, Enrollment, ProgramSubscription, ServiceAgreement


class CisImportForm(ImportForm):
    kind = forms.ChoiceField(choices=[(k, k.replace("_", " ")) for k in imports.KINDS])


CIS_IMPORT = Tool("Import a CIS extract", "enrollments_customer_import", "customers.import")
CONTACT_FIELDS = ("email", "phone")
CUSTOMER_VALUES = ("first_name", "last_name", "email", "phone", "life_support")


@admin.register(Customer)
class CustomerAdmin(ChangelistToolsMixin, KeyReadOnlyOnChange, LargeTableMixin, GuardedModelAdmin):
    write_use_cases = {"add": "customer.upsert", "change": "customer.upsert"}
    changelist_tools = (CIS_IMPORT,)
    key_field = "cis_person_id"
    fields = ("cis_person_id", "first_name", "last_name", "email", "phone", "life_support")
    list_display = ("cis_person_id", "last_name", "first_name", "email", "life_support")
    list_filter = ("life_support",)
    search_fields = ("cis_person_id", "last_name", "first_name", "email", "phone")

    # --- personal data by capability ---

    @admin.display(description="email")
    def masked_email(self, obj):
        return mask_email(obj.email)

    @admin.display(description="phone")
    def masked_phone(self, obj):
        return mask_phone(obj.phone)

    @staticmethod
    def _masked(names, request):
        if contact_visible(request.user):
            return tuple(names)
        return tuple(f"masked_{n}" if n in CONTACT_FIELDS else n for n in names)

    def get_list_display(self, request):
        return self._masked(super().get_list_display(request), request)

    def get_fields(self, request, obj=None):
        return self._masked(super().get_fields(request, obj), request)

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        return readonly if contact_visible(request.user) else (*readonly, "masked_email", "masked_phone")

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        # Searching by a contact detail would reveal it: only for users who may see it.
        return fields if contact_visible(request.user) else tuple(f for f in fields if f not in CONTACT_FIELDS)

    # --- writes ---

    def save_via_service(self, request, obj, form, change):
        values = {k: getattr(obj, k) for k in CUSTOMER_VALUES}
        saved, _ = upserted(lambda: services.customer_upsert(cis_person_id=obj.cis_person_id, values=values,
                                                            now=admin_now(), actor=request.user))
        obj.pk = saved.pk

    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_cis), name="enrollments_customer_import"),
                *super().get_urls()]

    def import_cis(self, request):
        """Upload a CIS extract (columns: ``enrollments.imports``)."""
        return import_view(self, request, use_case="customers.import", title="Import a CIS extract",
                           columns=imports.__doc__, extra_form=CisImportForm,
                           run=lambda f, form: imports.import_cis(f, kind=form.cleaned_data["kind"],
                                                                  now=admin_now(), actor=request.user))


@admin.register(Account)
class AccountAdmin(ChangelistToolsMixin, KeyReadOnlyOnChange, LargeTableMixin, GuardedModelAdmin):
    write_use_cases = {"add": "account.upsert", "change": "account.upsert"}
    changelist_tools = (CIS_IMPORT,)
    key_field = "account_number"
    list_display = ("account_number", "customer", "status", "opened_on", "closed_on")
    list_filter = ("status",)
    search_fields = ("account_number", "customer__last_name", "customer__cis_person_id")
    list_select_related = ("customer",)
    readonly_fields = ("status", "closed_on")
    raw_id_fields = ("customer",)
    actions = ["close_today"]

    def save_via_service(self, request, obj, form, change):
        # closed_on is read-only here: an account closes through the action (account_close ends its enrollments).
        current = Account.objects.filter(pk=obj.pk).values_list("closed_on", flat=True).first() if change else None
        saved, _ = upserted(lambda: services.account_upsert(
            account_number=obj.account_number, customer=obj.customer, opened_on=obj.opened_on, closed_on=current,
            now=admin_now(), actor=request.user))
        obj.pk = saved.pk

    @guarded_action("account.close", description="Close selected accounts today (ends their enrollments)")
    def close_today(self, request, queryset):
        now = admin_now()
        run_each(self, request, queryset, "Closed", lambda a: services.account_close(
            account=a, closed_on=timezone.localdate(now), now=now, actor=request.user, reason_text="admin action"))


@admin.register(ServiceAgreement)
class ServiceAgreementAdmin(KeyReadOnlyOnChange, LargeTableMixin, GuardedModelAdmin):
    write_use_cases = {"add": "service_agreement.upsert", "change": "service_agreement.upsert"}
    key_field = "agreement_id"
    list_display = ("agreement_id", "account", "service_point", "start_date", "end_date")
    search_fields = ("agreement_id", "account__account_number", "service_point__service_point_id")
    list_select_related = ("account", "service_point")
    raw_id_fields = ("account", "service_point")

    def save_via_service(self, request, obj, form, change):
        saved, _ = upserted(lambda: services.service_agreement_upsert(
            agreement_id=obj.agreement_id, account=obj.account, service_point=obj.service_point,
            start_date=obj.start_date, end_date=obj.end_date, now=admin_now(), actor=request.user))
        obj.pk = saved.pk


class SubscriptionInline(ReadOnlyInline, admin.TabularInline):
    model = ProgramSubscription
    fields = ("device", "start_date", "end_date", "end_reason", "exclusive")
    readonly_fields = fields


@admin.register(Enrollment)
class EnrollmentAdmin(LargeTableMixin, GuardedModelAdmin):
    """Read-only: no add, change or delete (``write_use_cases`` is empty); the status moves only through the
    guarded actions."""

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

    def _run(self, request, queryset, call, label):
        now = admin_now()
        run_each(self, request, queryset, label, lambda e: call(e, now))

    @guarded_action("enrollment.approve", description="Approve selected enrollments")
    def approve(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_approve(
            enrollment=e, now=now, actor=request.user), "Approved")

    @guarded_action("enrollment.reject", description="Reject selected requests")
    def reject(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_reject(
            enrollment=e, now=now, actor=request.user, reason_code=ReasonCode.OTHER,
            reason_text="rejected in admin"), "Rejected")

    @guarded_action("enrollment.suspend", description="Suspend selected enrollments")
    def suspend(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_suspend(
            enrollment=e, now=now, actor=request.user, reason="admin action"), "Suspended")

    @guarded_action("enrollment.resume", description="Resume selected enrollments")
    def resume(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_resume(
            enrollment=e, now=now, actor=request.user, reason="admin action"), "Resumed")

    @guarded_action("enrollment.unenroll", description="Unenroll selected from today (customer request)")
    def unenroll_today(self, request, queryset):
        self._run(request, queryset, lambda e, now: services.enrollment_unenroll(
            enrollment=e, effective_date=services.program_today(e.program, now), now=now, actor=request.user,
            reason_code=ReasonCode.CUSTOMER_REQUEST, reason_text="admin action"), "Unenrolled")


@admin.register(ProgramSubscription)
class ProgramSubscriptionAdmin(LargeTableMixin, ReadOnlyAdmin):
    """Subscriptions (written by the enrollment services; read-only here)."""

    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("id", "enrollment", "program_code", "device", "start_date", "end_date", "end_reason",
                    "exclusive")
    list_filter = ("exclusive", "end_reason", "enrollment__program")
    search_fields = ("device__serial_number", "device__aggregator_device_id",
                     "enrollment__account__account_number")
    list_select_related = ("enrollment", "enrollment__program", "enrollment__account", "enrollment__service_point",
                           "device")

    @admin.display(description="program", ordering="enrollment__program__code")
    def program_code(self, obj):
        return obj.enrollment.program.code
