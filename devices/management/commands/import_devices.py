"""``manage.py import_devices --aggregator CODE FILE``: import an aggregator's device list (columns:
``devices.imports``)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cpm.base.capabilities import system_actor
from devices.imports import ImportFailed, import_devices
from devices.models import Aggregator


class Command(BaseCommand):
    help = "Import an aggregator's device list (all or nothing; re-importing changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--aggregator", required=True, help="Aggregator code.")
        parser.add_argument("file")

    def handle(self, *args, aggregator, file, **options):
        agg = Aggregator.objects.filter(code=aggregator).first()
        if agg is None:
            raise CommandError(f"Unknown aggregator {aggregator!r}.")
        try:
            with open(file, "rb") as fh:
                report = import_devices(fh, aggregator=agg, name=file, now=timezone.now(),
                                        actor=system_actor("command:import_devices"))
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        except ImportFailed as exc:
            for line in exc.report.error_lines():
                self.stderr.write(line)
            raise CommandError(f"{file}: {len(exc.report.errors)} row error(s); nothing imported.") from None
        self.stdout.write(report.summary())
