"""Interval data partitions and retention: ``manage.py interval_retention --keep-months 24`` (or ``--before
2024-01``) archives and drops old months; ``--maintain`` creates the coming months' partitions (what the daily beat
tasks do). See README "Interval data partitions and retention"."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cpm.base.capabilities import system_actor
from cpm.base.errors import DomainError
from settlement.meterdata.partitions import interval_partitions_maintain
from settlement.services import interval_data_retire

ACTOR = system_actor("command:interval_retention")


def _month(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(f"{text}-01" if len(text) == 7 else text).replace(day=1)
    except ValueError as exc:
        raise CommandError(f"--before: {text!r} is not a month YYYY-MM") from exc


class Command(BaseCommand):
    help = ("Archive (gzip CSV) and drop the months of interval data before a cutoff, keeping months unsettled "
            "events need; or create the coming months' partitions (--maintain).")

    def add_arguments(self, parser):
        parser.add_argument("--keep-months", type=int, help="Months kept before this UTC month "
                            "(default: CPM_INTERVAL_RETENTION_MONTHS).")
        parser.add_argument("--before", help="Remove the months before this one (YYYY-MM).")
        parser.add_argument("--archive-dir", help="Folder of the archives (default: CPM_INTERVAL_ARCHIVE_DIR).")
        parser.add_argument("--no-archive", action="store_true", help="Drop without writing archives.")
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be removed.")
        parser.add_argument("--maintain", action="store_true",
                            help="Create the partitions of this month and the next --months-ahead instead.")
        parser.add_argument("--months-ahead", type=int, default=3,
                            help="With --maintain: how many months after this one get their partition (default 3).")

    def handle(self, *args, keep_months, before, archive_dir, no_archive, dry_run, maintain, months_ahead,
               **options):
        now = timezone.now()
        try:
            if maintain:
                created = interval_partitions_maintain(now=now, months_ahead=months_ahead, actor=ACTOR)
                self.stdout.write(f"{len(created)} partitions created" + (f": {', '.join(created)}" if created
                                                                          else ""))
                return
            result = interval_data_retire(now=now, actor=ACTOR, keep_months=keep_months,
                                          before=_month(before) if before else None, archive_dir=archive_dir,
                                          archive=not no_archive, dry_run=dry_run)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        verb = "would remove" if dry_run else "removed"
        for item in result.removed:
            self.stdout.write(f"{verb} {item['month']}: {item['rows']} interval days"
                              + (f", archived to {item['archive']}" if item["archive"] else ""))
        for item in result.kept:
            self.stdout.write(f"kept {item['month']}: needed by unsettled events {', '.join(item['events'])}")
        self.stdout.write(f"months before {result.cutoff:%Y-%m}: {len(result.removed)} {verb}, "
                          f"{len(result.kept)} kept")
