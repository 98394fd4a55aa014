"""Monthly partitions of interval data (issue 20): ``settlement_intervalday`` on PostgreSQL is ``PARTITION BY RANGE
(day)`` with one partition per UTC calendar month, ``settlement_intervalday_pYYYY_MM`` = [first of the month, first
of the next month), and a DEFAULT partition, ``settlement_intervalday_default``, the safety net for rows of a month
without its partition (written by something other than the loaders, e.g. the ORM). Migration
``settlement.0008_interval_day_partitioned`` made the table; SQLite keeps a plain table and everything here is a
no-op there (``is_partitioned()`` is False).

Who creates partitions:
- the loaders, for the months they are about to write (``ensure_span``, at the start of a load's merge, after its
  advisory locks and before it reads or writes the table: a load never waits for a lock on the table while holding
  one on it, so two loads creating months cannot deadlock);
- the maintenance task (``interval_partitions_maintain``, daily on beat), for the current month and the next
  ``months_ahead``, so loads of current data find their month already there; it also moves rows that landed in the
  DEFAULT partition into partitions of their months.

Creating a partition takes an ACCESS EXCLUSIVE lock on the table until its transaction commits (PostgreSQL 15), so a
load that back-fills a month not yet partitioned blocks reads of interval data until it commits; months made ahead by
the task cost nothing at load time. Creators are serialised by an advisory lock (``_LOCK_KEY``).

Retention (detaching, archiving and dropping old months) is ``settlement.services.retention``, which checks that no
unsettled event needs the months first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction

from cpm.base.audit import actor_label, actor_user
from cpm.base.capabilities import Cap, use_case
from cpm.models import AuditEntry

TABLE = "settlement_intervalday"
DEFAULT = f"{TABLE}_default"
_LOCK_KEY = 727_002  # pg_advisory_xact_lock(key): creators of interval partitions
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")


@dataclass(frozen=True)
class Partition:
    """One partition: its table name and its months' bounds [first, end) (both None for DEFAULT)."""

    name: str
    first: dt.date | None
    end: dt.date | None

    @property
    def is_default(self) -> bool:
        return self.first is None

    @property
    def label(self) -> str:
        return "DEFAULT" if self.first is None else f"{self.first:%Y-%m}"


def month_start(day: dt.date) -> dt.date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def next_month(first: dt.date) -> dt.date:
    """The first day of the month after ``first``'s month."""
    return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def months_between(first_day: dt.date, last_day: dt.date) -> list[dt.date]:
    """First days of every month from ``first_day``'s to ``last_day``'s, both included (empty if reversed)."""
    months, m = [], month_start(first_day)
    while m <= last_day:
        months.append(m)
        m = next_month(m)
    return months


def partition_name(first: dt.date) -> str:
    """``2026-07-01`` -> ``settlement_intervalday_p2026_07``."""
    return f"{TABLE}_p{first:%Y_%m}"


def is_partitioned() -> bool:
    """True on PostgreSQL once migration 0007 made the table partitioned (one catalog query)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
        return cur.fetchone() is not None


def partitions() -> list[Partition]:
    """The table's partitions, months in order, DEFAULT last; [] when the table is not partitioned."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cur:
        cur.execute("SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)", [TABLE])
        rows = cur.fetchall()
    found = []
    for name, bound in rows:
        m = _BOUND.search(bound or "")
        found.append(Partition(name, dt.date.fromisoformat(m.group(1)), dt.date.fromisoformat(m.group(2)))
                     if m else Partition(name, None, None))
    return sorted(found, key=lambda p: (p.first is None, p.first or dt.date.min))


def ensure_span(first_day: dt.date, last_day: dt.date) -> list[str]:
    """Make sure every month from ``first_day``'s to ``last_day``'s (UTC dates) has its partition; returns the
    names created. See ``ensure_months``."""
    return ensure_months(months_between(first_day, last_day))


