"""Kinds and statuses of the events app, with the allowed transitions."""

from django.db import models


class EventCategory(models.TextChoices):
    ECONOMIC = "economic", "Economic"
    RELIABILITY = "reliability", "Reliability"
    EMERGENCY = "emergency", "Emergency"
    TEST = "test", "Test"


# Priority of overlapping events: the category first (higher wins), then the program's ``event_priority``.
CATEGORY_RANK: dict[str, int] = {
    EventCategory.EMERGENCY: 3,
    EventCategory.RELIABILITY: 2,
    EventCategory.ECONOMIC: 1,
    EventCategory.TEST: 0,
}


class EventDirection(models.TextChoices):
    REDUCE = "reduce", "Reduce load"
    INCREASE = "increase", "Increase load"


# How the ledger names an event's direction ("overlaps a load-increase event ... (opposite direction)").
DIRECTION_WORDS: dict[str, str] = {EventDirection.REDUCE: "load-reduction", EventDirection.INCREASE: "load-increase"}


class EventStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    DISPATCHED = "dispatched", "Dispatched"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


EVENT_TRANSITIONS: dict[str, frozenset[str]] = {
    EventStatus.DRAFT: frozenset({EventStatus.SCHEDULED, EventStatus.CANCELLED}),
    EventStatus.SCHEDULED: frozenset({EventStatus.DISPATCHED, EventStatus.CANCELLED}),
    EventStatus.DISPATCHED: frozenset({EventStatus.ACTIVE, EventStatus.CANCELLED}),
    EventStatus.ACTIVE: frozenset({EventStatus.COMPLETED, EventStatus.CANCELLED}),
    EventStatus.COMPLETED: frozenset(),
    EventStatus.CANCELLED: frozenset(),
}

# Statuses of events that count toward limits, opt-out shares and payments.
COUNTED_EVENT_STATUSES = (
    EventStatus.SCHEDULED,
    EventStatus.DISPATCHED,
    EventStatus.ACTIVE,
    EventStatus.COMPLETED,
)


class ReservationDecision(models.TextChoices):
    """One row per candidate in the reservation ledger: RESERVED, or why not."""

    RESERVED = "reserved", "Reserved"
    DAY_LIMIT = "day_limit", "Daily event limit reached"
    WEEK_LIMIT = "week_limit", "Weekly event limit reached"
    SEASON_LIMIT = "season_limit", "Season event limit reached"
    HOURS_LIMIT = "hours_limit", "Season event-hours limit reached"
    DAY_HOURS_LIMIT = "day_hours_limit", "Daily event-hours limit reached"
    REST = "rest", "Minimum rest between events not met"
    CONSECUTIVE_DAYS = "consecutive_days", "Maximum consecutive event days reached"
    OVERLAP = "overlap", "Already reserved for an overlapping event"
    OFFLINE = "offline", "Device offline"
    UNAVAILABLE = "unavailable", "Customer declared unavailability"
    OPT_OUT_ALLOWANCE_USED = "opt_out_allowance_used", "Opt-out allowance used"
    TARGET_MET = "target_met", "Target kW already met"
    NOT_ELIGIBLE = "not_eligible", "Not eligible (enrollment, device status or targeting)"
    NO_INCENTIVE = "no_incentive", "Program declines events that carry no incentive"
    # Reserved, then released: the enrollment or subscription ended, the device was removed, replaced or set
    # inactive, the customer declared unavailability, the dispatch re-check found it no longer valid, or a
    # higher-priority overlapping event took the device (the detail says which, in words).
    RELEASED = "released", "Released after reservation"


class ParticipationStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    DISPATCHED = "dispatched", "Dispatched"
    PARTICIPATED = "participated", "Participated"
    OPTED_OUT = "opted_out", "Opted out"
    NON_RESPONSIVE = "non_responsive", "Non-responsive"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


PARTICIPATION_TRANSITIONS: dict[str, frozenset[str]] = {
    ParticipationStatus.RESERVED: frozenset({ParticipationStatus.DISPATCHED, ParticipationStatus.OPTED_OUT,
                                             ParticipationStatus.CANCELLED}),
    ParticipationStatus.DISPATCHED: frozenset({ParticipationStatus.PARTICIPATED, ParticipationStatus.OPTED_OUT,
                                               ParticipationStatus.NON_RESPONSIVE, ParticipationStatus.FAILED,
                                               ParticipationStatus.CANCELLED}),
    ParticipationStatus.PARTICIPATED: frozenset({ParticipationStatus.OPTED_OUT}),
    ParticipationStatus.OPTED_OUT: frozenset(),
    ParticipationStatus.NON_RESPONSIVE: frozenset(),
    ParticipationStatus.FAILED: frozenset(),
    # A reservation run after a modification re-opens a participation an earlier revision cancelled.
    ParticipationStatus.CANCELLED: frozenset({ParticipationStatus.RESERVED, ParticipationStatus.DISPATCHED}),
}


class OptOutChannel(models.TextChoices):
    CSR = "csr", "CSR page"
    PORTAL = "portal", "Customer portal API"
    AGGREGATOR_API = "aggregator_api", "Aggregator API"
    AGGREGATOR_REPORT = "aggregator_report", "Aggregator outcome report"
    DEVICE = "device", "Override at the device"
    NOTICE_LINK = "notice_link", "Opt-out link in a customer notice"
    # Unavailability declared while the event is under way: the participation stops then (``release``).
    UNAVAILABILITY = "unavailability", "Unavailability declared during the event"


class DispatchKind(models.TextChoices):
    DISPATCH = "dispatch", "Dispatch"
    MODIFY = "modify", "Modification"
    CANCEL = "cancel", "Cancellation"
    # Devices released from an event already sent (enrollment ended, device removed or inactive, unavailability):
    # one message per release, so several per (event, aggregator, revision) are allowed.
    RELEASE = "release", "Release of devices"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed after retries"
    POLL_ONLY = "poll_only", "No webhook; aggregator polls"
