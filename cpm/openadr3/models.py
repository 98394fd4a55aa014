"""The OpenADR 3 view of cpm's objects: what the VTN adds to them, never a second copy of the truth.

- A cpm ``Program`` is an OpenADR program (id = the program's pk); ``ProgramSettings`` holds what OpenADR adds
  (a randomized start).
- An ``Aggregator`` is a VEN (``Ven``, one per aggregator); its devices are its resources (``Resource``, linked to
  the device by the aggregator's device id = the resource name).
- A cpm ``Event``, once reserved, is an OpenADR event (``OadrEvent``, id = the event's pk): its published body, its
  modification number (one more per published change), its deletion (the cancellation), and its targets per
  aggregator (``OadrEventTarget``: the resource names of the devices reserved in it).
- ``Report``: what a VEN reported, and what cpm made of it (participation outcomes, opt-outs, telemetry readings).
- ``Subscription`` and ``Notification``: webhooks, one delivery record per notification (body JSON-encoded once).

Instants in UTC; the OpenADR documents show them with the program's zone offset (RFC 3339).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from devices.models import Aggregator, Device
from events.models import Event
from programs.models import Program


class ProgramSettings(models.Model):
    """What OpenADR adds to a cpm program."""

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="openadr3")
    randomize_start_seconds = models.PositiveIntegerField(
        default=0, help_text="Events of this program tell VENs to start at a random instant within this many "
                             "seconds after the start (intervalPeriod.randomizeStart); 0 = no randomization.")

    class Meta:
        verbose_name = "OpenADR 3 program setting"

    def __str__(self) -> str:
        return f"OpenADR 3 settings of {self.program}"


class Ven(models.Model):
    """An aggregator as an OpenADR VEN (registered by its VEN client, or by business logic)."""

    aggregator = models.OneToOneField(Aggregator, on_delete=models.PROTECT, related_name="openadr3_ven")
    ven_name = models.CharField(max_length=128, unique=True)
    client_id = models.CharField(max_length=128, blank=True, help_text="OAuth client that registered it.")
    attributes = models.JSONField(default=list, blank=True)
    targets = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        verbose_name = "VEN"

    def __str__(self) -> str:
        return self.ven_name


class Resource(models.Model):
    """A resource of a VEN: one of its aggregator's devices (``resource_name`` = the aggregator's device id)."""

    ven = models.ForeignKey(Ven, on_delete=models.CASCADE, related_name="resources")
    resource_name = models.CharField(max_length=128)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attributes = models.JSONField(default=list, blank=True)
    targets = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["ven", "resource_name"], name="oadr_resource_unique_name")]

    def __str__(self) -> str:
        return f"{self.ven.ven_name}/{self.resource_name}"


class OadrEvent(models.Model):
    """A cpm event as published to VENs. ``body``: the event object's fields other than id, targets and times
    (programID, eventName, priority, payloadDescriptors, reportDescriptors, intervalPeriod, intervals)."""

    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="openadr3", primary_key=True)
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+", db_index=False)
    modification_number = models.PositiveIntegerField(default=0)
    revision = models.PositiveIntegerField(help_text="The cpm event revision published.")
    body = models.JSONField()
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Cancelled: deleted from the VTN's view.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["event_id"]
        verbose_name = "OpenADR event"
        indexes = [models.Index(fields=["program", "event"], name="oadr_event_program_idx")]

    def __str__(self) -> str:
        return f"OpenADR event {self.event_id} (modification {self.modification_number})"


class OadrEventTarget(models.Model):
    """The resources of one aggregator an OpenADR event is targeted at (its devices reserved in the event)."""

    oadr_event = models.ForeignKey(OadrEvent, on_delete=models.CASCADE, related_name="targets", db_index=False)
    aggregator = models.ForeignKey(Aggregator, on_delete=models.CASCADE, related_name="+")
    resource_names = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["oadr_event", "aggregator"], name="oadr_target_unique")]

    def __str__(self) -> str:
        return f"{self.oadr_event_id} -> {self.aggregator_id} ({len(self.resource_names)} resources)"


class Report(models.Model):
    """A VEN's report on an event, and what cpm made of it (``results``)."""

    ven = models.ForeignKey(Ven, on_delete=models.PROTECT, related_name="reports")
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    client_name = models.CharField(max_length=128)
    client_id = models.CharField(max_length=128, blank=True)
    report_name = models.CharField(max_length=300, blank=True)
    body = models.JSONField(help_text="payloadDescriptors and resources as reported.")
    results = models.JSONField(default=dict, blank=True,
                               help_text="Outcomes recorded, opt-outs, readings loaded (and row errors).")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["event", "ven"], name="oadr_report_event_ven_idx")]

    def __str__(self) -> str:
        return f"Report {self.pk} of {self.ven} on event {self.event_id}"


class Subscription(models.Model):
    """A client's webhook subscription. ``aggregator`` is set for a VEN client's subscription (notified only of
    what that VEN may read); a business-logic subscription has none."""

    aggregator = models.ForeignKey(Aggregator, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                                   help_text="Set for a VEN client's subscription.")
    client_id = models.CharField(max_length=128)
    client_name = models.CharField(max_length=128)
    program = models.ForeignKey(Program, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    object_operations = models.JSONField()
    targets = models.JSONField(default=list, blank=True)
    openadr_version = models.CharField(max_length=5, choices=[("3.0.1", "3.0.1"), ("3.1.0", "3.1.0")],
                                       default="3.0.1", help_text="The OpenADR version it was made through: its "
                                                                  "notifications carry that version's objects.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Subscription {self.pk} of {self.client_name}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed after retries"


NOTIFICATION_TRANSITIONS: dict[str, frozenset[str]] = {
    NotificationStatus.PENDING: frozenset({NotificationStatus.DELIVERED, NotificationStatus.FAILED}),
    NotificationStatus.DELIVERED: frozenset(),
    NotificationStatus.FAILED: frozenset(),
}


class Notification(models.Model):
    """One webhook POST of a notification to a subscription's callback URL. ``body`` is the JSON text, encoded
    once when the notification is made and sent as it is on every attempt."""

    subscription = models.ForeignKey(Subscription, null=True, on_delete=models.SET_NULL,
                                     related_name="notifications")
    callback_url = models.URLField(max_length=2000)
    bearer_token = models.CharField(max_length=500, blank=True)
    object_type = models.CharField(max_length=16)
    operation = models.CharField(max_length=8)
    object_id = models.CharField(max_length=64)
    body = models.TextField()
    status = models.CharField(max_length=12, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(status__in=NotificationStatus.values),
                                              name="oadr_notification_status_valid")]

    def __str__(self) -> str:
        return f"{self.operation} {self.object_type} {self.object_id} -> {self.callback_url}"


class VenCredentials(Aggregator):
    """The aggregators, as the admin's page of OpenADR 3 client credentials (a proxy: no table)."""

    class Meta:
        proxy = True
        verbose_name = "VEN client credentials"
        verbose_name_plural = "VEN client credentials"
