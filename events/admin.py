"""Admin for events: lists with reservation counts by decision (annotated: constant queries); statuses change only
through actions that call services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse

from cpm.base.admin import AuditHistoryAdmin
from cpm.base.admin import LargeTableMixin
from cpm.base.errors import DomainError

from . import services
from .choices import DeliveryStatus, ReservationDecision
from .models import DispatchMessage, Event, EventRevision, OptOut, Participation, Reservation, Unavailability


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _apply_each(modeladmin, request, queryset, fn) -> int:
    """Call ``fn(obj)`` for each selected object; a refused one is reported by name and does not stop the others.
    Returns how many succeeded."""
    done = 0
    for obj in queryset:
        try:
            fn(obj)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
    return done


def _run(modeladmin, request, queryset, label, fn):
    done = _apply_each(modeladmin, request, queryset, fn)
    if done:
        modeladmin.message_user(request, f"{label}: {done}.", messages.SUCCESS)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, strip=True, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text="Recorded with the change in the audit trail.")


def ask_reason(modeladmin, request, queryset, *, action: str, title: str, question: str,
               apply: Callable[[Any, str], Any], done: str) -> TemplateResponse | None:
    """An admin action that asks for a reason first, as Django's delete action asks for a confirmation.

    Called from the changelist, it renders an intermediate page listing the selected objects with a required
    ``reason`` field (at most 500 characters). Posted again from that page (``apply``), it calls
    ``apply(obj, reason)`` for each object (a ``DomainError`` is reported per object) and returns None, so the
    admin redirects to the changelist with ``done`` (a format string with ``{count}``) as success message.
    ``action``: the action's name (the page posts it back). Reusable by other apps' admins (settlement)."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        reason = form.cleaned_data["reason"]
        count = _apply_each(modeladmin, request, queryset, lambda obj: apply(obj, reason))
        if count:
            modeladmin.message_user(request, done.format(count=count), messages.SUCCESS)
        return None
    opts = modeladmin.model._meta
    context = {**modeladmin.admin_site.each_context(request), "title": title, "question": question,
               "queryset": queryset, "form": form, "action": action, "opts": opts,
               "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME, "submit_label": title}
    return TemplateResponse(request, "admin/events/reason_confirmation.html", context)


class RevisionInline(admin.TabularInline):
    model = EventRevision
    extra = 0
    can_delete = False
    readonly_fields = ("revision", "changed_at", "changed_by", "reason", "snapshot")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(LargeTableMixin, AuditHistoryAdmin):
    list_display = ("name", "program", "category", "status", "start", "end", "revision", "target_kw", "n_reserved",
                    "n_skipped")
    list_filter = ("status", "category", "direction", "program")
    search_fields = ("name", "program__code")
    date_hierarchy = "start"
    list_select_related = ("program",)
    raw_id_fields = ("target_devices",)
    readonly_fields = ("status", "revision", "overrides_rules", "override_reason", "cancel_reason", "reserved_at",
                       "settlement_handed_off_at", "created_at", "updated_at")
    inlines = [RevisionInline]
    actions = ["schedule", "reserve_again", "dispatch_now", "cancel"]

    def get_queryset(self, request):
        # Correlated subqueries, not a GROUP BY over a join with every reservation: PostgreSQL evaluates them for
        # the page's rows only, and the COUNT(*) and date hierarchy queries leave them out.
        def count(condition: Q):
            ledger = (Reservation.objects.filter(condition, event_id=OuterRef("pk")).order_by().values("event_id")
                      .annotate(n=Count("pk")).values("n"))
            return Coalesce(Subquery(ledger, output_field=IntegerField()), 0)

        return super().get_queryset(request).annotate(
            n_reserved_=count(Q(decision=ReservationDecision.RESERVED)),
            n_skipped_=count(~Q(decision=ReservationDecision.RESERVED)))

    @admin.display(description="Reserved", ordering="n_reserved_")
    def n_reserved(self, obj):
        return obj.n_reserved_

    @admin.display(description="Skipped", ordering="n_skipped_")
    def n_skipped(self, obj):
        return obj.n_skipped_

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != "draft":
            return [f.name for f in Event._meta.fields] + ["target_devices"]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        """New and draft events are written through the services (audited; revisions after scheduling)."""
        if not change:
            data = {k: form.cleaned_data.get(k) for k in services.EDITABLE_FIELDS}
            created = services.event_create(program=form.cleaned_data["program"], now=_now(), actor=request.user,
                                            **{k: v for k, v in data.items() if v is not None})
            obj.pk = created.pk
            obj.refresh_from_db()
            return
        changes = {k: form.cleaned_data[k] for k in form.changed_data if k in services.EDITABLE_FIELDS}
        if changes:
            services.event_update(event=obj, changes=changes, now=_now(), actor=request.user, reason="admin")

    @admin.action(description="Schedule (checks the program's participation rules)")
    def schedule(self, request, queryset):
        _run(self, request, queryset, "Scheduled",
             lambda e: services.event_schedule(event=e, now=_now(), actor=request.user))

    @admin.action(description="Reserve devices again")
    def reserve_again(self, request, queryset):
        _run(self, request, queryset, "Reserved",
             lambda e: services.event_reserve(event=e, now=_now(), actor=request.user))

    @admin.action(description="Dispatch now")
    def dispatch_now(self, request, queryset):
        _run(self, request, queryset, "Dispatched",
             lambda e: services.event_dispatch(event=e, now=_now(), actor=request.user))

    @admin.action(description="Cancel (asks for the reason; releases every reservation)")
    def cancel(self, request, queryset):
        return ask_reason(
            self, request, queryset, action="cancel", title="Cancel events",
            question="Cancel these events? Every participation is released and aggregators already sent an event "
                     "get a cancellation.",
            apply=lambda e, reason: services.event_cancel(event=e, reason=reason, now=_now(), actor=request.user),
            done="Cancelled: {count}.")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Reservation)
