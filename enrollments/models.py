"""Who takes part: customers, accounts, service agreements, enrollments and program subscriptions.

Dates are local calendar dates in the program's zone; periods are half-open ``[start, end)``.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from cpm.base.text import fold
from devices.models import Device, ServicePoint
from programs.models import Program

from .choices import OPEN_ENROLLMENT_STATUSES, AccountStatus, EnrollmentSource, EnrollmentStatus, ReasonCode

NAME_KEY_LENGTH = 255
NAME_KEYS = {"first_name": "first_name_key", "last_name": "last_name_key"}


def name_key(name: str) -> str:
    """The search key of a customer's first or last name: ``cpm.base.text.fold`` (no accents, case folded, one
    space), cut to ``NAME_KEY_LENGTH`` characters (the column's size; a query is cut the same way, so a prefix of a
    very long name still matches). ``name_key("Núñez") == name_key("NUNEZ") == "nunez"``."""
    return fold(name or "")[:NAME_KEY_LENGTH]


class CustomerQuerySet(models.QuerySet):
    """Writes that bypass ``Customer.save`` keep the name keys too: ``bulk_create`` and ``bulk_update`` fill them;
    ``update`` sets the key of a name given as a plain string and raises ``TypeError`` for a name given as an
    expression without its key (the key is computed in Python, not by the database)."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            obj.fill_name_keys()
        update_fields = kwargs.get("update_fields")  # an upsert (update_conflicts) updates a name's key with it
        if update_fields and set(NAME_KEYS) & set(update_fields):
            kwargs["update_fields"] = list(dict.fromkeys([*update_fields, *NAME_KEYS.values()]))
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs, fields = list(objs), list(fields)
        keys = [NAME_KEYS[f] for f in NAME_KEYS if f in fields and NAME_KEYS[f] not in fields]
        if keys:
            for obj in objs:
                obj.fill_name_keys()
        return super().bulk_update(objs, fields + keys, *args, **kwargs)

    def update(self, **kwargs):
        for field, key in NAME_KEYS.items():
            if field in kwargs and key not in kwargs:  # (bulk_update passes both, as CASE expressions)
                if not isinstance(kwargs[field], str):
                    raise TypeError(f"Customer {field} must be updated with a string (its search key {key} is "
                                    f"computed in Python), not {kwargs[field]!r}.")
                kwargs[key] = name_key(kwargs[field])
        return super().update(**kwargs)


class Customer(models.Model):
    """A CIS person. ``first_name_key`` and ``last_name_key`` are the names folded for the CSR search
    (``name_key``: no accents, case folded), kept by ``save`` and the queryset's bulk writes; the seeder that
    COPYs customers (``bench.seed``) fills them with ``name_key`` too."""

    cis_person_id = models.CharField(max_length=64, unique=True, help_text="CIS person id.")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, db_index=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    life_support = models.BooleanField(default=False, help_text="Life-support / medical equipment on file.")
    first_name_key = models.CharField(max_length=NAME_KEY_LENGTH, blank=True, editable=False,
                                      help_text="first_name folded for search (no accents, case folded).")
    last_name_key = models.CharField(max_length=NAME_KEY_LENGTH, blank=True, editable=False,
                                     help_text="last_name folded for search (no accents, case folded).")

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [
            # Prefix search (``startswith`` is ``LIKE 'x%'``): pattern ops serve it whatever the collation.
            models.Index(fields=["last_name_key"], name="customer_last_name_key_idx",
                         opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["first_name_key"], name="customer_first_name_key_idx",
                         opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def save(self, **kwargs):
        """Save with the name keys of the names being saved (added to ``update_fields`` when a name is in it)."""
        self.fill_name_keys()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and set(NAME_KEYS) & set(update_fields):
            kwargs["update_fields"] = {*update_fields, *NAME_KEYS.values()}
        super().save(**kwargs)

    def fill_name_keys(self) -> None:
        """Set ``first_name_key`` and ``last_name_key`` from the names (``name_key``)."""
        self.first_name_key = name_key(self.first_name)
        self.last_name_key = name_key(self.last_name)


class Account(models.Model):
    account_number = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="accounts")
    status = models.CharField(max_length=8, choices=AccountStatus.choices, default=AccountStatus.OPEN, editable=False)
    opened_on = models.DateField()
    closed_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["account_number"]
        constraints = [
            models.CheckConstraint(condition=Q(closed_on__isnull=True) | Q(closed_on__gte=F("opened_on")),
                                   name="account_period_ordered"),
            models.CheckConstraint(
                condition=Q(status=AccountStatus.OPEN, closed_on__isnull=True)
                | Q(status=AccountStatus.CLOSED, closed_on__isnull=False),
                name="account_closed_has_date"),
        ]

    def __str__(self) -> str:
        return self.account_number


class ServiceAgreement(models.Model):
    """An account served at a service point for local dates ``[start_date, end_date)``."""

    agreement_id = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="service_agreements")
    service_point = models.ForeignKey(ServicePoint, on_delete=models.PROTECT, related_name="service_agreements")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["service_point", "start_date"]
        constraints = [
            models.CheckConstraint(condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                                   name="agreement_period_ordered",
                                   violation_error_message="The end date is before the start date."),
            models.UniqueConstraint(fields=["service_point"], condition=Q(end_date__isnull=True),
                                    name="one_open_agreement_per_service_point",
                                    violation_error_message="The service point already has an open-ended agreement "
                                                            "(one at a time): end that one first."),
        ]

    def __str__(self) -> str:
        return self.agreement_id


