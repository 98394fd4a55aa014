"""Admin for events: lists with reservation counts by decision (annotated: constant queries). The admin is an
adapter over the services (``cpm.base.admin``): events are added and changed through ``event_create`` /
``event_update``, unavailability is added through ``unavailability_create``, every action is a guarded use case
offered only to users who may run it; the ledger, participations, opt-outs, revisions and dispatch messages are
read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from cpm.base.admin import (
    GuardedModelAdmin,
    LargeTableMixin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    admin_now,
    ask_reason,
    guarded_action,
    run_each,
)
from programs.admin import KNOWN_CODES, code_list_field
from programs.choices import DeviceType

from . import services
from .choices import ReservationDecision
from .models import DispatchMessage, Event, EventRevision, OptOut, Participation, Reservation, Unavailability


class RevisionInline(ReadOnlyInline, admin.TabularInline):
    model = EventRevision
    readonly_fields = ("revision", "changed_at", "changed_by", "reason", "snapshot")


# Targeting lists as ticked values listing the allowed codes (never JSON): the network codes known from premises
# (``programs.admin.KNOWN_CODES``, filled by the devices app) plus the event's own; none ticked = every device.
TARGET_CODE_LISTS = {
    "target_territories": ("eligible_territories", "Tick the service territories the event targets; none ticked = "
                                                   "every territory."),
    "target_substations": ("eligible_substations", "Tick the substations the event targets; none ticked = every "
                                                   "substation."),
    "target_feeders": ("eligible_feeders", "Tick the feeders the event targets; none ticked = every feeder."),
}


class EventForm(forms.ModelForm):
    """The event form: targeting lists as ticked values, refusals in words. An End not after the Start, a notice
    after the Start or a target of zero kW or less is an error on its field naming the fields as the form labels
    them (``services.event_values_errors``; the table's constraint said 'end must be after start.' above the form,
    and a target of -5 kW came back from the service as 'target_kw: target_kw must be positive.' over an emptied
    form)."""

    # The labels' names, without the zone the admin adds to them ("Start (America/Los_Angeles, local time)").
    LABELS = {"start": "Start", "end": "End", "notification_at": "Notification at", "target_kw": "Target kW"}

    class Meta:
        model = Event
        fields = ("program", *services.EDITABLE_FIELDS, "target_devices")  # the admin passes its own list too

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "target_kw" in self.fields:
            self.fields["target_kw"].label = self.LABELS["target_kw"]
        if "target_device_types" in self.fields:
            self.fields["target_device_types"] = code_list_field(
                DeviceType.choices, "Tick the device types the event targets; none ticked = every device type.",
                widget=forms.CheckboxSelectMultiple)
        for name, (known_key, help_text) in TARGET_CODE_LISTS.items():
            if name not in self.fields:
                continue
            known = set(KNOWN_CODES[known_key]()) if known_key in KNOWN_CODES else set()
            known.update(getattr(self.instance, name, None) or [])
            choices = [(code, code) for code in sorted(c for c in known if c)]
            if not choices:
                help_text += " (No code is known yet: none found on premises.)"
            self.fields[name] = code_list_field(choices, help_text, widget=forms.CheckboxSelectMultiple)
            self.fields[name].initial = getattr(self.instance, name, None) or []

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None:
            problems = services.event_values_errors(start=start, end=end, notification_at=data.get("notification_at"),
                                                    target_kw=data.get("target_kw"), labels=self.LABELS)
            for field, messages_ in problems.items():
                for message in messages_:
                    self.add_error(field, message)
        return data


# Shown once the event exists (the add form asks only for what a person decides).
RECORD_FIELDS = ("status", "revision", "overrides_rules", "override_reason", "cancel_reason", "reserved_at",
                 "settlement_handed_off_at", "created_at", "updated_at")


@admin.register(Event)
class EventAdmin(LargeTableMixin, GuardedModelAdmin):
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
    form = EventForm
    actions = ["schedule", "reserve_again", "dispatch_now", "cancel"]
    write_use_cases = {"add": "event.create", "change": "event.update"}

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if obj is not None else [f for f in fields if f not in RECORD_FIELDS]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

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
        if obj is not None:  # a draft: everything ``event_update`` changes; an event never moves to another program
            return (*self.readonly_fields, "program")
        return self.readonly_fields

    def save_via_service(self, request, obj, form, change):
        """New and draft events are written through the services (audited; revisions after scheduling), the
        targeted devices included."""
        devices = form.cleaned_data.get("target_devices")
        device_ids = None if devices is None else [d.pk for d in devices]
        if not change:
            data = {k: form.cleaned_data.get(k) for k in services.EDITABLE_FIELDS}
            created = services.event_create(program=form.cleaned_data["program"], now=admin_now(), actor=request.user,
                                            target_device_ids=device_ids,
                                            **{k: v for k, v in data.items() if v is not None})
            obj.pk = created.pk
            obj.refresh_from_db()
            # ``refresh_from_db`` drops the cached program: without it the "added" message names the event in UTC.
            obj.program = form.cleaned_data["program"]
            return
        changes = {k: form.cleaned_data[k] for k in form.changed_data if k in services.EDITABLE_FIELDS}
        if "target_devices" in form.changed_data:
            changes["target_device_ids"] = device_ids or []
        if changes:
            services.event_update(event=obj, changes=changes, now=admin_now(), actor=request.user, reason="admin")

    def save_related(self, request, form, formsets, change):
        """The targeted devices were saved by the service (``save_via_service``), not by ``form.save_m2m()``; the
        revision inline is read-only (its formset saves nothing)."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @guarded_action("event.schedule", description="Schedule (checks the program's participation rules)")
    def schedule(self, request, queryset):
        run_each(self, request, queryset, "Scheduled",
                 lambda e: services.event_schedule(event=e, now=admin_now(), actor=request.user))

    @guarded_action("event.reserve", description="Reserve devices again")
    def reserve_again(self, request, queryset):
        run_each(self, request, queryset, "Reserved",
                 lambda e: services.event_reserve(event=e, now=admin_now(), actor=request.user))

    @guarded_action("event.dispatch", description="Dispatch now")
    def dispatch_now(self, request, queryset):
        run_each(self, request, queryset, "Dispatched",
                 lambda e: services.event_dispatch(event=e, now=admin_now(), actor=request.user))

    @guarded_action("event.cancel", description="Cancel (asks for the reason; releases every reservation)")
    def cancel(self, request, queryset):
        return ask_reason(
            self, request, queryset, action="cancel", title="Cancel events",
            question="Cancel these events? Every participation is released and aggregators already sent an event "
                     "get a cancellation.",
            apply=lambda e, reason: services.event_cancel(event=e, reason=reason, now=admin_now(),
                                                          actor=request.user),
            done="Cancelled: {count}.")


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
    list_select_related = ("participation__event__program", "participation__device", "participation__service_point",
                           "recorded_by")


class UnavailabilityForm(forms.ModelForm):
    """The add form. A period whose End is not after its Start, or that is already over, is an error on End naming
    the fields as the form labels them (``services.unavailability_period_errors``; the table's constraint named
    neither: 'Constraint “unavailability_end_after_start” is violated.')."""

    LABELS = {"start": "Start", "end": "End"}

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None:
            problems = services.unavailability_period_errors(start=start, end=end, now=admin_now(),
                                                             labels=self.LABELS)
            for field, messages_ in problems.items():
                for message in messages_:
                    self.add_error(field, message)
        return data


@admin.register(Unavailability)
class UnavailabilityAdmin(GuardedModelAdmin):
    """Added through ``unavailability_create`` (checks the device is subscribed, audited); never changed or
    deleted here."""

    form = UnavailabilityForm
    list_display = ("enrollment", "device", "start", "end", "reason")
    search_fields = ("reason", "enrollment__service_point__service_point_id")
    list_select_related = ("enrollment__program", "enrollment__account", "enrollment__service_point", "device")
    raw_id_fields = ("enrollment", "device")
    write_use_cases = {"add": "unavailability.create"}

    def save_via_service(self, request, obj, form, change):
        data = form.cleaned_data
        created = services.unavailability_create(enrollment=data["enrollment"], device=data.get("device"),
                                                 start=data["start"], end=data["end"],
                                                 reason=data.get("reason", ""), now=admin_now(), actor=request.user)
        obj.pk = created.pk
        obj.refresh_from_db()


@admin.register(DispatchMessage)
class DispatchMessageAdmin(GuardedModelAdmin):
    """Read-only (no write use case for add, change or delete); the one action retries a webhook delivery through
    ``dispatch_message_retry``."""

    list_display = ("event", "aggregator", "kind", "revision", "delivery_status", "attempts", "last_attempt_at",
                    "last_error")
    list_filter = ("kind", "delivery_status", "aggregator")
    search_fields = ("event__name", "aggregator__code")
    list_select_related = ("event", "aggregator")
    actions = ["retry_delivery"]

    @guarded_action("dispatch_message.retry", description="Retry webhook delivery")
    def retry_delivery(self, request, queryset):
        run_each(self, request, queryset.select_related("aggregator"), "Queued",
                 lambda m: services.dispatch_message_retry(message=m, now=admin_now(), actor=request.user,
                                                           reason="admin: retry delivery"))


@admin.register(EventRevision)
class EventRevisionAdmin(ReadOnlyAdmin):
    list_display = ("event", "revision", "changed_at", "changed_by", "reason")
    list_select_related = ("event",)
    search_fields = ("event__name",)
