"""Settle (or recalculate) a completed event: ``manage.py settle_event --event 12 [--recalculate]``."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cpm.base.capabilities import system_actor
from cpm.base.errors import DomainError
from events.models import Event
from settlement.services import event_settle

ACTOR = system_actor("command:settle_event")


class Command(BaseCommand):
    help = "Settle a completed event (one event settlement per participation), or recalculate it after corrections."

    def add_arguments(self, parser):
        parser.add_argument("--event", type=int, required=True, help="Event id.")
        parser.add_argument("--recalculate", action="store_true", help="Recalculate (new meter data or prices).")

    def handle(self, *args, event, recalculate, **options):
        try:
            obj = Event.objects.select_related("program").get(pk=event)
            batch = event_settle(event=obj, now=timezone.now(), actor=ACTOR,
                                 recalculate=recalculate)
        except Event.DoesNotExist as exc:
            raise CommandError(f"No event with id {event}.") from exc
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        batch.refresh_from_db()
        self.stdout.write(f"batch {batch.pk} {batch.kind} {batch.status}: {batch.chunks_done}/{batch.chunks_total} "
                          f"chunks, {batch.items_calculated} calculated, {batch.items_unchanged} unchanged, "
                          f"{batch.items_corrected} corrected, {batch.items_pending} pending")