class ReservationAdmin(LargeTableMixin, ReadOnlyAdmin):
    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("event", "device", "service_point", "decision", "detail", "capacity_kw", "decided_at")
    list_filter = ("decision", "event__program")
    search_fields = ("event__name", "device__serial_number", "device__aggregator_device_id",
                     "service_point__service_point_id", "detail")
    list_select_related = ("event", "device", "service_point")
    raw_id_fields = ("event", "subscription", "enrollment", "device", "service_point")


@admin.register(Participation)
class ParticipationAdmin(LargeTableMixin, ReadOnlyAdmin):
    # Newest first by primary key: an index scan; the model's ordering sorts the whole table through a join.
    ordering = ("-pk",)
    list_display = ("event", "device", "service_point", "status", "start", "end", "opted_out_at",
                    "outcome_revision")
    list_filter = ("status", "event__program")
    search_fields = ("event__name", "device__serial_number", "service_point__service_point_id")
    list_select_related = ("event", "device", "service_point")
    raw_id_fields = ("event", "subscription", "enrollment", "device", "service_point")


@admin.register(OptOut)
class OptOutAdmin(ReadOnlyAdmin):
    list_display = ("participation", "channel", "at", "recorded_by", "reason")
    list_filter = ("channel",)
    search_fields = ("participation__event__name", "reason")
    list_select_related = ("participation", "participation__event", "recorded_by")


@admin.register(Unavailability)
class UnavailabilityAdmin(admin.ModelAdmin):
    list_display = ("enrollment", "device", "start", "end", "reason")
    search_fields = ("reason", "enrollment__service_point__service_point_id")
    list_select_related = ("enrollment", "device")
    raw_id_fields = ("enrollment", "device")


@admin.register(DispatchMessage)
class DispatchMessageAdmin(ReadOnlyAdmin):
    list_display = ("event", "aggregator", "kind", "revision", "delivery_status", "attempts", "last_attempt_at",
                    "last_error")
    list_filter = ("kind", "delivery_status", "aggregator")
    search_fields = ("event__name", "aggregator__code")
    list_select_related = ("event", "aggregator")
    actions = ["retry_delivery"]

    @admin.action(description="Retry webhook delivery")
    def retry_delivery(self, request, queryset):
        from cpm.base.tasks import enqueue_on_commit

        from .tasks import deliver_dispatch_message

        n = 0
        for msg in queryset.exclude(aggregator__webhook_url=""):
            DispatchMessage.objects.filter(pk=msg.pk).update(delivery_status=DeliveryStatus.PENDING, attempts=0)
            enqueue_on_commit(deliver_dispatch_message, message_id=msg.pk)
            n += 1
        self.message_user(request, f"Queued {n} message(s).", messages.SUCCESS)


@admin.register(EventRevision)
class EventRevisionAdmin(ReadOnlyAdmin):
    list_display = ("event", "revision", "changed_at", "changed_by", "reason")
    list_select_related = ("event",)
    search_fields = ("event__name",)
