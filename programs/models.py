"""Programs: what is offered, to whom, under which participation and incentive rules.

All dates of seasons, enrollment windows and rule effectivity are local calendar dates in the program's IANA zone;
times of day (event windows) are local wall-clock times there.
"""

from __future__ import annotations

import datetime as dt

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Q

from cpm.base.money import format_money, format_rate
from cpm.base.timeutils import format_local

from .choices import (
    AnswerType,
    BaselineMethod,
    DeviceOwnership,
    HolidayCalendar,
    IncentiveBasis,
    IncentiveKind,
    OptOutAllowanceKind,
    OptOutConsequence,
    PerformanceMeasurement,
    ProgramStatus,
    ProgramType,
    SeasonEnrollment,
    SettlementTiming,
)


class Program(models.Model):
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="What the program is, and the published source it follows.")
    program_type = models.CharField(max_length=32, choices=ProgramType.choices)
    time_zone = models.CharField(max_length=64, help_text="IANA zone for local days, windows, seasons, baselines.")
    status = models.CharField(max_length=16, choices=ProgramStatus.choices, default=ProgramStatus.DRAFT,
                              editable=False)
    enrollment_opens_on = models.DateField(null=True, blank=True, help_text="Local date; empty = always open.")
    enrollment_closes_on = models.DateField(null=True, blank=True, help_text="Local date, inclusive.")
    eligible_device_types = models.JSONField(default=list, blank=True, help_text="List of device type codes.")
    eligible_customer_classes = models.JSONField(default=list, blank=True, help_text="Empty = any class.")
    eligible_rate_codes = models.JSONField(default=list, blank=True, help_text="Empty = any rate code.")
    eligible_territories = models.JSONField(default=list, blank=True, help_text="Service territory codes; empty = any.")
    eligible_substations = models.JSONField(default=list, blank=True, help_text="Substation codes; empty = any.")
    eligible_feeders = models.JSONField(default=list, blank=True, help_text="Feeder codes; empty = any.")
    excludes_life_support = models.BooleanField(
        default=True, help_text="Customers with life-support / medical equipment on file may not enroll (the safe "
                                "default: untick only for a program that never curtails their supply).")
    device_ownership = models.CharField(max_length=16, choices=DeviceOwnership.choices,
                                        default=DeviceOwnership.CUSTOMER_OWNED,
                                        help_text="Only customer-owned (BYOD) programs are in scope.")
    requires_device = models.BooleanField(default=True, help_text="False for peak-time rebates on a service point.")
    requires_approval = models.BooleanField(default=False)
    auto_activate = models.BooleanField(
        default=False, help_text="Activate automatically (programs.activate_due task) once enrollment opens.")
    allows_co_enrollment = models.BooleanField(default=False,
                                               help_text="A device may also be subscribed in another program.")
    settlement_timing = models.CharField(max_length=16, choices=SettlementTiming.choices,
                                         default=SettlementTiming.AFTER_EVENT)
    performance_measurement = models.CharField(max_length=20, choices=PerformanceMeasurement.choices,
                                               default=PerformanceMeasurement.METER_BASELINE)
    reported_min_completeness_pct = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)],
        help_text="Aggregator-reported measurement: the least share (percent) of a participation's counted event time "
                  "the reported kW drop must cover, blanks being missing data; below it the participation is not "
                  "settled (insufficient data). 0 = any reported interval is enough.")
    baseline_method = models.CharField(max_length=20, choices=BaselineMethod.choices,
                                       default=BaselineMethod.CAISO_AUTO)
    baseline_params = models.JSONField(default=dict, blank=True,
                                       help_text="Overrides of the preset (x, y, selection, lookback_days, ...).")
    holiday_calendar = models.CharField(max_length=16, choices=HolidayCalendar.choices, default=HolidayCalendar.NERC)
    device_online_threshold_minutes = models.PositiveIntegerField(
        default=24 * 60, help_text="A device not seen online for longer is skipped at reservation.")
    charges_negative_performance = models.BooleanField(
        default=False, help_text="If set, a negative reduction is charged; otherwise it pays $0.")
    counts_reduction_below_zero_net_load = models.BooleanField(
        default=True, help_text="Net-metered service points (delivered minus received): if set, a reduction that "
                                "takes the net load below zero (export) counts; otherwise the net load counted in an "
                                "event interval is never below the lower of zero and the baseline.")
    event_priority = models.IntegerField(
        default=0, help_text="Among overlapping events of the same category (emergency > reliability > economic > "
                             "test), the program with the higher priority takes the device.")
    declines_events_without_incentive = models.BooleanField(
        default=False, help_text="If set, devices are not reserved for an event no incentive rule pays (e.g. a "
                                 "load-increase event of a program that pays load reduction only).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(device_ownership=DeviceOwnership.CUSTOMER_OWNED),
                                   name="program_customer_owned_devices_only",
                                   violation_error_message="Programs for utility-owned devices are out of scope."),
            models.CheckConstraint(
                condition=Q(enrollment_opens_on__isnull=True) | Q(enrollment_closes_on__isnull=True)
                | Q(enrollment_closes_on__gte=F("enrollment_opens_on")),
                name="program_enrollment_window_ordered"),
            models.CheckConstraint(condition=Q(status__in=ProgramStatus.values), name="program_status_valid"),
            models.CheckConstraint(condition=Q(reported_min_completeness_pct__lte=100),
                                   name="program_reported_completeness_pct_range",
                                   violation_error_message="The reported-data completeness is a percent (0 to 100)."),
        ]

    def __str__(self) -> str:
        return self.name or self.code

    @property
    def is_active(self) -> bool:
        return self.status == ProgramStatus.ACTIVE


