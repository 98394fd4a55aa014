"""Retention of interval data (issue 20): months older than the retention leave the database, archived first.

On PostgreSQL a month is a partition (``settlement.meterdata.partitions``): it is detached, written to a gzip CSV
archive with ``COPY ... TO STDOUT`` (header line, the table's columns, ``values`` as PostgreSQL hex bytea), and
dropped: no row-by-row delete, no bloat. On SQLite (the embedded default, a plain table) the month's rows are written
to the same CSV and deleted.

A month is kept, whatever the retention, while an *unsettled* event needs it: an event not cancelled that is not
completed, or has a participation (not cancelled) without an approved or reversed event settlement. An event needs
the months of its day and of ``NEEDED_DAYS_BEFORE`` days before it (the baseline lookback: 45 days for the CAISO and
PJM methods, with a margin). The DEFAULT partition is never dropped; its old rows are moved to their months first.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q

from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import DomainValidationError
from events.choices import EventStatus, ParticipationStatus
from events.models import Event, Participation
from settlement.choices import EventSettlementStatus
from settlement.meterdata import partitions
from settlement.meterdata.models import IntervalDay

NEEDED_DAYS_BEFORE = 62  # the longest baseline lookback (45 calendar days) and a margin
SETTLED = (EventSettlementStatus.APPROVED, EventSettlementStatus.REVERSED)


@dataclass
class RetentionResult:
    """What a retention run did: months (``YYYY-MM``) removed with their rows and archive files, months kept because
    unsettled events need them (with the events' names), and whether it was a dry run."""

    cutoff: dt.date
    removed: list[dict] = field(default_factory=list)  # {month, rows, archive}
    kept: list[dict] = field(default_factory=list)  # {month, events: [names]}
    dry_run: bool = False


def unsettled_events(*, before: dt.date) -> list[Event]:
    """Events whose data (their day and ``NEEDED_DAYS_BEFORE`` days before) reaches before ``before`` (UTC date) and
    that are not settled: not cancelled, and not completed or with a participation (not cancelled) lacking an
    approved or reversed event settlement. Ordered by start."""
    from settlement.models import EventSettlement

    reach = dt.datetime.combine(before + dt.timedelta(days=NEEDED_DAYS_BEFORE), dt.time(), tzinfo=dt.UTC)
    open_part = Participation.objects.filter(event=OuterRef("pk")).exclude(
        status=ParticipationStatus.CANCELLED).exclude(
        Exists(EventSettlement.objects.filter(participation=OuterRef("pk"), status__in=SETTLED)))
    return list(Event.objects.filter(start__lt=reach).exclude(status=EventStatus.CANCELLED)
                .filter(~Q(status=EventStatus.COMPLETED) | Exists(open_part)).order_by("start", "pk"))


def _needed_months(events: list[Event]) -> dict[dt.date, list[str]]:
    needed: dict[dt.date, list[str]] = {}
    for e in events:
        first = (e.start - dt.timedelta(days=NEEDED_DAYS_BEFORE)).astimezone(dt.UTC).date()
        for m in partitions.months_between(first, e.end.astimezone(dt.UTC).date()):
            needed.setdefault(m, []).append(e.name)
    return needed


@use_case("meter_data.retire", Cap.LOAD_METER_DATA)
def interval_data_retire(*, now: dt.datetime, actor, keep_months: int | None = None, before: dt.date | None = None,
                         archive_dir: str | Path | None = None, archive: bool = True,
                         dry_run: bool = False) -> RetentionResult:
    """Remove the interval data of whole UTC months before a cutoff, archiving each month first; audited.

    keep_months: months kept before ``now``'s UTC month (12 keeps this month and the 12 before it), default the
        setting ``CPM_INTERVAL_RETENTION_MONTHS``; or before: the cutoff month's first day (months before it go).
        Exactly one of them, else ``DomainValidationError`` (``keep_months``); a cutoff after ``now``'s month is
        refused (``before``).
    archive_dir: where the archives go (default ``CPM_INTERVAL_ARCHIVE_DIR``), one ``interval-days-YYYY-MM.csv.gz``
        per month; archive=False drops without archive.
    Months an unsettled event needs (``unsettled_events``) are kept and listed in the result with those events;
    the DEFAULT partition is never dropped: its rows of months before the cutoff are first moved into partitions of
    their months (``partitions.ensure_months``), which then go like the others. Each month removed writes an audit
    entry ``interval_partition.dropped`` (PostgreSQL) or ``interval_partition.deleted`` (SQLite) with its rows and
    archive file. dry_run: only says what would go.
    One transaction: an error removes nothing (an archive file already written stays; it is rewritten next time).
    """
    this_month = partitions.month_start(now.astimezone(dt.UTC).date())
    if keep_months is None and before is None:
        keep_months = int(getattr(settings, "CPM_INTERVAL_RETENTION_MONTHS", 0) or 0) or None
    if (keep_months is None) == (before is None):
        raise DomainValidationError({"keep_months": ["give either keep_months (months to keep) or before (a month), "
                                                     "or set CPM_INTERVAL_RETENTION_MONTHS"]})
    if keep_months is not None:
        if keep_months < 1:
            raise DomainValidationError({"keep_months": ["must be 1 or more"]})
        cutoff = this_month
        for _ in range(keep_months):
            cutoff = (cutoff - dt.timedelta(days=1)).replace(day=1)
    else:
        cutoff = partitions.month_start(before)
        if cutoff > this_month:
            raise DomainValidationError({"before": [f"{cutoff:%Y-%m} is after this month ({this_month:%Y-%m}): "
                                                    "only past months can be removed"]})
    folder = Path(archive_dir or getattr(settings, "CPM_INTERVAL_ARCHIVE_DIR", "") or
                  Path(settings.MEDIA_ROOT) / "interval-archive")
    result = RetentionResult(cutoff=cutoff, dry_run=dry_run)
    with transaction.atomic():
        if not dry_run:  # old rows in the DEFAULT partition: into partitions of their months first, to go with them
            partitions.ensure_months(m for m in partitions.default_months() if m < cutoff)
        needed = _needed_months(unsettled_events(before=cutoff))
        for month in _months_before(cutoff):
            label = f"{month:%Y-%m}"
            if month in needed:
                result.kept.append({"month": label, "events": needed[month]})
                continue
            if dry_run:
                result.removed.append({"month": label, "rows": _count(month), "archive": None})
                continue
            path = folder / f"interval-days-{label}.csv.gz" if archive else None
            rows = _remove(month, path)
            result.removed.append({"month": label, "rows": rows, "archive": str(path) if path else None})
            partitions.audit_partition(
                code="interval_partition.dropped" if partitions.is_partitioned() else "interval_partition.deleted",
                month=label, now=now, actor=actor, reason=f"retention: months before {cutoff:%Y-%m} go",
                changes={"rows": rows, "archive": str(path) if path else None})
    return result


def _months_before(cutoff: dt.date) -> list[dt.date]:
    """Months before ``cutoff`` that hold interval data (PostgreSQL: that have a partition)."""
    if partitions.is_partitioned():
        return [p.first for p in partitions.partitions() if p.first is not None and p.first < cutoff]
    days = IntervalDay.objects.filter(day__lt=cutoff).dates("day", "month")
    return [d.replace(day=1) for d in days]


def _count(month: dt.date) -> int:
    return IntervalDay.objects.filter(day__gte=month, day__lt=partitions.next_month(month)).count()


def _remove(month: dt.date, path: Path | None) -> int:
    """Archive (when ``path``) and remove one month; returns its rows."""
    end = partitions.next_month(month)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if partitions.is_partitioned():
        name = partitions.partition_name(month)
        with connection.cursor() as cur:
            # deferred foreign-key checks of rows written earlier in this transaction must run before the drop
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute(f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {name}")
            cur.execute(f"SELECT count(*) FROM {name}")
            rows = cur.fetchone()[0]
            if path is not None:
                with gzip.open(path, "wb") as out, \
                        cur.cursor.copy(f"COPY {name} TO STDOUT (FORMAT CSV, HEADER)") as copy:
                    for block in copy:
                        out.write(block)
            cur.execute(f"DROP TABLE {name}")
            cur.execute("SET CONSTRAINTS ALL DEFERRED")  # back to Django's foreign keys' initially deferred
        return rows
    qs = IntervalDay.objects.filter(day__gte=month, day__lt=end)
    columns = [f.column for f in IntervalDay._meta.concrete_fields]
    rows = 0
    if path is not None:
        with gzip.open(path, "wt", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for row in qs.order_by("pk").values_list(*[f.attname for f in IntervalDay._meta.concrete_fields]):
                writer.writerow(["\\x" + bytes(v).hex() if isinstance(v, bytes | memoryview) else
                                 ("t" if v is True else "f" if v is False else "" if v is None else
                                  v.isoformat() if hasattr(v, "isoformat") else v) for v in row])
                rows += 1
    deleted, _ = qs.delete()
    return deleted if path is None else rows


__all__ = ["NEEDED_DAYS_BEFORE", "RetentionResult", "interval_data_retire", "unsettled_events"]
