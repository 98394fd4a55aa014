"""``manage.py load_intervals FILE``: load a CSV or Green Button file of interval readings (a MeterDataLoad job).

By default the load runs here and prints its summary (``N new, N unchanged, N corrected, N rejected``) and the first
row errors; ``--queue`` hands it to the Celery worker instead. The file is passed by path (a CSV is streamed in
blocks, never read whole). Thin wrapper over ``settlement.meterdata.loaders``.

Errors are printed with their place: ``row N`` of a CSV (N = the line of the file; the header is line 1),
``IntervalReading N`` of a Green Button file. A load that fails (a file-level problem, or anything unexpected:
recorded on the load and its job) ends the command with an error in words and exit status 1, never a traceback.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cpm.base.capabilities import system_actor
from cpm.base.errors import DomainValidationError
from settlement.meterdata.loaders import meter_csv_load, meter_data_load_run, meter_data_load_submit
from settlement.models import MeterDataLoad

ACTOR = system_actor("command:load_intervals")


class Command(BaseCommand):
    help = "Load interval readings from a CSV (documented columns) or a Green Button XML file."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--format", choices=["csv", "green-button"], default=None,
                            help="Default: from the file name (.xml = Green Button).")
        parser.add_argument("--tz", help="IANA zone of CSV times given without offset.")
        parser.add_argument("--service-point", help="Service point id a Green Button file belongs to.")
        parser.add_argument("--usage-point", help="UsagePoint title or href when the file holds several.")
        parser.add_argument("--queue", action="store_true", help="Queue the job for the worker instead of running it.")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        try:
            path.open("rb").close()  # the file is streamed by path, never read here: only check it opens
        except OSError as exc:
            raise CommandError(f"file: cannot read {path}: {exc.strerror}") from exc
        fmt = opts["format"] or ("green-button" if path.suffix.lower() == ".xml" else "csv")
        now = dt.datetime.now(dt.UTC)
        try:
            if fmt == "csv" and not opts["queue"]:
                load = meter_csv_load(path=path, now=now, file_name=path.name, tz=opts["tz"], actor=ACTOR)
            else:
                source = MeterDataLoad.Source.CSV if fmt == "csv" else MeterDataLoad.Source.GREEN_BUTTON
                load = meter_data_load_submit(source=source, path=path, now=now, file_name=path.name,
                                              tz=opts["tz"], service_point_id=opts["service_point"],
                                              usage_point=opts["usage_point"], actor=ACTOR)
                load.refresh_from_db()
                if load.status == MeterDataLoad.Status.PENDING and not opts["queue"]:
                    load = meter_data_load_run(load_id=load.pk, now=now, actor=ACTOR)
        except DomainValidationError as exc:
            raise CommandError(exc.message) from exc
        except Exception as exc:  # noqa: BLE001 - recorded on the load and its job; the operator gets words
            failed = MeterDataLoad.objects.filter(file_name=path.name[:300], status=MeterDataLoad.Status.FAILED,
                                                  created_at=now).order_by("-pk").first()
            raise CommandError(f"load #{failed.pk if failed else '?'} failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"load #{load.pk} {load.status}: {load.summary}")
        unit = "IntervalReading" if load.source == MeterDataLoad.Source.GREEN_BUTTON else "row"
        for error in load.errors[:20]:
            where = f"{unit} {error['row']}" if error.get("row") is not None else error["field"]
            self.stdout.write(f"  {where}: {error['field']}: {error['message']}")
        if load.status == MeterDataLoad.Status.FAILED:
            message = load.errors[0]["message"] if load.errors else "no reason recorded"
            raise CommandError(f"load #{load.pk} failed: {message}")