class QualificationQuestion(models.Model):
    """A question asked at enrollment; ``qualifying_answers`` empty means any answer qualifies."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="questions")
    code = models.SlugField(max_length=64)
    position = models.PositiveSmallIntegerField(default=0)
    text = models.CharField(max_length=500)
    answer_type = models.CharField(max_length=16, choices=AnswerType.choices, default=AnswerType.BOOLEAN)
    required = models.BooleanField(default=True)
    choices = models.JSONField(default=list, blank=True, help_text="Allowed answers for a choice question.")
    qualifying_answers = models.JSONField(default=list, blank=True, help_text="Answers that qualify; empty = any.")

    class Meta:
        ordering = ["program", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["program", "code"], name="question_code_unique_per_program")]

    def __str__(self) -> str:
        return f"{self.program.code}:{self.code}"


class Season(models.Model):
    """A named season in local dates, both inclusive (e.g. Summer 2026: 2026-06-01 to 2026-09-30)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="seasons")
    name = models.CharField(max_length=100)
    start_date = models.DateField(help_text="First local day of the season.")
    end_date = models.DateField(help_text="Last local day of the season (inclusive).")

    class Meta:
        ordering = ["program", "start_date"]
        constraints = [
            models.UniqueConstraint(fields=["program", "name"], name="season_name_unique_per_program"),
            models.CheckConstraint(condition=Q(end_date__gte=F("start_date")), name="season_end_after_start",
                                   violation_error_message="Season end_date must be on or after start_date."),
        ]

    def __str__(self) -> str:
        return f"{self.program.code} {self.name}"

    def contains(self, day: dt.date) -> bool:
        return self.start_date <= day <= self.end_date


