"""Season-end customer settlements: ``manage.py settle_season --program CODE --season "Summer 2026"``."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cpm.base.capabilities import system_actor
from cpm.base.errors import DomainError
from programs.models import Program, Season
from settlement.services import season_settle

ACTOR = system_actor("command:settle_season")


class Command(BaseCommand):
    help = "Create the season-end customer settlements of a program's ended season."

    def add_arguments(self, parser):
        parser.add_argument("--program", required=True, help="Program code.")
        parser.add_argument("--season", required=True, help="Season name.")

    def handle(self, *args, program, season, **options):
        try:
            prog = Program.objects.get(code=program)
            obj = Season.objects.get(program=prog, name=season)
            batch = season_settle(program=prog, season=obj, now=timezone.now(), actor=ACTOR)
        except (Program.DoesNotExist, Season.DoesNotExist) as exc:
            raise CommandError(f"No program {program!r} with season {season!r}.") from exc
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        batch.refresh_from_db()
        self.stdout.write(f"batch {batch.pk} {batch.status}: {batch.items_calculated} accounts settled, "
                          f"{batch.items_failed} failed")
