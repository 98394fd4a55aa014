"""Temporary main job: load the sample programs and print a readable summary of each.

The end-to-end demo (customers, enrollments, events, settlement) replaces it later.
"""

from django.core.management.base import BaseCommand
from django.utils import timezone

from programs import selectors
from programs.samples import DEFAULT_YEARS, sample_programs_load

BASIS_LABELS = {"flat": "", "per_kw_enrolled": " per kW enrolled", "per_kwh_enrolled": " per kWh enrolled",
                "per_device": " per device", "per_kwh": " per kWh avoided", "price_set": " per kWh (price set)",
                "per_kw": " per kW of average kW drop"}


def _limit(value, unit=""):
    return "no limit" if value is None else f"{value}{unit}"


def describe_program(program) -> list[str]:
    """Readable lines describing a program (prefetched children, see ``programs.selectors.program_list``)."""
    lines = [f"{program.name} [{program.code}] - {program.get_status_display()}",
             f"  {program.get_program_type_display()}; devices: {', '.join(program.eligible_device_types) or '-'}; "
             f"customers: {', '.join(program.eligible_customer_classes) or 'any'}; zone {program.time_zone}; "
             f"settled {program.get_settlement_timing_display().lower()} by "
             f"{program.get_performance_measurement_display().lower()}"]
    seasons = ", ".join(f"{s.name} ({s.start_date:%Y-%m-%d} to {s.end_date:%Y-%m-%d})" for s in program.seasons.all())
    lines.append(f"  seasons: {seasons or '-'}")
    for rule in program.participation_rules.all():
        days = "/".join(d for d, ok in (("weekdays", rule.weekdays_allowed), ("weekends", rule.weekends_allowed),
                                        ("holidays", rule.holidays_allowed)) if ok)
        window = f"{rule.window_start:%H:%M}-{rule.window_end:%H:%M}" if rule.window_start else "any time"
        lines.append(f"  rules from {rule.effective_from}: {days}, {window}, max {_limit(rule.max_duration_minutes)} "
                     f"min per event, {_limit(rule.max_events_per_season)} events per season, opt-outs "
                     f"{rule.get_opt_out_allowance_kind_display().lower()}")
    for incentive in program.incentive_rules.all():
        season = f" ({incentive.season.name})" if incentive.season_id else ""
        lines.append(f"  incentive: {incentive.get_kind_display()}{season}: ${incentive.amount.normalize():f}"
                     f"{BASIS_LABELS.get(incentive.basis, '')} - {incentive.description}")
    for question in program.questions.all():
        lines.append(f"  question [{question.code}]: {question.text}")
    lines.append(f"  source: {program.description}")
    return lines


class Command(BaseCommand):
    help = "Demo: load the sample programs and print a summary of them."

    def add_arguments(self, parser):
        parser.add_argument("--ci-check", action="store_true", help="Accepted for CI; no effect yet.")

    def handle(self, *args, **options):
        report = sample_programs_load(years=DEFAULT_YEARS, now=timezone.now(), actor="demo")
        self.stdout.write(f"Sample programs: {len(report['created'])} created, {len(report['updated'])} updated, "
                          f"{len(report['unchanged'])} unchanged.\n")
        for program in selectors.program_list():
            self.stdout.write("\n".join(describe_program(program)) + "\n")
