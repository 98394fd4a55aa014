"""The main job end to end: a summer 2011 DR season from Green Button meter data to bill credits.

Thin wrapper over ``cpm.demo``: parse options, run the scenario, print the season summary, write the HTML report and
the bill-credit export under ``var/demo/``; with ``--ci-check``, assert the results are sane and agree with an
independent recomputation (``cpm.demo.check``, which shares no code with ``settlement``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cpm.base.paths import green_button_dir
from cpm.demo.check import check_demo
from cpm.demo.forecast_report import forecast_text
from cpm.demo.report import build_summary, summary_text, write_html
from cpm.demo.scenario import Demo, DemoError, Options


class Command(BaseCommand):
    help = ("Run a summer 2011 demand-response season end to end (Green Button data, enrollments, events, "
            "settlement, bill-credit export). Starts by erasing the database (a demo database).")

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true", help="Fewer customers and events (tests).")
        parser.add_argument("--ci-check", action="store_true",
                            help="Assert the results are sane and pass the independent recomputation.")
        parser.add_argument("--seed", type=int, default=2011, help="Seed of every random choice (default 2011).")
        parser.add_argument("--greenbutton-dir", default=os.environ.get("GREENBUTTON_DIR", ""),
                            help="Directory of Green Button XML files (env GREENBUTTON_DIR; default "
                                 "shared/data/greenbutton/ beside the repository root, or beside a parent folder of it "
                                 "up to three levels, when it exists).")
        parser.add_argument("--out-dir", default="", help="Where to write the report and export (default var/demo).")
        parser.add_argument("--timeout", type=float, default=300.0,
                            help="Seconds to wait for each batch of worker tasks (real stack; default 300).")
        parser.add_argument("--flush", action="store_true",
                            help="Erase the database even if it holds data the demo did not create.")

    def handle(self, *args, **opts):
        started = time.monotonic()
        gb_dir = Path(opts["greenbutton_dir"]) if opts["greenbutton_dir"] else green_button_dir()
        out_dir = Path(opts["out_dir"]) if opts["out_dir"] else Path(settings.VAR_DIR) / "demo"
        options = Options(quick=opts["quick"], seed=opts["seed"], greenbutton_dir=gb_dir, out_dir=out_dir,
                          timeout=opts["timeout"], force_flush=opts["flush"])
        verbose = opts["verbosity"] >= 1
        if opts["verbosity"] < 2:  # one line per eager task is noise here; -v 2 shows them
            logging.getLogger("celery").setLevel(logging.WARNING)
            logging.getLogger("kombu").setLevel(logging.ERROR)  # "no hostname" when tasks run eagerly
        demo = Demo(options, log=(lambda line: self.stdout.write(line)) if verbose else (lambda line: None))
        try:
            result = demo.run()
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
        summary = build_summary(result)
        result.report_path = write_html(result, summary, out_dir / "report.html")
        result.timings["total"] = round(time.monotonic() - started, 1)
        self.stdout.write(summary_text(result, summary))
        self.stdout.write(forecast_text(result.event_ids))
        self.stdout.write(f"Finished in {result.timings['total']} s.")
        if opts["ci_check"]:
            self.ci_check(result, summary)

    def ci_check(self, result, summary) -> None:
        from settlement.models import BillCreditExport, EventSettlement

        problems = []
        if not result.event_ids:
            problems.append("no events")
        if not EventSettlement.objects.exists():
            problems.append("no event settlements")
        if summary.file_total <= 0:
            problems.append(f"credits are not positive ({summary.file_total})")
        if result.export_path is None or not result.export_path.exists():
            problems.append("the export file is missing")
        db_total = sum((x.total_amount for x in BillCreditExport.objects.all()), 0)
        if summary.file_total != db_total:
            problems.append(f"export file total {summary.file_total} != database export total {db_total}")
        from cpm.notifications.models import Message

        sent = Message.objects.filter(status="sent").count()
        files = sum(1 for _ in result.outbox_dir.rglob("*.*")) if result.outbox_dir else 0
        if not sent or files != sent:
            problems.append(f"{sent} messages sent but {files} files in the outbox {result.outbox_dir}")
        report = check_demo(result.export_path)
        self.stdout.write(report.text())
        problems += report.errors
        if problems:
            raise CommandError("demo check failed:\n  " + "\n  ".join(problems))
        self.stdout.write(self.style.SUCCESS("demo check passed: events, settlements, credits, export total and the "
                                             "independent recomputation agree."))
