"""Meter data models: interval data (``IntervalDay``) and its load jobs (``MeterDataLoad``), in app ``settlement``."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from devices.models import Device, ServicePoint

from .choices import Channel


class IntervalDay(models.Model):
    """One UTC day of interval kWh for a service point (optionally a device) and channel.

    ``values`` is ``settlement.meterdata.intervals.encode`` of ``1440 / interval_minutes`` float64 kWh (NaN = missing).
    A correction writes a new version and keeps the old row (``is_current=False``); at most one current row per
    (service point, device, channel, day).
    """

    # No single-column indexes: interval_day_version_unique leads with the service point, and devices are indexed
    # where set (interval_day_device_idx). A load writes a row per meter and day into every index of the table.
    service_point = models.ForeignKey(ServicePoint, on_delete=models.CASCADE, related_name="interval_days",
                                      db_index=False)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="interval_days",
                               db_index=False)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.DELIVERED)
    day = models.DateField(help_text="UTC date.")
    interval_minutes = models.PositiveSmallIntegerField()
    values = models.BinaryField()
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    received_at = models.DateTimeField()
    load = models.ForeignKey("settlement.MeterDataLoad", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")

    class Meta:
        app_label = "settlement"
        ordering = ["service_point", "channel", "day", "version"]
        constraints = [
            models.UniqueConstraint(fields=["service_point", "channel", "day"],
                                    condition=Q(is_current=True, device__isnull=True),
                                    name="interval_day_current_unique_sp"),
            models.UniqueConstraint(fields=["service_point", "device", "channel", "day"],
                                    condition=Q(is_current=True, device__isnull=False),
                                    name="interval_day_current_unique_device"),
            models.UniqueConstraint(fields=["service_point", "device", "channel", "day", "version"],
                                    name="interval_day_version_unique"),
            models.CheckConstraint(condition=Q(interval_minutes__in=[5, 15, 30, 60]), name="interval_minutes_valid"),
        ]
        indexes = [models.Index(fields=["day", "service_point"], name="interval_day_sp_idx",
                                condition=Q(is_current=True)),
                   models.Index(fields=["device"], name="interval_day_device_idx", condition=Q(device__isnull=False))]


class MeterDataLoad(models.Model):
    """A load job of interval data (CSV, Green Button, API) with its counts and per-row errors."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with row errors"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        CSV = "csv", "CSV"
        GREEN_BUTTON = "green_button", "Green Button XML"
        API = "api", "REST API"

    source = models.CharField(max_length=16, choices=Source.choices)
    file_name = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    readings_new = models.PositiveIntegerField(default=0)
    readings_unchanged = models.PositiveIntegerField(default=0)
    readings_corrected = models.PositiveIntegerField(default=0)
    readings_rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{row, field, message}]")
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        app_label = "settlement"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.source} load #{self.pk} ({self.status})"

    @property
    def summary(self) -> str:
        return (f"{self.readings_new} new, {self.readings_unchanged} unchanged, {self.readings_corrected} corrected, "
                f"{self.readings_rejected} rejected")