class ParticipationRule(models.Model):
    """Event limits, effective from a local date; the latest rule in effect on a day wins.

    Empty limits mean "no limit". Times are local wall-clock in the program's zone; ``window_end`` 00:00 means
    midnight at the end of the day.
    """

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="participation_rules")
    effective_from = models.DateField()
    weekdays_allowed = models.BooleanField(default=True)
    weekends_allowed = models.BooleanField(default=False)
    holidays_allowed = models.BooleanField(default=False)
    window_start = models.TimeField(null=True, blank=True, help_text="Earliest local start; empty = any time.")
    window_end = models.TimeField(null=True, blank=True, help_text="Latest local end; empty = any time.")
    min_duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    max_duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    max_events_per_day = models.PositiveIntegerField(null=True, blank=True)
    max_events_per_week = models.PositiveIntegerField(null=True, blank=True)
    max_events_per_season = models.PositiveIntegerField(null=True, blank=True)
    max_event_hours_per_day = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    max_event_hours_per_season = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    min_rest_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Between events of a device.")
    max_consecutive_event_days = models.PositiveIntegerField(null=True, blank=True)
    min_notice_minutes = models.PositiveIntegerField(null=True, blank=True)
    opt_out_allowance_kind = models.CharField(max_length=16, choices=OptOutAllowanceKind.choices,
                                              default=OptOutAllowanceKind.UNLIMITED)
    opt_out_allowance_count = models.PositiveIntegerField(null=True, blank=True)
    opt_out_allowance_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True,
                                                    help_text="Percent of the season's event hours.")
    opt_out_cutoff_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Opt-outs refused this many minutes before start; empty = any time.")
    refuse_opt_out_beyond_allowance = models.BooleanField(
        default=False, help_text="Refuse opt-outs once the allowance is used (else allow and count them).")

    class Meta:
        ordering = ["program", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["program", "effective_from"], name="rule_unique_per_effective_date"),
            models.CheckConstraint(
                condition=Q(min_duration_minutes__isnull=True) | Q(max_duration_minutes__isnull=True)
                | Q(max_duration_minutes__gte=F("min_duration_minutes")),
                name="rule_max_duration_gte_min",
                violation_error_message="max_duration_minutes must be at least min_duration_minutes."),
            models.CheckConstraint(
                condition=Q(opt_out_allowance_percent__isnull=True)
                | Q(opt_out_allowance_percent__gte=0, opt_out_allowance_percent__lte=100),
                name="rule_opt_out_percent_range"),
            # window_end 00:00 means midnight at the end of the day, so it is after any start.
            models.CheckConstraint(
                condition=Q(window_start__isnull=True) | Q(window_end__isnull=True) | Q(window_end=dt.time(0))
                | Q(window_end__gt=F("window_start")),
                name="rule_window_end_after_start",
                violation_error_message="window_end must be after window_start (00:00 means end of day)."),
            models.CheckConstraint(
                condition=~Q(opt_out_allowance_kind=OptOutAllowanceKind.COUNT)
                | Q(opt_out_allowance_count__isnull=False),
                name="rule_opt_out_count_required",
                violation_error_message="opt_out_allowance_count is required when the allowance kind is count."),
            models.CheckConstraint(
                condition=~Q(opt_out_allowance_kind=OptOutAllowanceKind.PERCENT_HOURS)
                | Q(opt_out_allowance_percent__isnull=False),
                name="rule_opt_out_percent_required",
                violation_error_message="opt_out_allowance_percent is required when the allowance kind is "
                                        "percent_hours."),
            models.CheckConstraint(
                condition=Q(max_event_hours_per_day__isnull=True)
                | Q(max_event_hours_per_day__gt=0, max_event_hours_per_day__lte=24),
                name="rule_max_hours_per_day_range"),
            models.CheckConstraint(
                condition=Q(weekdays_allowed=True) | Q(weekends_allowed=True) | Q(holidays_allowed=True),
                name="rule_some_day_allowed",
                violation_error_message="At least one of weekdays, weekends or holidays must be allowed."),
        ]

    def __str__(self) -> str:
        return f"{self.program.code} rules from {self.effective_from}"


class MutualExclusion(models.Model):
    """Two programs no service point or device may be in at overlapping dates (stored once, lower id first)."""

    program_a = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    program_b = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program_a", "program_b"], name="mutual_exclusion_unique_pair"),
            models.CheckConstraint(condition=Q(program_a__lt=F("program_b")), name="mutual_exclusion_ordered_pair",
                                   violation_error_message="A program cannot exclude itself."),
        ]

    def __str__(self) -> str:
        return f"{self.program_a} excludes {self.program_b}"


