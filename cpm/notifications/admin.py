"""Admin of customer notifications: messages (read-only, with bounce and retry actions), templates and policies
per program (edited through their services), contact preferences."""

from __future__ import annotations

from django.contrib import admin

from cpm.base.admin import GuardedModelAdmin, LargeTableMixin, ReadOnlyAdmin, admin_now, guarded_action, run_each
from cpm.base.masking import contact_visible, mask_email, mask_phone

from . import services
from .links import withhold_links
from .models import ContactPreference, Message, MessageTemplate, NotificationPolicy


@admin.register(Message)
class MessageAdmin(LargeTableMixin, ReadOnlyAdmin):
    list_display = ("id", "kind", "channel", "status", "customer", "program", "event", "due_at", "sent_at",
                    "provider_id")
    list_filter = ("status", "kind", "channel", "program")
    search_fields = ("key", "provider_id", "customer__last_name", "customer__cis_person_id")
    list_select_related = ("customer", "program", "event")
    raw_id_fields = ("customer", "event", "enrollment")
    readonly_fields = [f.name for f in Message._meta.fields]
    actions = ["retry", "bounce"]

    def get_object(self, request, object_id, from_field=None):
        """The message as this user may see it: the address or number it went to masked without the personal-data
        capability, the opt-out link of a notice withheld from everyone (the instance is only shown: messages are
        never saved from the admin)."""
        message = super().get_object(request, object_id, from_field)
        if message is not None:  # the customer's opt-out link is their credential: never shown (``links``)
            message.body = withhold_links(message.body)
        if message is not None and not contact_visible(request.user):
            message.recipient = (mask_email(message.recipient) if "@" in message.recipient
                                 else mask_phone(message.recipient))
        return message

    @guarded_action("message.retry", description="Queue failed messages again")
    def retry(self, request, queryset):
        run_each(self, request, queryset, "Queued again",
                 lambda m: services.message_retry(message=m, now=admin_now(), actor=request.user))

    @guarded_action("message.bounce", description="Mark sent messages bounced")
    def bounce(self, request, queryset):
        run_each(self, request, queryset, "Marked bounced",
                 lambda m: services.message_bounce(message=m, reason="marked bounced in the admin",
                                                   now=admin_now(), actor=request.user))


@admin.register(MessageTemplate)
class MessageTemplateAdmin(GuardedModelAdmin):
    write_use_cases = {"add": "message_template.save", "change": "message_template.save",
                       "delete": "message_template.delete"}
    list_display = ("program", "kind", "subject", "updated_at")
    list_filter = ("kind", "program")
    list_select_related = ("program",)
    readonly_fields = ("updated_at",)
    fields = ("program", "kind", "subject", "body", "sms_body", "updated_at")

    def get_changeform_initial_data(self, request):
        """A new template starts from the default wording of the kind asked for (``?kind=event_notice``)."""
        from .rendering import DEFAULTS

        initial = super().get_changeform_initial_data(request)
        wording = DEFAULTS.get(initial.get("kind") or "event_notice")
        if wording:
            initial.setdefault("subject", wording.subject)
            initial.setdefault("body", wording.body)
            initial.setdefault("sms_body", wording.sms_body)
        return initial

    def save_via_service(self, request, obj, form, change):
        services.message_template_save(template=obj, now=admin_now(), actor=request.user)

    def delete_via_service(self, request, obj):
        services.message_template_delete(template=obj, now=admin_now(), actor=request.user)


@admin.register(NotificationPolicy)
class NotificationPolicyAdmin(GuardedModelAdmin):
    write_use_cases = {"add": "notification_policy.save", "change": "notification_policy.save"}
    list_display = ("program", "notice_lead_minutes", "reminder_lead_minutes", "quiet_start", "quiet_end",
                    "weekly_cap", "opt_out_link_hours")
    list_select_related = ("program",)
    readonly_fields = ("updated_at",)

    def save_via_service(self, request, obj, form, change):
        services.notification_policy_save(policy=obj, now=admin_now(), actor=request.user)


@admin.register(ContactPreference)
class ContactPreferenceAdmin(LargeTableMixin, ReadOnlyAdmin):
    """Preferences change through ``contact_preference.set`` (the CSR page, the CIS); listed here."""

    list_display = ("customer", "program", "channel", "updated_at")
    list_filter = ("channel",)
    list_select_related = ("customer", "program")
    raw_id_fields = ("customer", "program")
