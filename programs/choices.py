"""Kinds and statuses of the programs app, with the allowed status transitions next to them."""

from django.db import models


class ProgramType(models.TextChoices):
    THERMOSTAT_DR = "thermostat_dr", "Thermostat demand response"
    EV_MANAGED_CHARGING = "ev_managed_charging", "EV managed charging"
    BATTERY_STORAGE = "battery_storage", "Battery storage"
    SOLAR_INVERTER = "solar_inverter", "Solar inverter"
    WATER_HEATER = "water_heater", "Water heater"
    SMALL_COMMERCIAL_DR = "small_commercial_dr", "Small-commercial demand response"
    PEAK_TIME_REBATE = "peak_time_rebate", "Peak-time rebate (no device)"


class DeviceType(models.TextChoices):
    """Controllable device types (shared vocabulary: devices use it too)."""

    THERMOSTAT = "thermostat", "Smart thermostat"
    EV_CHARGER = "ev_charger", "EV charger"
    BATTERY = "battery", "Home battery"
    SOLAR_INVERTER = "solar_inverter", "Solar inverter"
    WATER_HEATER = "water_heater", "Water heater"


class CustomerClass(models.TextChoices):
    RESIDENTIAL = "residential", "Residential"
    SMALL_COMMERCIAL = "small_commercial", "Small commercial"
    COMMERCIAL_INDUSTRIAL = "commercial_industrial", "Commercial & industrial"


class DeviceOwnership(models.TextChoices):
    CUSTOMER_OWNED = "customer_owned", "Customer-owned (bring your own device)"
    UTILITY_OWNED = "utility_owned", "Utility-owned (out of scope)"


class SettlementTiming(models.TextChoices):
    AFTER_EVENT = "after_event", "After each event"
    SEASON_END = "season_end", "At season end"


class PerformanceMeasurement(models.TextChoices):
    METER_BASELINE = "meter_baseline", "Service-point meter against a day-matching baseline"
    DEVICE_TELEMETRY = "device_telemetry", "Metered device output (no load baseline)"
    AGGREGATOR_REPORTED = "aggregator_reported", "kW drop reported by the aggregator or DERMS (kW-drop files)"


class BaselineMethod(models.TextChoices):
    CAISO_10_IN_10 = "caiso-10-in-10", "CAISO 10-in-10 (weekday)"
    CAISO_4_IN_4 = "caiso-4-in-4", "CAISO 4-in-4 (weekend/holiday)"
    CAISO_AUTO = "caiso-auto", "CAISO 10-in-10 on weekdays, 4-in-4 on weekends/holidays"
    PJM_HIGH_4_OF_5 = "pjm-high-4-of-5", "PJM high 4 of 5"
    CUSTOM = "custom", "Custom X of Y"


class HolidayCalendar(models.TextChoices):
    NERC = "NERC", "NERC holidays (US)"
    US_FEDERAL = "US", "US federal holidays"
    NONE = "NONE", "No holidays"


class ProgramStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CLOSED = "closed", "Closed"


PROGRAM_TRANSITIONS: dict[str, frozenset[str]] = {
    ProgramStatus.DRAFT: frozenset({ProgramStatus.ACTIVE}),
    ProgramStatus.ACTIVE: frozenset({ProgramStatus.SUSPENDED, ProgramStatus.CLOSED}),
    ProgramStatus.SUSPENDED: frozenset({ProgramStatus.ACTIVE, ProgramStatus.CLOSED}),
    ProgramStatus.CLOSED: frozenset(),
}


class AnswerType(models.TextChoices):
    BOOLEAN = "boolean", "Yes / no"
    CHOICE = "choice", "One of a list"
    NUMBER = "number", "Number"
    TEXT = "text", "Free text"


class OptOutAllowanceKind(models.TextChoices):
    UNLIMITED = "unlimited", "Unlimited (override any event)"
    COUNT = "count", "A number of opt-outs per season"
    PERCENT_HOURS = "percent_hours", "A percentage of the season's event hours"
    NONE = "none", "No opt-outs"


class IncentiveKind(models.TextChoices):
    ENROLLMENT_BONUS = "enrollment_bonus", "Enrollment bonus"
    SEASONAL = "seasonal", "Seasonal participation"
    MONTHLY = "monthly", "Monthly participation"
    PER_EVENT = "per_event", "Per-event participation"
    PERFORMANCE_KWH = "performance_kwh", "Performance per kWh avoided"
    PERFORMANCE_KW = "performance_kw", "Performance per kW drop"
    OPT_OUT_PENALTY = "opt_out_penalty", "Opt-out penalty or forfeiture"
    SEASON_CAP = "season_cap", "Cap per customer per season"


class IncentiveBasis(models.TextChoices):
    """What ``amount`` is multiplied by."""

    FLAT = "flat", "Flat $"
    PER_KW_ENROLLED = "per_kw_enrolled", "$ per kW of enrolled capacity"
    PER_KWH_ENROLLED = "per_kwh_enrolled", "$ per kWh of enrolled usable energy"
    PER_DEVICE = "per_device", "$ per device"
    PER_KWH = "per_kwh", "$ per kWh avoided (flat price)"
    PRICE_SET = "price_set", "Interval price set ($/kWh per interval)"
    PER_KW = "per_kw", "$ per kW of average kW drop"


class SeasonEnrollment(models.TextChoices):
    """Which enrollments a seasonal incentive pays, by their dates against the season's (real-programs.json: Austin
    Energy Power Partner pays its $25 a year "for each thermostat that stays enrolled"; PGE's Smart Thermostat pays
    $25 "each season participated", SCE's $40 for participating June-September: enrolled at some time)."""

    ANY = "any", "Enrolled at any time in the season (paid in full)"
    AT_SEASON_END = "at_season_end", "Still enrolled at the season's end"
    WHOLE_SEASON = "whole_season", "Enrolled for the whole season"
    PRORATED = "prorated", "Prorated by the days enrolled in the season"


class OptOutConsequence(models.TextChoices):
    PENALTY = "penalty", "Charge a penalty $ per opt-out"
    FORFEIT_EVENT = "forfeit_event", "Forfeit that event's payment"
    FORFEIT_MONTH = "forfeit_month", "Forfeit that month's monthly incentive"
    FORFEIT_SEASON = "forfeit_season", "Forfeit the seasonal incentive"


#: The device types a program of each type calls by default (a program made without naming them, e.g. through
#: OpenADR 3, whose program names no device). A peak-time rebate calls none.
DEVICE_TYPES_OF_PROGRAM_TYPE: dict[str, tuple[str, ...]] = {
    ProgramType.THERMOSTAT_DR: (DeviceType.THERMOSTAT,),
    ProgramType.EV_MANAGED_CHARGING: (DeviceType.EV_CHARGER,),
    ProgramType.BATTERY_STORAGE: (DeviceType.BATTERY,),
    ProgramType.SOLAR_INVERTER: (DeviceType.SOLAR_INVERTER,),
    ProgramType.WATER_HEATER: (DeviceType.WATER_HEATER,),
    ProgramType.SMALL_COMMERCIAL_DR: (DeviceType.THERMOSTAT,),
}