class IntervalPriceSet(models.Model):
    """A named series of (interval start, $/kWh) with a fixed interval length, in the program's zone."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="price_sets")
    name = models.CharField(max_length=100)
    interval_minutes = models.PositiveSmallIntegerField(default=60)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "name"], name="price_set_name_unique_per_program"),
            models.CheckConstraint(condition=Q(interval_minutes__in=[5, 15, 30, 60]), name="price_set_interval_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.program.code} {self.name}"


class IntervalPrice(models.Model):
    price_set = models.ForeignKey(IntervalPriceSet, on_delete=models.CASCADE, related_name="prices")
    interval_start = models.DateTimeField(help_text="UTC start of the interval.")
    price_per_kwh = models.DecimalField("price per kWh", max_digits=10, decimal_places=5)

    name_needs = ("price_set__program",)  # its name reads the program's zone (``cpm.base.admintime``)

    class Meta:
        ordering = ["price_set", "interval_start"]
        constraints = [models.UniqueConstraint(fields=["price_set", "interval_start"], name="price_unique_interval")]

    def __str__(self) -> str:
        program = self.price_set.program
        return (f"{self.price_set} from {format_local(self.interval_start, program.time_zone)}: "
                f"{format_rate(self.price_per_kwh)} per kWh")


class IncentiveRule(models.Model):
    """One way the program pays (or penalises). ``amount`` is dollars per ``basis`` unit.

    Kind-specific fields: ``price_set`` (performance per kWh with an interval price set); ``top_percent_events`` (kW
    drop averaged over the top N% of the season's events); ``min_participation_share`` / ``max_opt_outs`` /
    ``season_enrollment`` (seasonal); ``requires_no_skipped_event`` (monthly); ``opt_out_consequence`` (opt-out
    penalty).
    ``season`` empty = every season.
    """

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="incentive_rules")
    season = models.ForeignKey(Season, null=True, blank=True, on_delete=models.CASCADE, related_name="incentive_rules")
    kind = models.CharField(max_length=20, choices=IncentiveKind.choices)
    basis = models.CharField(max_length=20, choices=IncentiveBasis.choices, default=IncentiveBasis.FLAT)
    amount = models.DecimalField(max_digits=10, decimal_places=4, default=0, help_text="Dollars per basis unit.")
    price_set = models.ForeignKey(IntervalPriceSet, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    top_percent_events = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    opted_out_counts_zero = models.BooleanField(
        default=True, help_text="kW drop: an event opted out before it began counts 0 kW (else it is left out of the "
                                "season average); an event opted out part-way counts its kW prorated over the event.")
    min_participation_share = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True,
                                                  help_text="Seasonal: minimum share (0-1) of event hours.")
    max_opt_outs = models.PositiveIntegerField(null=True, blank=True, help_text="Seasonal: more opt-outs forfeit it.")
    season_enrollment = models.CharField(
        max_length=16, choices=SeasonEnrollment.choices, default=SeasonEnrollment.ANY,
        db_default=SeasonEnrollment.ANY, help_text=(
            "Seasonal: which enrollments it pays: enrolled at any time in the season (in full), still enrolled at "
            "the season's end, enrolled for the whole season, or prorated by the days enrolled in the season."))
    requires_no_skipped_event = models.BooleanField(default=False, help_text="Monthly: only months with no opt-out.")
    opt_out_consequence = models.CharField(max_length=16, choices=OptOutConsequence.choices, blank=True)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["program", "kind", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="incentive_amount_non_negative",
                                   violation_error_message="amount must be zero or more."),
            models.CheckConstraint(
                condition=~Q(basis=IncentiveBasis.PRICE_SET) | Q(price_set__isnull=False),
                name="incentive_price_set_required",
                violation_error_message="price_set is required when basis is price_set."),
            models.CheckConstraint(
                condition=Q(min_participation_share__isnull=True)
                | Q(min_participation_share__gte=0, min_participation_share__lte=1),
                name="incentive_min_share_range"),
            models.CheckConstraint(
                condition=Q(top_percent_events__isnull=True) | Q(top_percent_events__gt=0, top_percent_events__lte=100),
                name="incentive_top_percent_range"),
            models.CheckConstraint(
                condition=~Q(kind=IncentiveKind.PERFORMANCE_KWH)
                | Q(basis__in=[IncentiveBasis.PER_KWH, IncentiveBasis.PRICE_SET]),
                name="incentive_performance_kwh_basis",
                violation_error_message="A performance per kWh incentive needs basis per_kwh or price_set."),
            models.CheckConstraint(
                condition=~Q(kind=IncentiveKind.PERFORMANCE_KW) | Q(basis=IncentiveBasis.PER_KW),
                name="incentive_performance_kw_basis",
                violation_error_message="A performance per kW incentive needs basis per_kw."),
            models.CheckConstraint(
                condition=Q(season_enrollment=SeasonEnrollment.ANY) | Q(kind=IncentiveKind.SEASONAL),
                name="incentive_season_enrollment_seasonal",
                violation_error_message="season_enrollment is only used by seasonal incentives."),
            models.CheckConstraint(
                condition=~Q(kind=IncentiveKind.OPT_OUT_PENALTY) | ~Q(opt_out_consequence=""),
                name="incentive_opt_out_consequence_required",
                violation_error_message="An opt-out penalty needs an opt_out_consequence."),
        ]

    def __str__(self) -> str:
        return f"{self.program} {self.get_kind_display()} {format_money(self.amount)} {self.basis}"
