"""The shared audit record: every state change and every CSR view of personal data, written by services."""

from django.conf import settings
from django.db import models

from cpm.base.capabilities import CAPABILITY_LABELS


class AuditEntry(models.Model):
    """One audited action: who, when, on what, from which status to which, why, and the changed values.

    Written in the same transaction as the change it records (``cpm.base.audit.audit_record``); never edited.
    """

    class Action(models.TextChoices):
        STATUS_CHANGE = "status_change", "Status change"
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        VIEW_PERSONAL_DATA = "view_personal_data", "View personal data"
        OVERRIDE = "override", "Rule override"
        EXPORT = "export", "Export"

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_label = models.CharField(max_length=150, blank=True, help_text="User name or system job at the time.")
    action = models.CharField(max_length=32, choices=Action.choices)
    code = models.CharField(max_length=64, blank=True,
                            help_text="What happened to what, namespaced: event.cancelled, event_settlement.approved, "
                                      "bill_credit_export.exported.")
    object_type = models.CharField(max_length=100, db_index=True, help_text="app_label.model")
    object_id = models.CharField(max_length=64, db_index=True)
    object_repr = models.CharField(max_length=200, blank=True)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    reason = models.TextField(blank=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "at"]),
                   models.Index(fields=["-at", "-id"], name="audit_at_desc_idx")]  # the trail's order: index scan
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        what = self.code or self.action
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {what} {self.object_type}#{self.object_id}"


class Capability(models.Model):
    """No table: carries the capabilities (``cpm.base.capabilities.Cap``) that roles grant as permissions; checked by
    the write services themselves (``@use_case``) and asked by adapters to decide what to offer."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [(cap.value, label) for cap, label in CAPABILITY_LABELS.items()]
