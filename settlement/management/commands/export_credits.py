"""Export approved customer settlements as a bill-credit batch file: ``manage.py export_credits [--program CODE]
[--out FILE]`` (``--batch ID`` writes an existing batch again, same bytes)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from cpm.base.capabilities import system_actor
from cpm.base.money import format_money
from programs.models import Program
from settlement.models import BillCreditExport
from settlement.services import bill_credit_export_create

ACTOR = system_actor("command:export_credits")


def _write(out: str, export: BillCreditExport, consequence: str) -> None:
    try:
        Path(out).write_bytes(export.content.encode())
    except OSError as exc:
        raise CommandError(f"--out: cannot write {out}: {exc.strerror or exc}; {consequence}") from exc


class Command(BaseCommand):
    help = "Export approved customer settlements as bill credits (CSV), or write an existing batch again."

    def add_arguments(self, parser):
        parser.add_argument("--program", help="Program code (default: every program).")
        parser.add_argument("--batch", type=int, help="Write this existing batch instead of creating one.")
        parser.add_argument("--out", help="File to write (default: standard output).")

    def handle(self, *args, program=None, batch=None, out=None, **options):
        if batch is not None:  # --batch 0 names no batch: it must not export a new one
            export = BillCreditExport.objects.filter(pk=batch).first()
            if export is None:
                raise CommandError(f"No export batch {batch}.")
            if out:
                _write(out, export, "nothing written.")
        else:
            prog = None
            if program:
                prog = Program.objects.filter(code=program).first()
                if prog is None:
                    raise CommandError(f"No program {program!r}.")
            # One transaction with the file: a file that cannot be written leaves the settlements approved for the
            # next run, never exported in a batch nobody received.
            with transaction.atomic():
                export = bill_credit_export_create(now=timezone.now(), actor=ACTOR, program=prog)
                if export is None:
                    self.stderr.write("Nothing to export: no approved customer settlement left.")
                    return
                if out:
                    _write(out, export, "nothing exported.")
        if out:
            self.stderr.write(f"{export.file_name}: {export.line_count} lines, {format_money(export.total_amount)} "
                              f"-> {out}")
        else:
            self.stdout.write(export.content, ending="")
