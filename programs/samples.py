"""Sample programs modelled on real published BYOD programs (facts paraphrased from the utilities' pages; each
program's description names the source). Loaded by ``manage.py load_sample_programs`` through the services.

Seasons are created for each requested year (2026 for the current programs and 2011 for the Green Button demo data,
by default). Participation rules take effect from 2000-01-01 so any demo year is covered; PGE's winter rules (a
morning window) are effective-dated per loaded year. Loading is idempotent: existing programs and seasons are kept.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction

from .choices import ProgramStatus
from .models import Program
from .services import incentive_rule_create, program_activate, program_create, season_create

DEFAULT_YEARS = (2011, 2026)
RULES_FROM = dt.date(2000, 1, 1)


def summer(year: int) -> dict:
    return {"name": f"Summer {year}", "start_date": dt.date(year, 6, 1), "end_date": dt.date(year, 9, 30)}


def winter(year: int) -> dict:
    """December 1 to the end of February (the 29th in leap years)."""
    feb_end = calendar.monthrange(year + 1, 2)[1]
    return {"name": f"Winter {year}-{str(year + 1)[2:]}", "start_date": dt.date(year, 12, 1),
            "end_date": dt.date(year + 1, 2, feb_end)}


@dataclass
class Sample:
    """One sample program: program fields, season builders, rules, incentives (for every season, or per season
    built for each year), questions."""

    data: dict[str, Any]
    seasons: list = field(default_factory=lambda: [summer])
    rules: list[dict] = field(default_factory=list)
    yearly_rules: list = field(default_factory=list)  # year -> rule dict (effective-dated per year)
    incentives: list[dict] = field(default_factory=list)
    season_incentives: list[dict] = field(default_factory=list)  # one per season of ``season_incentive_builder``
    season_incentive_builder: Any = None
    questions: list[dict] = field(default_factory=list)

    def seasons_for(self, years) -> list[dict]:
        return [build(year) for year in years for build in self.seasons]

    def season_incentives_for(self, years) -> list[dict]:
        if not self.season_incentive_builder:
            return []
        return [{**item, "season_name": self.season_incentive_builder(year)["name"]}
                for year in years for item in self.season_incentives]


CENTRAL_AC = {"code": "central_ac", "position": 1, "text": "Does the thermostat control working central air "
              "conditioning (or a ducted heat pump)?", "answer_type": "boolean", "required": True,
              "qualifying_answers": [True]}

SAMPLES: list[Sample] = [
    Sample(
        data={
            "code": "sce-smart-energy-kwh", "name": "SCE Smart Energy Program (per-kWh design)",
            "description": (
                "Modelled on Southern California Edison's Smart Energy Program "
                "(https://www.sce.com/tnc/smart-energy-program-terms-and-conditions): smart thermostats, events up "
                "to 4 h, at most 6 h a day and 180 h a year, about 20 minutes' notice, override any event; "
                "Medical Baseline air-conditioning customers excluded. Paid per kWh saved as in its earlier Save "
                "Power Days design ($1.25/kWh up to $60 a year, 2-6 pm events; https://sceep.org/thermostat/), "
                "measured against a CAISO 10-in-10 / 4-in-4 meter baseline, plus the $75 enrollment incentive."),
            "program_type": "thermostat_dr", "time_zone": "America/Los_Angeles",
            "eligible_territories": ["SCE"],  # the utility's service territory
            "eligible_device_types": ["thermostat"], "eligible_customer_classes": ["residential"],
            "eligible_rate_codes": ["D", "D-CARE", "D-FERA", "TOU-D", "TOU-D-T"], "excludes_life_support": True,
            "settlement_timing": "after_event", "performance_measurement": "meter_baseline",
            "baseline_method": "caiso-auto", "holiday_calendar": "NERC",
        },
        rules=[{"effective_from": RULES_FROM, "weekdays_allowed": True, "weekends_allowed": True,
                "holidays_allowed": True, "window_start": dt.time(14), "window_end": dt.time(18),
                "min_duration_minutes": 30, "max_duration_minutes": 240, "max_event_hours_per_day": Decimal("6"),
                "max_event_hours_per_season": Decimal("180"), "min_notice_minutes": 20,
                "opt_out_allowance_kind": "unlimited"}],
        incentives=[
            {"kind": "enrollment_bonus", "basis": "flat", "amount": Decimal("75"),
             "description": "One-time enrollment incentive per service account."},
            {"kind": "performance_kwh", "basis": "per_kwh", "amount": Decimal("1.25"),
             "description": "$1.25 per kWh saved against the CAISO baseline (Save Power Days design)."},
            {"kind": "season_cap", "basis": "flat", "amount": Decimal("60"),
             "description": "Per-kWh earnings capped at $60 a season."},
        ],
        questions=[CENTRAL_AC, {"code": "medical_baseline_ac", "position": 2, "text": "Do you receive a Medical "
                                "Baseline allocation for air conditioning?", "answer_type": "boolean",
                                "required": True, "qualifying_answers": [False]}],
    ),
    Sample(
        data={
            "code": "ngrid-ma-connectedsolutions-battery",
            "name": "National Grid MA ConnectedSolutions Batteries (Daily Dispatch)",
            "description": (
                "Modelled on National Grid Massachusetts' ConnectedSolutions battery program under Mass Save "
                "(https://www.nationalgridus.com/MA-Home/Connected-Solutions/BatteryProgram): up to 60 summer "
                "events of up to 3 h between 3 and 8 pm on non-holiday weekdays; $275 per kW-summer of the "
                "battery's average discharge over all the season's events (metered at the device, no load "
                "baseline), paid once after the season."),
            "program_type": "battery_storage", "time_zone": "America/New_York",
            "eligible_territories": ["NGRID-MA"],  # the utility's service territory
            "eligible_device_types": ["battery"], "eligible_customer_classes": ["residential", "small_commercial"],
            "settlement_timing": "season_end", "performance_measurement": "device_telemetry",
            "holiday_calendar": "NERC",
        },
        rules=[{"effective_from": RULES_FROM, "weekdays_allowed": True, "weekends_allowed": False,
                "holidays_allowed": False, "window_start": dt.time(15), "window_end": dt.time(20),
                "min_duration_minutes": 60, "max_duration_minutes": 180, "max_events_per_day": 1,
                "max_events_per_season": 60, "opt_out_allowance_kind": "unlimited"}],
        incentives=[{"kind": "performance_kw", "basis": "per_kw", "amount": Decimal("275"),
                     "opted_out_counts_zero": True,
                     "description": "$275 per kW-summer of average discharge across all summer events."}],
        questions=[{"code": "battery_interconnected", "position": 1, "text": "Is the battery interconnected and "
                    "controlled by an approved inverter or battery manufacturer?", "answer_type": "boolean",
                    "required": True, "qualifying_answers": [True]}],
    ),
    Sample(
        data={
            "code": "eversource-ct-ev-managed-charging", "name": "Eversource CT EV Managed Charging",
            "description": (
                "Modelled on Eversource Connecticut's EV Charging Program - Managed Charging (https://www."
                "eversource.com/content/residential/save-money-energy/clean-energy-options/electric-vehicles/"
                "ev-charger-managed-charging/ct): $10 a month for charging mostly off-peak, plus $20 a month in "
                "June-September for months without an opted-out peak event; events pause charging for up to "
                "3 h on summer weekday afternoons (peak hours 3-9 pm)."),
            "program_type": "ev_managed_charging", "time_zone": "America/New_York",
            "eligible_territories": ["EVERSOURCE-CT"],  # the utility's service territory
            "eligible_device_types": ["ev_charger"], "eligible_customer_classes": ["residential"],
            "settlement_timing": "season_end", "performance_measurement": "device_telemetry",
            "holiday_calendar": "NERC",
        },
        rules=[{"effective_from": RULES_FROM, "weekdays_allowed": True, "weekends_allowed": False,
                "holidays_allowed": False, "window_start": dt.time(15), "window_end": dt.time(21),
                "min_duration_minutes": 60, "max_duration_minutes": 180, "max_events_per_day": 1,
                "opt_out_allowance_kind": "unlimited"}],
        incentives=[
            {"kind": "monthly", "basis": "per_device", "amount": Decimal("10"),
             "description": "Off-peak reward: at least 80% of home charging off-peak in the month."},
            {"kind": "opt_out_penalty", "basis": "flat", "amount": Decimal("0"), "opt_out_consequence":
             "forfeit_month", "description": "An opted-out event forfeits that month's $20 event reward."},
        ],
        season_incentive_builder=summer,
        season_incentives=[{"kind": "monthly", "basis": "per_device", "amount": Decimal("20"),
                            "requires_no_skipped_event": True,
                            "description": "Peak event reward, June-September, months with no opt-out."}],
        questions=[{"code": "dwelling_units", "position": 1, "text": "How many homes are in the building?",
                    "answer_type": "number", "required": True, "qualifying_answers": {"min": 1, "max": 4}}],
    ),
    Sample(
        data={
            "code": "pge-or-smart-thermostat", "name": "Portland General Electric Smart Thermostat",
            "description": (
                "Modelled on Portland General Electric's Smart Thermostat program "
                "(https://portlandgeneral.com/smart-thermostat-enrollment): summer "
                "(June-September, 3-8 pm) and winter (December-February, morning 6-10 am) seasons of up to 15 "
                "weekday events of up to 4 h; $25 for signing up and $25 for each season taken part in."),
            "program_type": "thermostat_dr", "time_zone": "America/Los_Angeles",
            "eligible_territories": ["PGE-OR"],  # the utility's service territory
            "eligible_device_types": ["thermostat"], "eligible_customer_classes": ["residential"],
            "settlement_timing": "season_end", "performance_measurement": "meter_baseline",
            "holiday_calendar": "NERC",
        },
        seasons=[summer, winter],
        yearly_rules=[
            lambda y: {"effective_from": dt.date(y, 3, 1), "weekdays_allowed": True, "weekends_allowed": False,
                       "holidays_allowed": False, "window_start": dt.time(15), "window_end": dt.time(20),
                       "max_duration_minutes": 240, "max_events_per_season": 15},
            lambda y: {"effective_from": dt.date(y, 12, 1), "weekdays_allowed": True, "weekends_allowed": False,
                       "holidays_allowed": False, "window_start": dt.time(6), "window_end": dt.time(10),
                       "max_duration_minutes": 240, "max_events_per_season": 15},
        ],
        incentives=[
            {"kind": "enrollment_bonus", "basis": "flat", "amount": Decimal("25"), "description": "Sign-up reward."},
            {"kind": "seasonal", "basis": "per_device", "amount": Decimal("25"),
             "description": "$25 for each summer and winter season participated."},
        ],
        questions=[CENTRAL_AC],
    ),
    Sample(
        data={
            "code": "alliant-smart-hours", "name": "Alliant Energy Smart Hours",
            "description": (
                "Modelled on Alliant Energy's Smart Hours smart-thermostat program (https://alliant-faqs."
                "tendrilinc.com/faqs/when-will-smart-hours-events-occur-and-how-often): up to 15 weekday events "
                "a season of up to 4 h between 1 and 7 pm, no weekends or holidays; a $25 seasonal bonus "
                "forfeited after more than 3 opt-outs. Season dates are not published; June-September assumed."),
            "program_type": "thermostat_dr", "time_zone": "America/Chicago",
            "eligible_territories": ["ALLIANT"],  # the utility's service territory
            "eligible_device_types": ["thermostat"], "eligible_customer_classes": ["residential"],
            "settlement_timing": "season_end", "performance_measurement": "meter_baseline",
            "holiday_calendar": "NERC",
        },
        rules=[{"effective_from": RULES_FROM, "weekdays_allowed": True, "weekends_allowed": False,
                "holidays_allowed": False, "window_start": dt.time(13), "window_end": dt.time(19),
                "max_duration_minutes": 240, "max_events_per_season": 15, "opt_out_allowance_kind": "count",
                "opt_out_allowance_count": 3}],
        incentives=[
            {"kind": "seasonal", "basis": "per_device", "amount": Decimal("25"), "max_opt_outs": 3,
             "description": "$25 bonus per qualified season (no more than 3 opt-outs)."},
            {"kind": "opt_out_penalty", "basis": "flat", "amount": Decimal("0"),
             "opt_out_consequence": "forfeit_season", "description": "More than 3 opt-outs forfeit the bonus."},
        ],
    ),
    Sample(
        data={
            "code": "austin-energy-power-partner", "name": "Austin Energy Power Partner Thermostat",
            "description": (
                "Modelled on Austin Energy's Power Partner thermostat program (2023 terms, https://www.kut.org/"
                "energy-environment/2023-06-15/austin-energy-will-give-you-credits-in-exchange-for-a-little-"
                "control-over-your-thermostat): June-September weekday events between 3 and 6 pm of at most "
                "2 h, at most 25 a season; $50 per thermostat at enrollment and $25 per thermostat per year."),
            "program_type": "thermostat_dr", "time_zone": "America/Chicago",
            "eligible_territories": ["AUSTIN-ENERGY"],  # the utility's service territory
            "eligible_device_types": ["thermostat"], "eligible_customer_classes": ["residential"],
            "settlement_timing": "season_end", "performance_measurement": "meter_baseline",
            "holiday_calendar": "NERC",
        },
        rules=[{"effective_from": RULES_FROM, "weekdays_allowed": True, "weekends_allowed": False,
                "holidays_allowed": False, "window_start": dt.time(15), "window_end": dt.time(18),
                "max_duration_minutes": 120, "max_events_per_season": 25}],
        incentives=[
            {"kind": "enrollment_bonus", "basis": "per_device", "amount": Decimal("50"),
             "description": "One-time credit per thermostat."},
            {"kind": "seasonal", "basis": "per_device", "amount": Decimal("25"), "season_enrollment": "at_season_end",
             "description": "Yearly credit per thermostat that stays enrolled (enrolled at the season's end)."},
        ],
        questions=[CENTRAL_AC],
    ),
]


def sample_programs_load(*, years=DEFAULT_YEARS, now: dt.datetime, actor: Any) -> dict:
    """Create the sample programs (with seasons for ``years``) and activate them, through the services.

    Idempotent: an existing program keeps its definition; only seasons (and their per-season incentives) missing
    for a requested year are added, and a DRAFT sample is activated. Returns ``{"created": [...], "updated": [...],
    "unchanged": [...]}`` program codes.
    """
    years = sorted(set(years))
    report: dict[str, list[str]] = {"created": [], "updated": [], "unchanged": []}
    for sample in SAMPLES:
        with transaction.atomic():
            program = Program.objects.filter(code=sample.data["code"]).first()
            if program is None:
                program = program_create(
                    data=sample.data, seasons=sample.seasons_for(years),
                    participation_rules=[*sample.rules, *(build(y) for y in years for build in sample.yearly_rules)],
                    incentive_rules=[*sample.incentives, *sample.season_incentives_for(years)],
                    questions=sample.questions, now=now, actor=actor)
                program_activate(program=program, now=now, actor=actor, reason="sample program")
                report["created"].append(program.code)
                continue
            changed = False
            existing = set(program.seasons.values_list("name", flat=True))
            for year in years:
                for build in sample.seasons:
                    season_data = build(year)
                    if season_data["name"] in existing:
                        continue
                    season = season_create(program=program, data=season_data, now=now, actor=actor)
                    changed = True
                    if sample.season_incentive_builder and sample.season_incentive_builder(year)["name"] == season.name:
                        for item in sample.season_incentives:
                            incentive_rule_create(program=program, data={**item, "season": season}, now=now,
                                                  actor=actor)
            if program.status == ProgramStatus.DRAFT:
                program_activate(program=program, now=now, actor=actor, reason="sample program")
                changed = True
            report["updated" if changed else "unchanged"].append(program.code)
    return report
