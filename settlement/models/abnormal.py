"""Abnormal days: outages and other days whose load is not a fair sample of normal use, left out of baseline day
selection (like event days) by settlement."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from devices.models import ServicePoint
from programs.models import Program
from settlement.choices import AbnormalDayKind, AbnormalDayScope


class AbnormalDay(models.Model):
    """One recorded abnormal day (an outage, abnormal operation, ...) for a scope.

    ``day`` is a local date in the calendar of the program being settled (the days a baseline looks at are the
    program's local days; a service point has no calendar of its own). Scope and target: ``service_point`` (that
    service point), ``feeder`` / ``substation`` / ``territory`` (``network_id`` = the ``Premise.feeder`` /
    ``substation`` / ``service_territory`` code: every service point at a premise there), ``program`` (every service
    point settled in that program). Written through ``settlement.services.abnormal`` only.
    """

    day = models.DateField(help_text="Local date (the settled program's calendar).")
    scope = models.CharField(max_length=16, choices=AbnormalDayScope.choices)
    service_point = models.ForeignKey(ServicePoint, null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="abnormal_days")
    program = models.ForeignKey(Program, null=True, blank=True, on_delete=models.CASCADE, related_name="abnormal_days")
    network_id = models.CharField(max_length=64, blank=True,
                                  help_text="Feeder, substation or territory code (network scopes).")
    kind = models.CharField(max_length=16, choices=AbnormalDayKind.choices, default=AbnormalDayKind.OUTAGE)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField()

    class Meta:
        app_label = "settlement"
        ordering = ["-day", "scope", "id"]
        indexes = [models.Index(fields=["day"], name="abnormal_day_day_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(scope=AbnormalDayScope.SERVICE_POINT, service_point__isnull=False, program__isnull=True,
                             network_id="")
                           | Q(scope=AbnormalDayScope.PROGRAM, program__isnull=False, service_point__isnull=True,
                               network_id="")
                           | (Q(scope__in=[AbnormalDayScope.FEEDER, AbnormalDayScope.SUBSTATION,
                                           AbnormalDayScope.TERRITORY], service_point__isnull=True,
                                program__isnull=True) & ~Q(network_id=""))),
                name="abnormal_day_scope_target",
                violation_error_message="The target must match the scope: a service point, a program, or a "
                                        "feeder/substation/territory code."),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.get_kind_display().lower()} ({self.target_label})"

    @property
    def target_label(self) -> str:
        if self.scope == AbnormalDayScope.SERVICE_POINT:
            return f"service point {self.service_point.service_point_id if self.service_point_id else '?'}"
        if self.scope == AbnormalDayScope.PROGRAM:
            return f"program {self.program.code if self.program_id else '?'}"
        return f"{self.scope} {self.network_id}"
