"""``manage.py import_cis --kind KIND FILE``: import a CIS extract (columns: ``enrollments.imports``)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cpm.base.capabilities import system_actor
from devices.imports import ImportFailed
from enrollments.imports import KINDS, import_cis


class Command(BaseCommand):
    help = "Import a CIS extract (premises, service points, customers, accounts, agreements, or combined)."

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=KINDS)
        parser.add_argument("file")

    def handle(self, *args, kind, file, **options):
        try:
            with open(file, "rb") as fh:
                report = import_cis(fh, kind=kind, now=timezone.now(), actor=system_actor("command:import_cis"),
                                    name=file)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        except ImportFailed as exc:
            for line in exc.report.error_lines():
                self.stderr.write(line)
            raise CommandError(f"{file}: {len(exc.report.errors)} row error(s); nothing imported.") from None
        self.stdout.write(report.summary())
