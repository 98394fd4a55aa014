"""Meter data models: interval data (``IntervalDay``) and its load jobs (``MeterDataLoad``), in app ``settlement``."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from devices.models import Device, ServicePoint
from events.models import Event

from .choices import Channel


class IntervalDay(models.Model):
    """One UTC day of interval kWh for a service point (optionally a device) and channel.

    ``values`` is ``settlement.meterdata.intervals.encode`` of ``1440 / interval_minutes`` float64 kWh (NaN = missing).
    A correction writes a new version and keeps the old row (``is_current=False``); at most one current row per
    (service point, device, channel, day).
    """

    # No single-column indexes: interval_day_version_unique leads with the service point, and devices are indexed
    # where set (interval_day_device_idx). A load writes a row per meter and day into every index of the table.
    # db_constraint=False on every key: the database checks them set-based, once per statement over all its rows
    # (``cpm.base.setkeys``, migration 0009), not with one deferred trigger per row and key at commit (issue 20).
    service_point = models.ForeignKey(ServicePoint, on_delete=models.CASCADE, related_name="interval_days",
                                      db_index=False, db_constraint=False)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="interval_days",
                               db_index=False, db_constraint=False)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.DELIVERED)
    day = models.DateField(help_text="UTC date.")
    interval_minutes = models.PositiveSmallIntegerField()
    values = models.BinaryField()
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    received_at = models.DateTimeField()
    load = models.ForeignKey("settlement.MeterDataLoad", null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", db_constraint=False)

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

    def __str__(self) -> str:
        device = f" device {self.device_id}" if self.device_id else ""
        return (f"{self.service_point.service_point_id}{device} {self.channel} {self.day} (UTC day), "
                f"{self.interval_minutes}-minute intervals, version {self.version}")


class MeterDataLoad(models.Model):
    """A load job of interval data (CSV, Green Button, API) or of aggregator-reported kW drops (``KW_DROP``: the
    counts are of records, one per event and service point) with its counts and per-row errors."""

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
        KW_DROP = "kw_drop", "kW-drop file (aggregator / DERMS)"

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


class ReportedKwDrop(models.Model):
    """The kW drop an aggregator or the utility's DERMS reported for one service point in one event (a record of a
    kW-drop file, ``settlement.meterdata.kwdrop``): the measurement of AGGREGATOR_REPORTED programs.

    ``kw_drop``: one value per interval of ``interval_seconds`` from ``actual_start`` (UTC) to ``actual_end``, in kW;
    ``null`` where the device did not report: missing data, never zero. ``max_kw_drop``: the file's MaxKwDrop (null
    when blank). A corrected file writes a new version and keeps the old row (``is_current=False``); at most one
    current row per (event, service point); a file repeating the stored record writes nothing.
    """

    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    service_point = models.ForeignKey(ServicePoint, on_delete=models.PROTECT, related_name="+")
    actual_start = models.DateTimeField(help_text="UTC start of the first reported interval.")
    actual_end = models.DateTimeField(help_text="UTC end of the last reported interval (exclusive).")
    interval_seconds = models.PositiveIntegerField()
    max_kw_drop = models.DecimalField("max kW drop", max_digits=12, decimal_places=4, null=True, blank=True,
                                      help_text="MaxKwDrop as reported (null = blank).")
    kw_drop = models.JSONField("kW drop", default=list,
                               help_text="kW per interval; null = not reported (missing, not zero).")
    intervals_reported = models.PositiveIntegerField(default=0)
    intervals_missing = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    received_at = models.DateTimeField()
    load = models.ForeignKey(MeterDataLoad, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    line = models.PositiveIntegerField(default=0, help_text="Line of the record in its file.")

    class Meta:
        app_label = "settlement"
        verbose_name = "reported kW drop"
        ordering = ["event", "service_point", "version"]
        constraints = [
            models.UniqueConstraint(fields=["event", "service_point"], condition=Q(is_current=True),
                                    name="reported_kw_drop_current_unique"),
            models.UniqueConstraint(fields=["event", "service_point", "version"],
                                    name="reported_kw_drop_version_unique"),
            models.CheckConstraint(condition=Q(actual_end__gt=models.F("actual_start")),
                                   name="reported_kw_drop_end_after_start"),
            models.CheckConstraint(condition=Q(interval_seconds__gt=0), name="reported_kw_drop_interval_positive"),
        ]

    def __str__(self) -> str:
        return f"kW drop of {self.service_point_id} in event {self.event_id} (v{self.version})"
