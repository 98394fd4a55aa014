"""Admin of the VTN: client credentials per aggregator (issued by an action, the secret shown once), the program
settings OpenADR adds, and read-only views of VENs, resources, published events, reports, subscriptions and
notification deliveries."""

from __future__ import annotations

from django.contrib import admin, messages

from cpm.base.admin import GuardedModelAdmin, ReadOnlyAdmin, admin_now, guarded_action
from cpm.base.errors import DomainError

from . import services
from .models import Notification, OadrEvent, ProgramSettings, Report, Resource, Subscription, Ven, VenCredentials


@admin.register(VenCredentials)
class VenCredentialsAdmin(ReadOnlyAdmin):
    list_display = ("code", "name", "api_user", "ven_name", "client_ids")
    search_fields = ("code", "name")
    actions = ["issue_credentials"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("api_user", "openadr3_ven")

    @admin.display(description="VEN")
    def ven_name(self, obj) -> str:
        ven = getattr(obj, "openadr3_ven", None)
        return ven.ven_name if ven else "not registered"

    @admin.display(description="OAuth client ids")
    def client_ids(self, obj) -> str:
        from oauth2_provider.models import Application

        if not obj.api_user_id:
            return "no API user"
        return ", ".join(Application.objects.filter(user_id=obj.api_user_id).values_list("client_id", flat=True))

    @guarded_action("openadr3.credentials.issue", description="Issue OpenADR 3 client credentials")
    def issue_credentials(self, request, queryset):
        for aggregator in queryset:
            try:
                client_id, secret = services.credentials_issue(aggregator=aggregator, now=admin_now(),
                                                               actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{aggregator.code}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{aggregator.code}: client id {client_id}, client secret {secret} (shown "
                                       "once: give it to the aggregator now).", messages.WARNING)


@admin.register(ProgramSettings)
class ProgramSettingsAdmin(GuardedModelAdmin):
    list_display = ("program", "randomize_start_seconds")
    write_use_cases = {"add": "openadr3.program_settings.set", "change": "openadr3.program_settings.set"}

    def save_via_service(self, request, obj, form, change):
        saved = services.program_settings_set(program=obj.program, randomize_start_seconds=obj.randomize_start_seconds,
                                              now=admin_now(), actor=request.user)
        obj.pk = saved.pk


@admin.register(Ven)
class VenAdmin(ReadOnlyAdmin):
    list_display = ("ven_name", "aggregator", "client_id", "created_at")
    search_fields = ("ven_name", "aggregator__code")


@admin.register(Resource)
class ResourceAdmin(ReadOnlyAdmin):
    list_display = ("resource_name", "ven", "device")
    list_select_related = ("ven", "device")
    search_fields = ("resource_name",)
    raw_id_fields = ("device",)


@admin.register(OadrEvent)
class OadrEventAdmin(ReadOnlyAdmin):
    list_display = ("event", "modification_number", "revision", "deleted_at", "updated_at")
    list_select_related = ("event__program",)


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ("pk", "ven", "event_id", "client_name", "created_at")
    list_select_related = ("ven",)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("pk", "client_name", "aggregator", "program", "created_at")

    def get_object(self, request, object_id, from_field=None):
        """The subscription without its webhooks' bearer tokens (the client's credentials: never shown; the
        instance is only shown, never saved from the admin)."""
        subscription = super().get_object(request, object_id, from_field)
        if subscription is not None and isinstance(subscription.object_operations, list):
            subscription.object_operations = [
                {**op, "bearerToken": "********"} if isinstance(op, dict) and op.get("bearerToken") else op
                for op in subscription.object_operations]
        return subscription
    list_select_related = ("aggregator", "program")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("pk", "operation", "object_type", "object_id", "callback_url", "status", "attempts")
    exclude = ("bearer_token",)  # the client's webhook credential: never shown
    list_filter = ("status", "object_type")
