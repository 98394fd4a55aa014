"""Customer messages as records, contact preferences, and each program's templates and sending policy.

Instants are UTC; quiet hours and weeks are read in the program's IANA zone (``rules``).
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import F, Q

from enrollments.models import Customer, Enrollment
from events.models import Event
from programs.models import Program

from .choices import Channel, ContactChoice, MessageKind, MessageStatus


class ContactPreference(models.Model):
    """How a customer wants to hear from the utility: for every program (``program`` empty) or for one program
    (which wins over the general one). No preference: e-mail if the customer has an address, else SMS if a phone."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contact_preferences")
    program = models.ForeignKey(Program, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=8, choices=ContactChoice.choices)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["customer", "program"]
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=Q(program__isnull=True),
                                    name="contact_preference_one_general"),
            models.UniqueConstraint(fields=["customer", "program"], condition=Q(program__isnull=False),
                                    name="contact_preference_one_per_program"),
            models.CheckConstraint(condition=Q(channel__in=ContactChoice.values), name="contact_preference_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.customer}: {self.get_channel_display()}" + (f" for {self.program}" if self.program_id else "")


class NotificationPolicy(models.Model):
    """A program's sending rules. Without one, the defaults of the fields apply (``rules.Policy``).

    Times of day are local wall-clock in the program's zone; the quiet window may run over midnight
    (``quiet_start`` 21:00, ``quiet_end`` 08:00: nothing is sent from 21:00 to 08:00 local).
    """

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="notification_policy")
    notice_lead_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Event notice this long before the start; empty = the participation "
                                         "rule's minimum notice, else the event's notification time.")
    reminder_lead_minutes = models.PositiveIntegerField(
        null=True, blank=True, default=60, help_text="Reminder this long before the start; empty = no reminder.")
    urgent_lead_minutes = models.PositiveIntegerField(
        default=30, help_text="A notice or reminder due in quiet hours waits for the morning unless that leaves "
                              "less than this before the start; then it goes at start minus this (or at once).")
    quiet_start = models.TimeField(default=dt.time(21, 0), help_text="Local time quiet hours begin.")
    quiet_end = models.TimeField(default=dt.time(8, 0), help_text="Local time quiet hours end (morning window).")
    weekly_cap = models.PositiveIntegerField(
        null=True, blank=True, default=5,
        help_text="At most this many messages per customer per local week (Monday to Sunday); reminders and "
                  "summaries beyond it are not sent. Empty = no cap.")
    opt_out_link_hours = models.PositiveIntegerField(default=72, help_text="An opt-out link expires after this.")
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "notification policies"
        constraints = [models.CheckConstraint(condition=~Q(quiet_start=F("quiet_end")),
                                              name="policy_quiet_window_not_empty",
                                              violation_error_message="quiet_start and quiet_end must differ.")]

    def __str__(self) -> str:
        return f"Notification policy of {self.program}"


class MessageTemplate(models.Model):
    """A program's wording of one kind of message (Django template syntax). Without one, ``rendering.DEFAULTS``.

    Variables: ``customer_name``, ``program_name``, ``event_name``, ``event_window`` (local, with the zone),
    ``event_date``, ``event_day_word`` ("today", "tomorrow" or "on", as of sending), ``incentive``, ``opt_out_url``,
    ``opt_out_expires`` (local), ``opt_out_closed`` (local; set instead of the link past the cut-off), ``kwh_avoided``,
    ``credit``,
    ``season_name``, ``season_total``, ``reason``.
    """

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="message_templates")
    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    subject = models.CharField(max_length=200)
    body = models.TextField(help_text="The e-mail text.")
    sms_body = models.CharField(max_length=480, help_text="The SMS text (keep it short: 160 characters a part).")
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["program", "kind"]
        constraints = [models.UniqueConstraint(fields=["program", "kind"], name="message_template_unique_kind")]

    def __str__(self) -> str:
        return f"{self.program.code}: {self.get_kind_display()}"


class Message(models.Model):
    """One message to one customer about one subject (event, enrollment or settlement) of one kind on one channel.

    ``key`` makes it idempotent: the planner inserts with ``ON CONFLICT DO NOTHING`` on it, so a replayed tick or
    task never creates (or sends) a second one. ``due_at`` is when it may go (lead time and quiet hours applied).
    ``subject``/``body`` are what was rendered at sending; ``provider_id`` is the provider's message id.
    """

    key = models.CharField(max_length=160, unique=True)
    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=12, choices=MessageStatus.choices, default=MessageStatus.QUEUED,
                              editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="messages")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False)
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              db_index=False)
    enrollment = models.ForeignKey(Enrollment, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    subject_ref = models.CharField(max_length=40, blank=True,
                                   help_text="Settlement record the message reports on (e.g. cs:12).")
    data = models.JSONField(default=dict, blank=True, help_text="Figures the message reports (kWh, $).")
    recipient = models.CharField(max_length=254, blank=True, help_text="Address or number it was sent to.")
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    due_at = models.DateTimeField(help_text="UTC instant it may be sent (lead time and quiet hours applied).")
    due_note = models.CharField(max_length=200, blank=True, help_text="Why it is due then, in words.")
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    detail = models.CharField(max_length=500, blank=True, help_text="Why it failed, bounced or was not sent.")
    link_used_at = models.DateTimeField(null=True, blank=True, help_text="When its opt-out link was used.")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-due_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=MessageStatus.values), name="message_status_valid"),
            models.CheckConstraint(condition=~Q(status=MessageStatus.SENT) | Q(sent_at__isnull=False),
                                   name="message_sent_has_time"),
            models.CheckConstraint(condition=Q(event__isnull=False) | Q(enrollment__isnull=False)
                                   | ~Q(subject_ref=""), name="message_has_subject"),
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="message_status_due_idx"),
                   models.Index(fields=["customer", "-due_at"], name="message_customer_idx"),
                   models.Index(fields=["event", "kind"], name="message_event_kind_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_channel_display()}) to customer {self.customer_id}"


class PlanMark(models.Model):
    """What the planner already planned for a subject (``scope``: ``event:12:notices``), as of ``stamp`` (e.g. the
    event's ``reserved_at``): the tick skips a subject whose stamp has not changed, instead of re-reading every
    recipient each minute. Only an optimisation: the message keys keep planning idempotent without it."""

    scope = models.CharField(max_length=80, unique=True)
    stamp = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return self.scope
