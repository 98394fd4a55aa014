"""Credits: event settlements, settlement lines (the money ledger), customer settlements, bill-credit export batches
and the batch records of settlement jobs.

Money model (documented choice, "-old, +new"): computed amounts live on the settlement (``components``, ``amount``)
and are not money yet. Approving an event settlement *posts* its components as ``SettlementLine`` rows. Posted lines
are never edited or deleted: a correction that changes the amount re-opens the settlement (revision + 1) and, on the
next approval, posts one reversal line per live line (``-old``, ``reverses`` set) followed by the new lines
(``+new``). A customer settlement claims unclaimed lines of its account and program, adds its incentive lines, and is
exported as bill credits; reversal lines are exported as negative lines.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q

from cpm.base.money import format_money
from devices.models import Device, ServicePoint
from enrollments.models import Account, Enrollment
from events.models import Event, Participation
from programs.models import Program, Season

from ..choices import (
    BatchKind,
    BatchStatus,
    CustomerSettlementStatus,
    EventSettlementStatus,
    ExportStatus,
    LineKind,
    MeasurementStatus,
    PeriodKind,
)


class SettlementBatch(models.Model):
    """A settlement job split in chunks of service points (or accounts), with its progress and counts."""

    kind = models.CharField(max_length=16, choices=BatchKind.choices)
    status = models.CharField(max_length=24, choices=BatchStatus.choices, default=BatchStatus.PENDING,
                              editable=False)
    program = models.ForeignKey(Program, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.PROTECT, related_name="settlement_batches")
    season = models.ForeignKey(Season, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateField(null=True, blank=True, help_text="Local date (customer batches).")
    period_end = models.DateField(null=True, blank=True, help_text="Local date, exclusive.")
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    items_total = models.PositiveIntegerField(default=0)
    items_calculated = models.PositiveIntegerField(default=0)
    items_unchanged = models.PositiveIntegerField(default=0)
    items_corrected = models.PositiveIntegerField(default=0, help_text="Approved settlements re-opened.")
    items_pending = models.PositiveIntegerField(default=0, help_text="Insufficient data or missing price.")
    items_failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text=(
        "What could not be settled: {service_point_id, participation_id, error} per service point, "
        "{account_id, error} per account, {error} for a failed chunk (at most 100 kept)."))
    job = models.ForeignKey("cpm.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                            help_text="The job running the batch's chunks (progress, attempts, failure).")
    actor_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "settlement batches"
        constraints = [
            # The first settlement of an event happens once, whoever triggers it (signal, tick, operator).
            models.UniqueConstraint(fields=["event"], condition=Q(kind=BatchKind.EVENT), name="one_event_batch"),
            models.UniqueConstraint(fields=["program", "season"], condition=Q(kind=BatchKind.SEASON),
                                    name="one_season_batch"),
            models.UniqueConstraint(fields=["program", "period_start", "period_end"],
                                    condition=Q(kind=BatchKind.CUSTOMER), name="one_customer_batch_per_period"),
            models.CheckConstraint(condition=Q(chunks_done__lte=models.F("chunks_total")),
                                   name="batch_chunks_done_lte_total"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def progress_percent(self) -> int:
        if not self.chunks_total:
            return 100 if self.status in (BatchStatus.COMPLETED, BatchStatus.COMPLETED_WITH_ERRORS) else 0
        return round(100 * self.chunks_done / self.chunks_total)


class EventSettlement(models.Model):
    """What one participation (service point / device) earned in one event, with the inputs that explain it.

    ``inputs`` keeps the measurement, compactly (written by ``services._settlement_rows``): ``method``, resolved
    baseline ``params``, ``interval_minutes`` (the event's grid; the data's own, finer, for a participation whose
    opt-out cuts an interval of that grid: ``measurement.measure_event``, so two settlements of one event may differ),
    ``start`` (UTC ISO start of the first event-window interval) and, one
    value per event-window interval, the engine's ``baseline_kw``, ``adjusted_baseline_kw``, ``actual_kw`` and
    ``reduction_kwh`` (4 decimals, null = unknown; the same numbers as ``manage.py baseline --json``);
    ``participated`` = ``[0, counted intervals]``; ``selected_days``; ``day_reasons`` = one ``baselines.REASONS``
    code per candidate day from ``first_candidate_day`` backwards (``selectors.event_settlement_days`` expands it);
    ``adjustment`` (applied day-of adjustment), ``detail``, ``minutes_participated``, ``event_minutes``,
    ``participation_status``.
    ``components`` are the computed amounts (not money until approved): ``[{kind, amount, quantity, unit, rate,
    description}]``, amounts as strings in full precision rounded once (``cpm.base.money.round_money``).
    """

    batch = models.ForeignKey(SettlementBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              db_constraint=False)
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="settlements", db_constraint=False)
    participation = models.OneToOneField(Participation, on_delete=models.PROTECT, related_name="settlement",
                                         db_constraint=False)
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    enrollment = models.ForeignKey(Enrollment, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="event_settlements",
                                db_constraint=False)
    service_point = models.ForeignKey(ServicePoint, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_constraint=False)
    status = models.CharField(max_length=12, choices=EventSettlementStatus.choices,
                              default=EventSettlementStatus.PENDING, editable=False)
    measurement_status = models.CharField(max_length=20, choices=MeasurementStatus.choices,
                                          default=MeasurementStatus.OK)
    method = models.CharField(max_length=32, blank=True, help_text="Baseline or measurement method used.")
    kwh_avoided = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    kw_drop_avg = models.DecimalField(max_digits=12, decimal_places=4, default=0,
                                      help_text="kWh avoided / event hours (the whole event window).")
    participation_fraction = models.DecimalField(max_digits=7, decimal_places=6, default=1)
    opted_out = models.BooleanField(default=False)
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0, help_text="Computed total.")
    posted_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0,
                                        help_text="Net of the posted settlement lines (approved money).")
    components = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    explanation = models.TextField(blank=True)
    error = models.TextField(blank=True, default="", db_default="", help_text=(
        "Why this participation could not be settled (implausible meter data); it stays PENDING, no money."))
    fingerprint = models.CharField(max_length=64, blank=True, help_text="Hash of inputs and amounts (idempotency).")
    revision = models.PositiveIntegerField(default=1)
    event_day = models.DateField(help_text="Local date of the event start.")
    calculated_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-event_day", "event", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=EventSettlementStatus.values),
                                   name="event_settlement_status_valid"),
            models.CheckConstraint(condition=Q(participation_fraction__gte=0, participation_fraction__lte=1),
                                   name="event_settlement_fraction_range"),
        ]
        indexes = [models.Index(fields=["event", "status"], name="es_event_status_idx"),
                   models.Index(fields=["account", "program", "event_day"], name="es_account_program_idx"),
                   # the list order (settlement.selectors.event_settlement_list): a page is an index scan
                   models.Index(fields=["-event_day", "-event", "id"], name="es_list_order_idx"),
                   # the few corrections re-opened after their season settlement's approval, which the monthly tick
                   # and every customer settlement chunk look for (``customer_settlement.REOPENED``): a tiny index
                   models.Index(fields=["program", "account"], name="es_reopened_idx",
                                condition=Q(status="deferred", approved_at__isnull=False))]

    def __str__(self) -> str:
        return f"Event settlement #{self.pk}"


class CustomerSettlement(models.Model):
    """An account's credits in a program for a period ``[period_start, period_end)`` (local dates)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="customer_settlements",
                                db_constraint=False)
    # No index of its own: a program's settlements are many, and an index on it tempts the planner, when the
    # statistics lag behind a batch, into scanning all of them instead of using customer_settlement_unique_period.
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_index=False,
                                db_constraint=False)
    season = models.ForeignKey(Season, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_constraint=False)
    period_kind = models.CharField(max_length=16, choices=PeriodKind.choices)
    period_start = models.DateField()
    period_end = models.DateField(help_text="Exclusive local date.")
    status = models.CharField(max_length=12, choices=CustomerSettlementStatus.choices,
                              default=CustomerSettlementStatus.PENDING, editable=False)
    total_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    inputs = models.JSONField(default=dict, blank=True)
    explanation = models.TextField(blank=True)
    batch = models.ForeignKey(SettlementBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              db_constraint=False)
    export_batch = models.ForeignKey("settlement.BillCreditExport", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="customer_settlements", db_constraint=False)
    calculated_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    exported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-period_end", "account", "id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "program", "period_kind", "period_start", "period_end"],
                                    name="customer_settlement_unique_period"),
            models.CheckConstraint(condition=Q(period_end__gt=models.F("period_start")),
                                   name="customer_settlement_period_ordered"),
            models.CheckConstraint(condition=Q(status__in=CustomerSettlementStatus.values),
                                   name="customer_settlement_status_valid"),
            models.CheckConstraint(condition=Q(export_batch__isnull=True) | Q(status=CustomerSettlementStatus.EXPORTED),
                                   name="customer_settlement_export_only_when_exported"),
        ]
        indexes = [models.Index(fields=["status", "program"], name="cs_status_program_idx")]

    def __str__(self) -> str:
        return f"Customer settlement #{self.pk}"

    @property
    def period_last_day(self) -> dt.date:
        """The period's last local day (``period_end`` is exclusive): what a person reads as "to"."""
        return self.period_end - dt.timedelta(days=1)

    @property
    def period_display(self) -> str:
        """The period as a person reads it, both ends inclusive local days: "Jun 1, 2026 - Sep 30, 2026"."""
        return f"{self.period_start:%b} {self.period_start.day}, {self.period_start.year} \u2013 " \
               f"{self.period_last_day:%b} {self.period_last_day.day}, {self.period_last_day.year}"


