"""Run the settlement tick once: ``manage.py settle_due`` (completed events, due customer settlements)."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from cpm.base.capabilities import system_actor
from settlement.services import settlement_tick

ACTOR = system_actor("command:settle_due")


class Command(BaseCommand):
    help = "Settle completed events without a batch and create due customer settlements (what the hourly tick does)."

    def handle(self, *args, **options):
        result = settlement_tick(now=timezone.now(), actor=ACTOR)
        self.stdout.write(f"{result['events']} events settled, {result['customer']} customer batches/settlements")