class Enrollment(models.Model):
    """An account at a service point in a program. Status changes only through ``enrollments.services``."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="enrollments")
    service_point = models.ForeignKey(ServicePoint, on_delete=models.PROTECT, related_name="enrollments")
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="enrollments")
    status = models.CharField(max_length=20, choices=EnrollmentStatus.choices, default=EnrollmentStatus.REQUESTED,
                              editable=False)
    source = models.CharField(max_length=20, choices=EnrollmentSource.choices)
    external_transaction_id = models.CharField(max_length=128, null=True, blank=True,
                                               help_text="Idempotency key of the requesting channel.")
    idempotency_scope = models.CharField(
        max_length=40, blank=True, default="", db_default="", editable=False,
        help_text="Whose key space the external transaction id is in: 'aggregator:<id>' for an aggregator's API "
                  "client (each aggregator numbers its own transactions), empty for the utility's channels.")
    requested_at = models.DateTimeField()
    effective_date = models.DateField(null=True, blank=True, help_text="First local day enrolled.")
    end_date = models.DateField(null=True, blank=True, help_text="First local day no longer enrolled.")
    reason_code = models.CharField(max_length=20, choices=ReasonCode.choices, blank=True)
    reason_text = models.CharField(max_length=500, blank=True)
    answers = models.JSONField(default=dict, blank=True, help_text="Qualification answers by question code.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["program", "service_point"],
                                    condition=Q(status__in=OPEN_ENROLLMENT_STATUSES),
                                    name="one_open_enrollment_per_program_service_point",
                                    violation_error_message="This service point is already enrolled in the program."),
            models.UniqueConstraint(fields=["source", "idempotency_scope", "external_transaction_id"],
                                    condition=Q(external_transaction_id__isnull=False),
                                    name="enrollment_external_transaction_unique"),
            models.CheckConstraint(condition=Q(end_date__isnull=True) | Q(effective_date__isnull=True)
                                   | Q(end_date__gte=F("effective_date")), name="enrollment_period_ordered"),
        ]
        indexes = [models.Index(fields=["program", "status"], name="enrollment_program_status_idx"),
                   models.Index(fields=["-requested_at", "-id"], name="enrollment_requested_desc_idx")]

    def __str__(self) -> str:
        return f"{self.account} in {self.program} at service point {self.service_point}"


class ProgramSubscription(models.Model):
    """An enrollment's device for local dates ``[start_date, end_date)``; ``device`` empty for service-point-only
    programs. ``exclusive`` copies "program does not allow co-enrollment" so the database can hold the rule
    "at most one open exclusive subscription per device". On PostgreSQL, ``(id, enrollment_id)`` is also a unique
    key that the reservation ledger and participations reference with one composite foreign key (events migration
    0008)."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="subscriptions")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=ReasonCode.choices, blank=True)
    exclusive = models.BooleanField(default=True)

    class Meta:
        ordering = ["enrollment", "start_date", "id"]
        constraints = [
            models.UniqueConstraint(fields=["device"], condition=Q(end_date__isnull=True, exclusive=True),
                                    name="one_open_exclusive_subscription_per_device",
                                    violation_error_message="This device is already subscribed in another program."),
            models.UniqueConstraint(fields=["enrollment", "device"], condition=Q(end_date__isnull=True),
                                    name="one_open_subscription_per_enrollment_device"),
            models.CheckConstraint(condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                                   name="subscription_period_ordered"),
        ]

    def __str__(self) -> str:
        what = self.device if self.device_id else f"service point {self.enrollment.service_point}"
        return f"{what} in {self.enrollment.program} from {self.start_date}"