def ensure_months(months: Iterable[dt.date]) -> list[str]:
    """Create the partitions missing among ``months`` (first days of months) in the current transaction; returns the
    names created ([] when all exist, which costs one catalog query, or when the table is not partitioned).

    Rows of such a month already in the DEFAULT partition are moved into the new partition (the partition is created
    detached, filled, then attached). Serialised among creators by an advisory transaction lock.
    """
    wanted = sorted({month_start(m) for m in months})
    if not wanted or connection.vendor != "postgresql":
        return []
    with connection.cursor() as cur:
        names = [partition_name(m) for m in wanted]
        cur.execute("SELECT n FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL", [names])
        missing = {row[0] for row in cur.fetchall()}
        if not missing or not is_partitioned():
            return []
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        created = []
        for first in wanted:
            name = partition_name(first)
            if name not in missing:
                continue
            cur.execute("SELECT to_regclass(%s)", [name])  # made by another creator while this one waited
            if cur.fetchone()[0] is not None:
                continue
            end = next_month(first)
            bounds = f"FOR VALUES FROM ('{first.isoformat()}') TO ('{end.isoformat()}')"
            cur.execute(f"SELECT 1 FROM {DEFAULT} WHERE day >= %s AND day < %s LIMIT 1", [first, end])
            if cur.fetchone() is None:
                cur.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} {bounds}")
            else:  # the DEFAULT partition holds rows of this month: move them first
                cur.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
                cur.execute(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE day >= %s AND day < %s RETURNING *) "
                            f"INSERT INTO {name} SELECT * FROM moved", [first, end])
                cur.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} {bounds}")
            created.append(name)
        return created


def default_months() -> list[dt.date]:
    """First days of the months of the rows in the DEFAULT partition (they belong in partitions of their own)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cur:
        cur.execute(f"SELECT DISTINCT date_trunc('month', day)::date FROM {DEFAULT} ORDER BY 1")
        return [row[0] for row in cur.fetchall()]


def audit_partition(*, code: str, month: str, now: dt.datetime, actor, reason: str = "",
                    changes: dict | None = None) -> AuditEntry:
    """One audit entry about a month of interval data (``object_type`` settlement.intervalday, ``object_id`` the
    month ``YYYY-MM``): ``interval_partition.created`` / ``.archived`` / ``.dropped`` / ``.deleted``."""
    return AuditEntry.objects.create(
        at=now, actor=actor_user(actor), actor_label=actor_label(actor)[:150],
        action=AuditEntry.Action.UPDATE if code.endswith("created") else "delete", code=code,
        object_type="settlement.intervalday", object_id=month, object_repr=f"Interval data of {month}",
        reason=reason, changes=changes or {})


@use_case("meter_data.partitions_maintain", Cap.LOAD_METER_DATA)
def interval_partitions_maintain(*, now: dt.datetime, actor, months_ahead: int = 3) -> list[str]:
    """Create the partitions of interval data for ``now``'s UTC month and the next ``months_ahead`` months, and
    partitions for the months of rows found in the DEFAULT partition (moving them there). Idempotent: a second run
    creates nothing. Each partition created is audited (``interval_partition.created``). Returns the names created
    ([] on SQLite). The daily beat task ``settlement.interval_partitions_maintain`` runs it."""
    if months_ahead < 0:
        from cpm.base.errors import DomainValidationError

        raise DomainValidationError({"months_ahead": ["must be 0 or more"]})
    if not is_partitioned():
        return []
    months = [month_start(now.astimezone(dt.UTC).date())]
    for _ in range(months_ahead):
        months.append(next_month(months[-1]))
    with transaction.atomic():
        created = ensure_months(months + default_months())
        for name in created:
            month = f"{name[-7:-3]}-{name[-2:]}"
            audit_partition(code="interval_partition.created", month=month, now=now, actor=actor,
                            reason=f"partition {name} created")
    return created