class SettlementLine(models.Model):
    """One posted amount (the ledger): never edited; a correction adds a reversal line and a new line."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    enrollment = models.ForeignKey(Enrollment, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                   db_constraint=False)
    service_point = models.ForeignKey(ServicePoint, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", db_constraint=False)
    event_settlement = models.ForeignKey(EventSettlement, null=True, blank=True, on_delete=models.PROTECT,
                                         related_name="lines", db_constraint=False)
    customer_settlement = models.ForeignKey(CustomerSettlement, null=True, blank=True, on_delete=models.PROTECT,
                                            related_name="lines")
    kind = models.CharField(max_length=20, choices=LineKind.choices)
    line_code = models.CharField(max_length=16)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    quantity = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True)
    rate = models.DecimalField(max_digits=12, decimal_places=5, null=True, blank=True)
    description = models.CharField(max_length=300, blank=True)
    incentive_key = models.CharField(max_length=80, blank=True,
                                     help_text="Once-only key of an incentive (bonus, month, season) per enrollment; "
                                               "on a season cap line, the season it caps (season-cap:<id>).")
    event_revision = models.PositiveIntegerField(null=True, blank=True)
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="reversed_by", db_constraint=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["enrollment", "incentive_key"],
                                    condition=Q(reverses__isnull=True) & ~Q(incentive_key=""),
                                    name="settlement_line_incentive_once"),
        ]
        indexes = [models.Index(fields=["account", "program", "customer_settlement"], name="line_unclaimed_idx")]

    def __str__(self) -> str:
        return f"Line #{self.pk} {self.get_kind_display()} {format_money(self.amount)}"


class BillCreditExport(models.Model):
    """A bill-credit batch file for billing. ``content`` is stored so a re-download gives the same bytes."""

    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.CREATED,
                              editable=False)
    program = models.ForeignKey(Program, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                help_text="Empty = every program.")
    file_name = models.CharField(max_length=120)
    content = models.TextField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    line_count = models.PositiveIntegerField(default=0)
    settlement_count = models.PositiveIntegerField(default=0)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    created_at = models.DateTimeField()
    created_by_label = models.CharField(max_length=150, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by_label = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.file_name
