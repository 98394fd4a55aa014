"""Kinds and statuses of the settlement app."""

from django.db import models

from .meterdata.choices import Channel  # noqa: F401  (meter data owns it; re-exported for settlement)


class MeasurementStatus(models.TextChoices):
    OK = "ok", "Measured"
    INSUFFICIENT_DATA = "insufficient_data", "Insufficient interval data"
    ERROR = "error", "Cannot be settled (implausible data)"


class EventSettlementStatus(models.TextChoices):
    """PENDING (awaiting data or prices) -> CALCULATED (after-event programs) or DEFERRED (season-end programs)
    -> APPROVED (money posted as settlement lines). A correction re-opens an APPROVED settlement (back to
    CALCULATED/DEFERRED, revision + 1); approving it again posts a reversal of the old lines and the new lines. A
    DEFERRED one re-opened after its season settlement was approved is carried (the difference only) by the next
    customer settlement of its account, an ADJUSTMENT of the month when no other comes, and approved with it.
    REVERSED: approved money fully reversed by an operator (terminal)."""

    PENDING = "pending", "Pending"
    CALCULATED = "calculated", "Calculated"
    DEFERRED = "deferred", "Deferred to season end"
    APPROVED = "approved", "Approved"
    REVERSED = "reversed", "Reversed"


EVENT_SETTLEMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    EventSettlementStatus.PENDING: frozenset({EventSettlementStatus.CALCULATED, EventSettlementStatus.DEFERRED}),
    EventSettlementStatus.CALCULATED: frozenset({EventSettlementStatus.APPROVED, EventSettlementStatus.PENDING}),
    EventSettlementStatus.DEFERRED: frozenset({EventSettlementStatus.APPROVED, EventSettlementStatus.PENDING}),
    EventSettlementStatus.APPROVED: frozenset({EventSettlementStatus.CALCULATED, EventSettlementStatus.DEFERRED,
                                               EventSettlementStatus.REVERSED}),
    EventSettlementStatus.REVERSED: frozenset(),
}


class CustomerSettlementStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CALCULATED = "calculated", "Calculated"
    APPROVED = "approved", "Approved"
    EXPORTED = "exported", "Exported to billing"


CUSTOMER_SETTLEMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    CustomerSettlementStatus.PENDING: frozenset({CustomerSettlementStatus.CALCULATED}),
    CustomerSettlementStatus.CALCULATED: frozenset({CustomerSettlementStatus.APPROVED}),
    CustomerSettlementStatus.APPROVED: frozenset({CustomerSettlementStatus.EXPORTED}),
    # Billing rejected the batch it was exported in (``bill_credit_export_reject``): approved again, for the next.
    CustomerSettlementStatus.EXPORTED: frozenset({CustomerSettlementStatus.APPROVED}),
}


class PeriodKind(models.TextChoices):
    BILLING_PERIOD = "billing_period", "Billing period"
    SEASON_END = "season_end", "Season end"
    FINAL_BILL = "final_bill", "Final bill (unenrollment or account closure)"
    # A season-end program's corrections after their season settlement was approved (the difference only, no
    # incentives): ``customer_settlements_create_due`` starts one batch a month when there is one to carry.
    ADJUSTMENT = "adjustment", "Adjustment (corrections after settlement)"


class LineKind(models.TextChoices):
    """What a settlement line pays (a reversal line keeps the kind of the line it reverses)."""

    PERFORMANCE_KWH = "performance_kwh", "Performance per kWh avoided"
    PER_EVENT = "per_event", "Per-event participation"
    OPT_OUT_PENALTY = "opt_out_penalty", "Opt-out penalty"
    ENROLLMENT_BONUS = "enrollment_bonus", "Enrollment bonus"
    MONTHLY = "monthly", "Monthly incentive"
    SEASONAL = "seasonal", "Seasonal incentive"
    PERFORMANCE_KW = "performance_kw", "Performance per kW drop"
    CAP_ADJUSTMENT = "cap_adjustment", "Season cap adjustment"


# Bill line codes sent to billing, one per line kind (a reversal uses the code of the line it reverses).
LINE_CODES: dict[str, str] = {
    LineKind.PERFORMANCE_KWH: "DRPK",
    LineKind.PER_EVENT: "DREV",
    LineKind.OPT_OUT_PENALTY: "DRPN",
    LineKind.ENROLLMENT_BONUS: "DRBN",
    LineKind.MONTHLY: "DRMO",
    LineKind.SEASONAL: "DRSN",
    LineKind.PERFORMANCE_KW: "DRKW",
    LineKind.CAP_ADJUSTMENT: "DRCP",
}


class BatchKind(models.TextChoices):
    EVENT = "event", "Settle an event"
    EVENT_RECALC = "event_recalc", "Recalculate an event (corrections)"
    SEASON = "season", "Settle a season (customer settlements)"
    CUSTOMER = "customer", "Due customer settlements"


class BatchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
    FAILED = "failed", "Failed"


BATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    BatchStatus.PENDING: frozenset({BatchStatus.RUNNING, BatchStatus.FAILED}),
    BatchStatus.RUNNING: frozenset({BatchStatus.COMPLETED, BatchStatus.COMPLETED_WITH_ERRORS, BatchStatus.FAILED}),
    BatchStatus.COMPLETED: frozenset(),
    BatchStatus.COMPLETED_WITH_ERRORS: frozenset(),
    BatchStatus.FAILED: frozenset(),
}


class ExportStatus(models.TextChoices):
    """CREATED (ready to pull) -> ACKNOWLEDGED (billing loaded it) or REJECTED (billing could not load it: its
    settlements are approved again and go in the next batch; the file is kept as it was sent)."""

    CREATED = "created", "Created (ready to pull)"
    ACKNOWLEDGED = "acknowledged", "Acknowledged by billing"
    REJECTED = "rejected", "Rejected by billing (its credits are exported again)"


EXPORT_TRANSITIONS: dict[str, frozenset[str]] = {
    ExportStatus.CREATED: frozenset({ExportStatus.ACKNOWLEDGED, ExportStatus.REJECTED}),
    ExportStatus.ACKNOWLEDGED: frozenset(),
    ExportStatus.REJECTED: frozenset(),
}


class AbnormalDayScope(models.TextChoices):
    """What an abnormal day covers."""

    SERVICE_POINT = "service_point", "Service point"
    FEEDER = "feeder", "Feeder"
    SUBSTATION = "substation", "Substation"
    TERRITORY = "territory", "Service territory"
    PROGRAM = "program", "Program"


class AbnormalDayKind(models.TextChoices):
    OUTAGE = "outage", "Outage"
    ABNORMAL = "abnormal", "Abnormal operation"
    OTHER = "other", "Other"
