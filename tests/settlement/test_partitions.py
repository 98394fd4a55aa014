"""Interval data partitioned by month on PostgreSQL (issue 20, item 3): partitions made for the months loaded, rows
routed to their month, the DEFAULT partition's rows moved by the maintenance task, settlement unchanged by where
the rows live, and retention removing (archived) only old months that no unsettled event needs, on PostgreSQL and on
SQLite (a plain table there)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from decimal import Decimal

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from cpm.base.errors import DomainValidationError, PermissionDenied
from cpm.models import AuditEntry
from programs.choices import IncentiveBasis, IncentiveKind
from settlement import services
from settlement.meterdata import partitions
from settlement.meterdata.loaders import meter_readings_load
from settlement.models import EventSettlement, IntervalDay
from settlement.services.retention import interval_data_retire
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import (
    EventFactory,
    EventSettlementFactory,
    ParticipationFactory,
    event_hours,
    run_on_commit,
    write_hourly,
)

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def load_days(sp, days: list[dt.date], kwh: float = 1.0, now=NOW, expect: str = "new"):
    """Hourly readings of ``sp`` for ``days`` through the loader (array form)."""
    starts = np.array([int(dt.datetime.combine(d, dt.time(), tzinfo=UTC).timestamp()) + 3600 * h
                       for d in days for h in range(24)], dtype=np.int64)
    load = meter_readings_load(now=now, arrays={"service_point": np.full(starts.size, sp.pk), "start": starts,
                                                "kwh": np.full(starts.size, kwh)}, actor=TEST_ACTOR)
    assert getattr(load, f"readings_{expect}") == starts.size, load.summary
    return load


def where(sp) -> dict[dt.date, str]:
    """{day: the partition holding its current row} (PostgreSQL: ``tableoid``)."""
    with connection.cursor() as cur:
        cur.execute("SELECT day, tableoid::regclass::text FROM settlement_intervalday WHERE service_point_id = %s "
                    "AND is_current ORDER BY day", [sp.pk])
        return dict(cur.fetchall())


def inherits() -> set[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = "
                    "'settlement_intervalday'::regclass")
        return {row[0] for row in cur.fetchall()}


# ------------------------------------------------------------------------------------------------------ PostgreSQL
@pytest.mark.postgres
def test_the_table_is_partitioned_by_month_with_a_default_partition_and_id_day_key():
    assert partitions.is_partitioned()
    with connection.cursor() as cur:
        cur.execute("SELECT pg_get_partkeydef('settlement_intervalday'::regclass)")
        assert cur.fetchone()[0] == "RANGE (day)"
        cur.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'settlement_intervalday_pkey'")
        assert cur.fetchone()[0] == "PRIMARY KEY (id, day)"
    assert "settlement_intervalday_default" in inherits()
    assert [p.label for p in partitions.partitions()][-1] == "DEFAULT"


@pytest.mark.postgres
def test_a_load_creates_the_partitions_of_its_months_and_rows_go_to_their_month():
    sp = ServicePointFactory()
    assert "settlement_intervalday_p2031_01" not in inherits()
    load_days(sp, [dt.date(2031, 1, 31), dt.date(2031, 2, 1), dt.date(2031, 3, 31)])
    assert {"settlement_intervalday_p2031_01", "settlement_intervalday_p2031_02",
            "settlement_intervalday_p2031_03"} <= inherits()
    assert where(sp) == {dt.date(2031, 1, 31): "settlement_intervalday_p2031_01",
                         dt.date(2031, 2, 1): "settlement_intervalday_p2031_02",
                         dt.date(2031, 3, 31): "settlement_intervalday_p2031_03"}
    # a correction writes version 2 in the same month and supersedes version 1 there
    load_days(sp, [dt.date(2031, 2, 1)], kwh=2.0, expect="corrected")
    rows = list(IntervalDay.objects.filter(service_point=sp, day=dt.date(2031, 2, 1)).order_by("version")
                .values_list("version", "is_current"))
    assert rows == [(1, False), (2, True)]
    assert where(sp)[dt.date(2031, 2, 1)] == "settlement_intervalday_p2031_02"
    # the ORM reads across partitions and finds a row by its id alone
    row = IntervalDay.objects.get(service_point=sp, day=dt.date(2031, 3, 31))
    assert IntervalDay.objects.get(pk=row.pk).day == dt.date(2031, 3, 31)


@pytest.mark.postgres
def test_maintenance_creates_months_ahead_and_moves_default_rows_into_their_month_audited():
    sp = ServicePointFactory()
    write_hourly(service_point=sp, first=dt.date(2032, 5, 30), last=dt.date(2032, 6, 2))  # the ORM: no partition
    assert set(where(sp).values()) == {"settlement_intervalday_default"}
    created = partitions.interval_partitions_maintain(now=dt.datetime(2032, 11, 20, tzinfo=UTC), months_ahead=2,
                                                      actor=TEST_ACTOR)
    assert created == ["settlement_intervalday_p2032_05", "settlement_intervalday_p2032_06",
                       "settlement_intervalday_p2032_11", "settlement_intervalday_p2032_12",
                       "settlement_intervalday_p2033_01"]
    assert where(sp) == {dt.date(2032, 5, 30): "settlement_intervalday_p2032_05",
                         dt.date(2032, 5, 31): "settlement_intervalday_p2032_05",
                         dt.date(2032, 6, 1): "settlement_intervalday_p2032_06",
                         dt.date(2032, 6, 2): "settlement_intervalday_p2032_06"}
    entries = AuditEntry.objects.filter(code="interval_partition.created").order_by("object_id")
    assert [e.object_id for e in entries] == ["2032-05", "2032-06", "2032-11", "2032-12", "2033-01"]
    assert entries[0].actor_label == "system:tests"
    # idempotent
    assert partitions.interval_partitions_maintain(now=dt.datetime(2032, 11, 20, tzinfo=UTC), months_ahead=2,
                                                   actor=TEST_ACTOR) == []


@pytest.mark.postgres
def test_settlement_is_the_same_whichever_partition_holds_the_rows():
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    event = EventFactory(program=program)
    sub = active_participant(program=program)
    write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16),
                 overrides={h: 0.5 for h in event_hours()})
    part = ParticipationFactory(event=event, subscription=sub)
    assert set(where(sub.enrollment.service_point).values()) == {"settlement_intervalday_default"}
    now = dt.datetime(2026, 7, 20, 12, tzinfo=UTC)
    with run_on_commit():
        services.event_settle(event=event, now=now, actor=TEST_ACTOR)
    first = EventSettlement.objects.get(participation=part)
    assert (first.kwh_avoided, first.amount) == (Decimal("4.5000"), Decimal("5.63"))

    partitions.interval_partitions_maintain(now=now, months_ahead=0, actor=TEST_ACTOR)
    assert set(where(sub.enrollment.service_point).values()) == {
        "settlement_intervalday_p2026_05", "settlement_intervalday_p2026_06", "settlement_intervalday_p2026_07"}
    with run_on_commit():
        batch = services.event_settle(event=event, now=now + dt.timedelta(hours=1), actor=TEST_ACTOR,
                                      recalculate=True)
    batch.refresh_from_db()
    again = EventSettlement.objects.get(participation=part)
    assert (batch.items_unchanged, batch.items_corrected) == (1, 0)
    assert (again.kwh_avoided, again.amount, again.inputs) == (first.kwh_avoided, first.amount, first.inputs)


@pytest.mark.postgres
def test_retention_detaches_archives_and_drops_partitions(tmp_path):
    sp = ServicePointFactory()
    load_days(sp, [dt.date(2025, 1, 10), dt.date(2025, 2, 10), dt.date(2026, 11, 1)])
    result = interval_data_retire(now=NOW, before=dt.date(2025, 3, 1), archive_dir=tmp_path, actor=TEST_ACTOR)
    assert [(r["month"], r["rows"]) for r in result.removed] == [("2025-01", 1), ("2025-02", 1)]
    names = inherits()
    assert "settlement_intervalday_p2025_01" not in names and "settlement_intervalday_p2025_02" not in names
    assert "settlement_intervalday_p2026_11" in names and "settlement_intervalday_default" in names
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass('settlement_intervalday_p2025_01')")
        assert cur.fetchone()[0] is None  # dropped, not only detached
    assert audit_codes() == [("interval_partition.dropped", "2025-01"), ("interval_partition.dropped", "2025-02")]


@pytest.mark.postgres
def test_retention_takes_old_rows_of_the_default_partition_too(tmp_path):
    sp = ServicePointFactory()
    write_hourly(service_point=sp, first=dt.date(2024, 3, 31), last=dt.date(2024, 4, 1))  # ORM: DEFAULT partition
    write_hourly(service_point=sp, first=dt.date(2036, 3, 1), last=dt.date(2036, 3, 1))  # DEFAULT, a future month
    result = interval_data_retire(now=NOW, before=dt.date(2024, 5, 1), archive_dir=tmp_path, actor=TEST_ACTOR)
    assert [(r["month"], r["rows"]) for r in result.removed] == [("2024-03", 1), ("2024-04", 1)]
    assert where(sp) == {dt.date(2036, 3, 1): "settlement_intervalday_default"}


# --------------------------------------------------------------------------------- both databases (SQLite: rows)
def audit_codes():
    return list(AuditEntry.objects.filter(code__startswith="interval_partition.").exclude(
        code="interval_partition.created").order_by("object_id").values_list("code", "object_id"))


def archived(path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def unsettled():
    """A completed event on 2026-07-15 with a participation that has no approved settlement: it needs 2026-05
    (62 days before), 2026-06 and 2026-07."""
    program = ProgramFactory()
    event = EventFactory(program=program, name="Heat wave")
    part = ParticipationFactory(event=event, subscription=active_participant(program=program))
    return event, part


def test_retention_removes_old_months_archived_and_keeps_months_unsettled_events_need(tmp_path, unsettled):
    event, part = unsettled
    sp = ServicePointFactory()
    days = [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 2, 1), dt.date(2026, 5, 20),
            dt.date(2026, 6, 30), dt.date(2026, 7, 15), dt.date(2026, 8, 3)]
    load_days(sp, days)
    result = interval_data_retire(now=NOW, before=dt.date(2026, 8, 1), archive_dir=tmp_path, actor=TEST_ACTOR)
    assert [(r["month"], r["rows"]) for r in result.removed] == [("2026-01", 2), ("2026-02", 1)]
    assert result.kept == [{"month": "2026-05", "events": ["Heat wave"]},
                           {"month": "2026-06", "events": ["Heat wave"]},
                           {"month": "2026-07", "events": ["Heat wave"]}]
    left = sorted(IntervalDay.objects.filter(service_point=sp).values_list("day", flat=True))
    assert left == days[3:]
    rows = archived(tmp_path / "interval-days-2026-01.csv.gz")
    assert [r["day"] for r in rows] == ["2026-01-05", "2026-01-06"]
    assert rows[0]["service_point_id"] == str(sp.pk) and rows[0]["values"].startswith("\\x")
    assert len(bytes.fromhex(rows[0]["values"][2:])) == 24 * 8  # 24 float64 kWh
    code = "interval_partition.dropped" if connection.vendor == "postgresql" else "interval_partition.deleted"
    assert audit_codes() == [(code, "2026-01"), (code, "2026-02")]
    entry = AuditEntry.objects.get(code=code, object_id="2026-01")
    assert entry.changes == {"rows": 2, "archive": str(tmp_path / "interval-days-2026-01.csv.gz")}

    # once the event is settled (its settlement approved) its months may go too
    EventSettlementFactory(participation=part, status="approved")
    result = interval_data_retire(now=NOW, before=dt.date(2026, 8, 1), archive_dir=tmp_path, actor=TEST_ACTOR)
    assert [(r["month"], r["rows"]) for r in result.removed] == [("2026-05", 1), ("2026-06", 1), ("2026-07", 1)]
    assert result.kept == []
    assert list(IntervalDay.objects.filter(service_point=sp).values_list("day", flat=True)) == [dt.date(2026, 8, 3)]
    # idempotent: nothing older is left
    assert interval_data_retire(now=NOW, before=dt.date(2026, 8, 1), archive_dir=tmp_path,
                                actor=TEST_ACTOR).removed == []


def test_a_cancelled_or_settled_event_does_not_hold_its_months(tmp_path, unsettled):
    event, part = unsettled
    event.status = "cancelled"
    event.save(update_fields=["status"])
    sp = ServicePointFactory()
    load_days(sp, [dt.date(2026, 7, 1)])
    result = interval_data_retire(now=NOW, keep_months=3, archive=False, actor=TEST_ACTOR)
    assert result.cutoff == dt.date(2026, 9, 1)
    assert [(r["month"], r["rows"], r["archive"]) for r in result.removed] == [("2026-07", 1, None)]
    assert not IntervalDay.objects.filter(service_point=sp).exists()


def test_dry_run_removes_nothing(tmp_path):
    sp = ServicePointFactory()
    load_days(sp, [dt.date(2026, 3, 3)])
    result = interval_data_retire(now=NOW, before=dt.date(2026, 4, 1), archive_dir=tmp_path, dry_run=True,
                                  actor=TEST_ACTOR)
    assert [(r["month"], r["rows"]) for r in result.removed] == [("2026-03", 1)]
    assert IntervalDay.objects.filter(service_point=sp).count() == 1
    assert not list(tmp_path.iterdir()) and audit_codes() == []


def test_retention_refuses_bad_arguments_and_actors_without_the_capability(settings, django_user_model):
    settings.CPM_INTERVAL_RETENTION_MONTHS = 0
    with pytest.raises(DomainValidationError) as err:
        interval_data_retire(now=NOW, actor=TEST_ACTOR)
    assert "keep_months" in err.value.errors
    with pytest.raises(DomainValidationError) as err:
        interval_data_retire(now=NOW, before=dt.date(2027, 1, 1), actor=TEST_ACTOR)
    assert err.value.errors["before"] == ["2027-01 is after this month (2026-12): only past months can be removed"]
    with pytest.raises(DomainValidationError):
        interval_data_retire(now=NOW, keep_months=0, actor=TEST_ACTOR)
    clerk = django_user_model.objects.create_user("clerk", password="x")
    with pytest.raises(PermissionDenied):
        interval_data_retire(now=NOW, keep_months=12, actor=clerk)
    with pytest.raises(PermissionDenied):
        partitions.interval_partitions_maintain(now=NOW, actor=clerk)


def test_the_command_reports_removed_and_kept_months(tmp_path, unsettled, capsys):
    sp = ServicePointFactory()
    load_days(sp, [dt.date(2026, 2, 2), dt.date(2026, 6, 2)])
    call_command("interval_retention", "--before", "2026-07", "--archive-dir", str(tmp_path))
    out = capsys.readouterr().out
    assert "removed 2026-02: 1 interval days, archived to" in out
    assert "kept 2026-06: needed by unsettled events Heat wave" in out
    assert "months before 2026-07: 1 removed, 1 kept" in out


def test_the_retention_task_does_nothing_unless_a_retention_is_set(settings):
    from settlement.tasks import interval_data_retire as task

    sp = ServicePointFactory()
    load_days(sp, [dt.date(2020, 2, 2)])
    settings.CPM_INTERVAL_RETENTION_MONTHS = 0
    assert task(now=NOW.isoformat())["disabled"] is True
    settings.CPM_INTERVAL_RETENTION_MONTHS = 24
    settings.CPM_INTERVAL_ARCHIVE_DIR = ""
    settings.MEDIA_ROOT = str(__import__("tempfile").mkdtemp())
    result = task(now=NOW.isoformat())
    assert [(r["month"], r["rows"]) for r in result["removed"]] == [("2020-02", 1)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_row_of_a_populated_table_and_its_reverse_too():
    from django.db.migrations.executor import MigrationExecutor

    sp = ServicePointFactory()
    load_days(sp, [dt.date(2040, 4, 30), dt.date(2040, 5, 1)])
    load_days(sp, [dt.date(2040, 5, 1)], kwh=3.0, expect="corrected")
    before = list(IntervalDay.objects.order_by("pk").values_list("pk", "day", "version", "is_current", "values"))
    assert len(before) == 3

    def migrate(target):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([target])

    try:
        migrate(("settlement", "0006_abnormal_days"))  # back to a plain table: rows kept
        assert not partitions.is_partitioned()
        rows = list(IntervalDay.objects.order_by("pk").values_list("pk", "day", "version", "is_current", "values"))
        assert [r[:4] for r in rows] == [r[:4] for r in before] and [bytes(r[4]) for r in rows] == [
            bytes(r[4]) for r in before]
        load_days(sp, [dt.date(2040, 6, 2)])  # the plain table takes loads (ids from its identity)
    finally:
        migrate(("settlement", "0008_interval_day_partitioned"))
    assert partitions.is_partitioned()
    assert [p.label for p in partitions.partitions()] == ["2040-04", "2040-05", "2040-06", "DEFAULT"]
    after = list(IntervalDay.objects.order_by("pk").values_list("pk", "day", "version", "is_current"))
    assert after[:3] == [r[:4] for r in before] and after[3][1:] == (dt.date(2040, 6, 2), 1, True)
    assert where(sp) == {dt.date(2040, 4, 30): "settlement_intervalday_p2040_04",
                         dt.date(2040, 5, 1): "settlement_intervalday_p2040_05",
                         dt.date(2040, 6, 2): "settlement_intervalday_p2040_06"}
    # the sequence continues after the copied ids
    load_days(sp, [dt.date(2040, 6, 3)])
    assert IntervalDay.objects.get(day=dt.date(2040, 6, 3)).pk > after[-1][0]
    with connection.cursor() as cur:  # this test's partitions would outlive its rows (a flush truncates)
        for month in ("04", "05", "06"):
            cur.execute(f"DROP TABLE settlement_intervalday_p2040_{month}")


@pytest.mark.postgres
def test_the_loaders_array_parameters_round_trip_any_text_and_integer():
    from cpm.base.bulk import int_array_literal as _int_array
    from cpm.base.bulk import text_array_literal as _text_array

    texts = ['SP "1"', "back\\slash", "a,b", "{x}", " lead", "NULL", "é-ü", "", "x'y"]
    with connection.cursor() as cur:
        cur.execute("SELECT unnest(%s::text[])", [_text_array(texts)])
        assert [r[0] for r in cur.fetchall()] == texts
        cur.execute("SELECT unnest(%s::bigint[])", [_int_array([1, 2**62, 0])])
        assert [r[0] for r in cur.fetchall()] == [1, 2**62, 0]
        # plain texts (no quote, no backslash) are joined in one piece: the same values come back
        plain = ["SP00000001", "a,b", "{x}", " lead", "NULL", "é-ü", "", "x'y"]
        assert _text_array(plain) == '{"SP00000001","a,b","{x}"," lead","NULL","é-ü","","x\'y"}'
        cur.execute("SELECT unnest(%s::text[])", [_text_array(plain)])
        assert [r[0] for r in cur.fetchall()] == plain
        assert _text_array([]) == "{}"


def test_a_load_reads_back_exactly_the_stored_rows_of_its_service_point_days():
    """``loaders._fetch_current``: the current rows of the (service point, day) pairs asked for, across months, and
    no other (not another day of the same service point, not a superseded version); one index probe per pair on
    PostgreSQL, whatever the partition's statistics."""
    from settlement.meterdata.loaders import _fetch_current

    a, b = ServicePointFactory(), ServicePointFactory()
    june, july, july2 = dt.date(2026, 6, 30), dt.date(2026, 7, 1), dt.date(2026, 7, 2)
    load_days(a, [june, july, july2])
    load_days(b, [july])
    load_days(a, [july], kwh=2.0, expect="corrected")  # version 2 of (a, July 1) is current
    epoch = dt.date(1970, 1, 1)

    def fetched(pairs):
        rows = _fetch_current(np.array([sp.pk for sp, _ in pairs]), np.array([(d - epoch).days for _, d in pairs]))
        return sorted((sp, epoch + dt.timedelta(days=day), version) for _, sp, _, _, day, _, version, _ in rows)

    assert fetched([(a, june), (a, july), (b, july)]) == [(a.pk, june, 1), (a.pk, july, 2), (b.pk, july, 1)]
    assert fetched([(b, july2), (a, july2), (a, july2)]) == [(a.pk, july2, 1)]  # (b, July 2) has no row
