"""Events: when a program is called, who was reserved (and why not), who took part, opted out, and what was sent.

Instants are stored in UTC; the program's zone is used for local days, windows and limits. Periods are half-open.
"""

from __future__ import annotations

from datetime import UTC

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from cpm.base.timeutils import format_local
from devices.models import Aggregator, Device, ServicePoint
from enrollments.models import Enrollment, ProgramSubscription
from programs.models import Program

from .choices import (
    DeliveryStatus,
    DispatchKind,
    EventCategory,
    EventDirection,
    EventStatus,
    OptOutChannel,
    ParticipationStatus,
    ReservationDecision,
)


class Event(models.Model):
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="events")
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=16, choices=EventCategory.choices, default=EventCategory.ECONOMIC)
    direction = models.CharField(max_length=8, choices=EventDirection.choices, default=EventDirection.REDUCE)
    start = models.DateTimeField(help_text="UTC start (inclusive).")
    end = models.DateTimeField(help_text="UTC end (exclusive).")
    notification_at = models.DateTimeField(help_text="UTC time participants are notified (dispatch).")
    status = models.CharField(max_length=12, choices=EventStatus.choices, default=EventStatus.DRAFT, editable=False)
    revision = models.PositiveIntegerField(default=1, editable=False)
    # Targeting: all empty = every enrolled device of the program.
    target_territories = models.JSONField(default=list, blank=True)
    target_substations = models.JSONField(default=list, blank=True)
    target_feeders = models.JSONField(default=list, blank=True)
    target_device_types = models.JSONField(default=list, blank=True)
    target_devices = models.ManyToManyField(Device, blank=True, related_name="targeted_by_events")
    target_kw = models.DecimalField("target kW", max_digits=12, decimal_places=3, null=True, blank=True)
    overrides_rules = models.BooleanField(default=False, editable=False,
                                          help_text="Emergency event scheduled over a participation rule (audited).")
    override_reason = models.CharField(max_length=500, blank=True, editable=False)
    cancel_reason = models.CharField(max_length=500, blank=True, editable=False)
    reserved_at = models.DateTimeField(null=True, blank=True, editable=False)
    forecast_kw = models.DecimalField(
        "forecast kW", max_digits=12, decimal_places=3, null=True, blank=True, editable=False,
        help_text="Available kW forecast when the event was reserved (settlement.forecast), to compare with the "
                  "delivered kW drop.")
    settlement_handed_off_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-start", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="event_end_after_start",
                                   violation_error_message="end must be after start."),
            models.CheckConstraint(condition=Q(notification_at__lte=F("start")), name="event_notified_before_start",
                                   violation_error_message="notification_at must be at or before start."),
        ]
        indexes = [models.Index(fields=["status", "start"], name="event_status_start_idx"),
                   models.Index(fields=["program", "start"], name="event_program_start_idx")]

    # What ``__str__`` reads beyond the row: the admin loads it with the objects (``cpm.base.admintime``).
    name_needs = ("program",)

    def __str__(self) -> str:
        # The program's zone when the program is loaded (lists select it); otherwise UTC, labelled: no query here.
        program = self.program if Event.program.is_cached(self) else None
        if program is not None:
            return f"{self.name} ({format_local(self.start, program.time_zone)})"
        return f"{self.name} ({self.start.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"

    @property
    def duration_hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0


class EventRevision(models.Model):
    """A snapshot of an event as it was before a modification (revision numbers increase by one)."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    snapshot = models.JSONField()
    changed_at = models.DateTimeField()
    changed_by = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["event", "revision"]
        constraints = [models.UniqueConstraint(fields=["event", "revision"], name="event_revision_unique")]

    def __str__(self) -> str:
        return f"{self.event.name} revision {self.revision}"


class Unavailability(models.Model):
    """A customer-declared period ``[start, end)`` (UTC) when a device (or a whole service point) must not be called."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="unavailabilities")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["start"]
        verbose_name_plural = "unavailabilities"
        constraints = [models.CheckConstraint(condition=Q(end__gt=F("start")), name="unavailability_end_after_start")]

    def __str__(self) -> str:
        tz = self.enrollment.program.time_zone
        return (f"{self.device or self.enrollment} unavailable {format_local(self.start, tz)} to "
                f"{format_local(self.end, tz)}")


