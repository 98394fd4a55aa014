"""The shared audit record: every state change and every CSR view of personal data, written by services."""

from django.conf import settings
from django.db import models

from cpm.base.capabilities import CAPABILITY_LABELS
from cpm.base.timeutils import format_local


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
        # An entry belongs to no program: named in CPM_DISPLAY_TIME_ZONE, as its page shows ``at``.
        what = self.code or self.action
        when = format_local(self.at, getattr(settings, "CPM_DISPLAY_TIME_ZONE", "UTC"))
        return f"{when} {self.actor_label} {what} {self.object_type}#{self.object_id}"


class Capability(models.Model):
    """No table: carries the capabilities (``cpm.base.capabilities.Cap``) that roles grant as permissions; checked by
    the write services themselves (``@use_case``) and asked by adapters to decide what to offer."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [(cap.value, label) for cap, label in CAPABILITY_LABELS.items()]


class Job(models.Model):
    """One background job (a meter-data load, a reservation run, a settlement batch) with its progress, failure and
    the chunks any worker may take (NetBox's ``Job`` is the model). Written only by ``cpm.base.jobs``."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=40, help_text="meter_data_load, reservation, event_settlement, ...")
    subject_type = models.CharField(max_length=100, blank=True, help_text="app_label.model of what the job works on")
    subject_id = models.CharField(max_length=64, blank=True)
    subject_repr = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the job failed, in words.")
    result = models.JSONField(default=dict, blank=True, help_text="What the job produced (e.g. counts by decision).")
    actor_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress (chunk started or done).")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"]),
                   models.Index(fields=["status"], condition=models.Q(status__in=["pending", "running"]),
                                name="job_open_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(chunks_done__lte=models.F("chunks_total")),
                                              name="job_chunks_done_lte_total")]

    def __str__(self) -> str:
        return f"{self.kind} job #{self.pk} ({self.status})"

    @property
    def progress(self) -> str:
        return f"{self.chunks_done}/{self.chunks_total}" if self.chunks_total else self.status


class JobChunk(models.Model):
    """One chunk of a job: a Celery task name and its keyword arguments, run at least once and done exactly once."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    task_name = models.CharField(max_length=100)
    kwargs = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True, help_text="The chunk's result (a JSON object), once done.")
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="job_chunk_unique_index")]
        indexes = [models.Index(fields=["status", "updated_at"], condition=models.Q(status__in=["pending", "running"]),
                                name="job_chunk_open_idx")]

    def __str__(self) -> str:
        return f"{self.job} chunk {self.index} ({self.status})"
