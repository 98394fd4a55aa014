"""Load the sample programs (modelled on real published programs) through the services; idempotent."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from cpm.base.capabilities import system_actor
from programs.samples import DEFAULT_YEARS, sample_programs_load


class Command(BaseCommand):
    help = "Create and activate sample programs (SCE, National Grid MA, Eversource CT, PGE, Alliant, Austin Energy)."

    def add_arguments(self, parser):
        parser.add_argument("--years", type=int, nargs="+", default=list(DEFAULT_YEARS),
                            help="Season years to create (default: 2011 for the Green Button demo data, and 2026).")

    def handle(self, *args, years, **options):
        report = sample_programs_load(years=years, now=timezone.now(),
                                      actor=system_actor("command:load_sample_programs"))
        for key in ("created", "updated", "unchanged"):
            if report[key]:
                self.stdout.write(f"{key}: {', '.join(report[key])}")
        return None