class Reservation(models.Model):
    """The reservation ledger: one decision per (event, candidate subscription), RESERVED or the skip reason.

    Re-running reservation replaces decisions of the same event (idempotent); it answers "why was my device (not)
    called?".
    """

    # db_index=False where a composite index leads with the column (no second index to maintain on every insert),
    # and on the subscription, second in the (enrollment, subscription) index: a subscription is of one enrollment.
    # db_constraint=False on every key: the database checks them set-based, once per statement over all its rows
    # (``cpm.base.setkeys``, migration 0010), not with one trigger per row; subscription and
    # enrollment as ONE key, (subscription_id, enrollment_id) -> the subscription's (id, enrollment_id): the
    # enrollment must be the subscription's own (issue 20).
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="reservations", db_index=False,
                              db_constraint=False)
    subscription = models.ForeignKey(ProgramSubscription, on_delete=models.CASCADE, related_name="reservations",
                                     db_index=False, db_constraint=False)
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="reservations",
                                   db_index=False, db_constraint=False)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="reservations",
                               db_constraint=False)
    service_point = models.ForeignKey(ServicePoint, on_delete=models.CASCADE, related_name="reservations",
                                      db_constraint=False)
    decision = models.CharField(max_length=24, choices=ReservationDecision.choices)
    detail = models.CharField(max_length=300, blank=True, help_text="Plain-language explanation with numbers.")
    capacity_kw = models.DecimalField("capacity kW", max_digits=9, decimal_places=3, default=0)
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["event", "decision", "id"]
        constraints = [models.UniqueConstraint(fields=["event", "subscription"], name="reservation_unique_candidate")]
        indexes = [models.Index(fields=["event", "decision"], name="reservation_event_decision_idx"),
                   # An enrollment's rows, and a subscription's within its enrollment: ONE index where there were two
                   # (enrollment) and (subscription) (migration 0016). The key (subscription, enrollment) is checked
                   # through it when a subscription is deleted (``cpm.base.setkeys``); a read by subscription alone
                   # names its enrollment too (``ReservationFilterSet``). See ``Participation``.
                   models.Index(fields=["enrollment", "subscription"], name="reservation_enrol_sub_idx"),
                   # The few rows of events an enrollment was called for and missed (offline, declared unavailable,
                   # released): what season-end incentives read per chunk of accounts, never the whole ledger
                   # (``settlement.services.customer_settlement._missed_events``).
                   models.Index(fields=["enrollment"], name="reservation_missed_idx",
                                condition=Q(decision__in=["offline", "unavailable", "released"]))]

    def __str__(self) -> str:
        return f"{self.device or self.service_point} {self.get_decision_display().lower()} for {self.event.name}"


