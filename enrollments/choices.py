"""Statuses and codes of the enrollments app, with the allowed transitions."""

from django.db import models


class AccountStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


ACCOUNT_TRANSITIONS: dict[str, frozenset[str]] = {
    AccountStatus.OPEN: frozenset({AccountStatus.CLOSED}),
    AccountStatus.CLOSED: frozenset(),
}


class EnrollmentStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    UNENROLLED = "unenrolled", "Unenrolled"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


OPEN_ENROLLMENT_STATUSES = (
    EnrollmentStatus.REQUESTED,
    EnrollmentStatus.PENDING_APPROVAL,
    EnrollmentStatus.ACTIVE,
    EnrollmentStatus.SUSPENDED,
)

ENROLLMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    EnrollmentStatus.REQUESTED: frozenset({EnrollmentStatus.PENDING_APPROVAL, EnrollmentStatus.ACTIVE,
                                           EnrollmentStatus.REJECTED, EnrollmentStatus.CANCELLED}),
    EnrollmentStatus.PENDING_APPROVAL: frozenset({EnrollmentStatus.ACTIVE, EnrollmentStatus.REJECTED,
                                                  EnrollmentStatus.CANCELLED}),
    EnrollmentStatus.ACTIVE: frozenset({EnrollmentStatus.SUSPENDED, EnrollmentStatus.UNENROLLED}),
    EnrollmentStatus.SUSPENDED: frozenset({EnrollmentStatus.ACTIVE, EnrollmentStatus.UNENROLLED}),
    EnrollmentStatus.UNENROLLED: frozenset(),
    EnrollmentStatus.REJECTED: frozenset(),
    EnrollmentStatus.CANCELLED: frozenset(),
}


class EnrollmentSource(models.TextChoices):
    CSR = "csr", "Customer service representative"
    SELF_SERVICE = "self_service", "Self-service portal"
    AGGREGATOR_API = "aggregator_api", "Aggregator API"
    BULK_IMPORT = "bulk_import", "Bulk import"


class ReasonCode(models.TextChoices):
    CUSTOMER_REQUEST = "customer_request", "Customer request"
    ACCOUNT_CLOSED = "account_closed", "Account closed / moved out"
    INELIGIBLE_RATE = "ineligible_rate", "Ineligible rate"
    DEVICE_REMOVED = "device_removed", "Device removed"
    LIFE_SUPPORT = "life_support", "Life support"
    PROGRAM_CLOSED = "program_closed", "Program closed"
    OTHER = "other", "Other"