class Participation(models.Model):
    """A reserved participant's part in an event. ``start``/``end`` copy the event window so the database can refuse
    a device held by two overlapping events (set-based exclusion on PostgreSQL, ``cpm.base.setexclusion``, migration
    0011; the service check elsewhere)."""

    # db_index=False where a composite index leads with the column (no second index to maintain on every insert),
    # and on the subscription, second in the (enrollment, subscription) index: a subscription is of one enrollment.
    # Every key checked set-based by the database, as on ``Reservation``.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="participations", db_index=False,
                              db_constraint=False)
    subscription = models.ForeignKey(ProgramSubscription, on_delete=models.PROTECT, related_name="participations",
                                     db_index=False, db_constraint=False)
    enrollment = models.ForeignKey(Enrollment, on_delete=models.PROTECT, related_name="participations",
                                   db_index=False, db_constraint=False)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.PROTECT, related_name="participations",
                               db_index=False, db_constraint=False)
    service_point = models.ForeignKey(ServicePoint, on_delete=models.PROTECT, related_name="participations",
                                      db_index=False, db_constraint=False)
    status = models.CharField(max_length=16, choices=ParticipationStatus.choices,
                              default=ParticipationStatus.RESERVED, editable=False)
    start = models.DateTimeField()
    end = models.DateTimeField()
    opted_out_at = models.DateTimeField(null=True, blank=True)
    outcome_revision = models.PositiveIntegerField(null=True, blank=True, help_text="Event revision of the outcome.")
    outcome_reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event", "id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "subscription"], name="participation_unique_per_event"),
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="participation_end_after_start"),
        ]
        indexes = [models.Index(fields=["-start", "id"], name="participation_start_desc_idx"),
                   # An enrollment's participations (its history, read per span by the reservation's limits), and a
                   # subscription's within its enrollment (the key (subscription, enrollment) checked when a
                   # subscription is deleted): ONE index where there were two, (enrollment) and (subscription)
                   # (migration 0016), each reserved device adding an entry at a random page of both.
                   models.Index(fields=["enrollment", "subscription"], name="participation_enrol_sub_idx"),
                   models.Index(fields=["service_point", "start"], name="participation_sp_start_idx"),
                   # A device's rows by (device, end): what the no-overlap check probes (the live rows ending after
                   # a new row starts, migration 0011), what deleting a device checks (``cpm.base.setkeys``), and
                   # every read of a device's participations. ONE index for all three (migration 0015): a second
                   # one on (device, start) cost 6-8 s of PostgreSQL CPU in a reservation of 1,000,000 devices,
                   # its inserts landing at random pages of a table holding every past event (BENCHMARKS.md,
                   # 2026-12-07, fourteenth session: alternated pairs).
                   models.Index(fields=["device", "end"], name="participation_device_end_idx"),
                   # The live rows of device-less (service-point) participations by (service point, end): what
                   # their no-overlap check probes (migration 0011).
                   models.Index(fields=["service_point", "end"], name="participation_sp_live_idx",
                                condition=Q(device__isnull=True) & ~Q(status="cancelled"))]

    name_needs = ("event__program",)  # ``__str__`` names the event (``Event.name_needs``)

    def __str__(self) -> str:
        return f"{self.device or self.service_point} in {self.event}"

    @property
    def minutes_participated(self) -> float:
        """Minutes of the event window before an opt-out (the whole window otherwise)."""
        stop = self.opted_out_at if self.opted_out_at and self.opted_out_at < self.end else self.end
        return max(0.0, (stop - self.start).total_seconds() / 60.0)


class OptOut(models.Model):
    """An opt-out of a participation, through a channel, at a time (counted against the allowance)."""

    participation = models.OneToOneField(Participation, on_delete=models.CASCADE, related_name="opt_out")
    channel = models.CharField(max_length=20, choices=OptOutChannel.choices)
    at = models.DateTimeField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reason = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"Opt-out of {self.participation} ({self.get_channel_display()})"


class DispatchMessage(models.Model):
    """What was sent to one aggregator for one event revision (dispatch, modification or cancellation)."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="dispatch_messages")
    aggregator = models.ForeignKey(Aggregator, on_delete=models.CASCADE, related_name="dispatch_messages")
    kind = models.CharField(max_length=8, choices=DispatchKind.choices)
    revision = models.PositiveIntegerField()
    payload = models.JSONField()
    delivery_status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["event", "revision", "aggregator"]
        constraints = [models.UniqueConstraint(fields=["event", "aggregator", "kind", "revision"],
                                               condition=~Q(kind=DispatchKind.RELEASE),
                                               name="dispatch_message_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.event.name} to {self.aggregator} (revision {self.revision})"
