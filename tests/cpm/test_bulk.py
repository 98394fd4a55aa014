"""The bulk writer (``cpm.base.bulk``) on PostgreSQL, row for row against the ORM path it replaces.

The same rows are written by COPY / unnest and by ``bulk_create`` / ``bulk_update`` into a probe table holding every
kind of value the writers carry (Decimals, NULLs, text with tabs, newlines, backslashes and quotes, dates, aware
datetimes, arrays, JSON, bytes, booleans); the table contents must be identical, as the database renders them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, models
from django.test.utils import isolate_apps

from cpm.base import bulk

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

UTC = dt.UTC
NASTY = ["plain", "tab\there", "new\nline", "cr\rreturn", "back\\slash", "quote ' and \" both", "\\N", "", "é ✓ 中",
         "trailing\\", "{braces,comma}", "NULL"]


def _scalar_fields() -> dict[str, models.Field]:
    return {"key": models.IntegerField(unique=True),
            "amount": models.DecimalField(max_digits=12, decimal_places=4, null=True),
            "ratio": models.FloatField(null=True), "flag": models.BooleanField(default=False),
            "label": models.CharField(max_length=100, default="", blank=True), "note": models.TextField(null=True),
            "day": models.DateField(null=True), "at": models.DateTimeField(null=True),
            "data": models.JSONField(default=dict)}


def _model(name: str, table: str, fields: dict[str, models.Field]) -> type[models.Model]:
    meta = type("Meta", (), {"app_label": "cpm", "db_table": table})
    return type(name, (models.Model,), {"__module__": __name__, "Meta": meta, **fields})


def _probe_model():
    from django.contrib.postgres.fields import ArrayField

    return _model("Probe", "cpm_test_bulk_probe", {
        **_scalar_fields(), "numbers": ArrayField(models.IntegerField(), default=list),
        "words": ArrayField(models.TextField(), null=True), "blob": models.BinaryField(null=True)})


def _rows(n: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        text = NASTY[i % len(NASTY)]
        out.append({
            "key": i,
            "amount": None if i % 7 == 3 else Decimal(f"{i}.{i % 10000:04d}") * (-1 if i % 2 else 1),
            "ratio": None if i % 5 == 1 else i / 3,
            "flag": i % 3 == 0,
            "label": text[:100],
            "note": None if i % 4 == 2 else f"{text} #{i}",
            "day": None if i % 6 == 5 else dt.date(2026, 1, 1) + dt.timedelta(days=i),
            "at": None if i % 8 == 7 else dt.datetime(2026, 3, 29, 0, 30, tzinfo=UTC) + dt.timedelta(minutes=17 * i),
            "numbers": [i, -i, 0][: i % 4],
            "words": None if i % 9 == 4 else [text, "x,y", "a\"b"],
            "data": {"i": i, "text": text, "list": [1, None, "two"], "nested": {"d": str(Decimal("1.10"))},
                     "none": None} if i % 10 else [],
            "blob": None if i % 11 == 0 else bytes([i % 256, 0, 255, 92, 9, 10]),
        })
    return out


def _contents(model) -> list[str]:
    """The table as PostgreSQL renders each row (without the generated id), by key."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT (to_jsonb(t) - 'id')::text FROM {model._meta.db_table} t ORDER BY key")
        return [r[0] for r in cursor.fetchall()]


@pytest.fixture
def probe():
    with isolate_apps("cpm"):
        model = _probe_model()
        with connection.schema_editor() as editor:
            editor.create_model(model)
        yield model


def _both(model, write_bulk, write_orm) -> tuple[list[str], list[str]]:
    write_bulk()
    by_bulk = _contents(model)
    model.objects.all().delete()
    write_orm()
    by_orm = _contents(model)
    model.objects.all().delete()
    return by_bulk, by_orm


def test_copy_insert_rows_matches_bulk_create(probe):
    rows = _rows(60)
    columns = list(rows[0])
    by_bulk, by_orm = _both(
        probe, lambda: bulk.insert_rows(probe, columns, [[r[c] for c in columns] for r in rows]),
        lambda: probe.objects.bulk_create([probe(**r) for r in rows]))
    assert len(by_bulk) == 60
    assert by_bulk == by_orm
    # values read back through the ORM are the values written
    bulk.insert_dicts(probe, rows)
    got = {o.key: o for o in probe.objects.all()}
    for r in rows:
        o = got[r["key"]]
        assert (o.amount, o.note, o.day, o.at, o.numbers, o.words, o.data) == (
            r["amount"], r["note"], r["day"], r["at"], r["numbers"], r["words"], r["data"])
        assert (bytes(o.blob) if o.blob is not None else None) == r["blob"]


SCALARS = ["key", "amount", "ratio", "flag", "label", "note", "day", "at", "data"]


@pytest.fixture
def scalar_probe():
    """The probe's scalar columns only (every column of a COPY is given: no database defaults needed)."""
    with isolate_apps("cpm"):
        model = _model("ScalarProbe", "cpm_test_bulk_scalar_probe", _scalar_fields())
        with connection.schema_editor() as editor:
            editor.create_model(model)
        yield model


@pytest.mark.parametrize("n", [1, 60, bulk.BATCH + 3])
def test_the_column_wise_copy_text_matches_bulk_create(scalar_probe, n):
    """Columns of scalars (no arrays, no bytes) take ``copy_text``: nasty texts, NULLs, decimals, floats, dates,
    datetimes, JSON; one row, a few, and more than one batch."""
    rows = [{c: r[c] for c in SCALARS} for r in _rows(n)]
    adapters = [bulk._adapter(scalar_probe._meta.get_field(c)) for c in SCALARS]
    assert bulk.copy_text([[v if a is None or v is None else a(v) for a, v in zip(adapters, [r[c] for c in SCALARS],
                                                                                    strict=True)]
                           for r in rows]) is not None
    by_bulk, by_orm = _both(scalar_probe, lambda: bulk.insert_dicts(scalar_probe, rows),
                            lambda: scalar_probe.objects.bulk_create([scalar_probe(**r) for r in rows]))
    assert len(by_bulk) == n
    assert by_bulk == by_orm


def test_copy_text_repeated_values_nulls_other_zones_and_special_floats(scalar_probe):
    from zoneinfo import ZoneInfo

    from events.choices import ParticipationStatus

    la = ZoneInfo("America/Los_Angeles")
    at = dt.datetime(2026, 11, 1, 1, 30, tzinfo=la)  # the repeated hour of the DST change, first pass
    rows = [{"key": i, "amount": Decimal("2.5000"), "ratio": [float("nan"), float("inf"), -0.1, 1e-300][i % 4],
             "flag": True, "label": ParticipationStatus.RESERVED, "note": None, "day": dt.date(2026, 3, 8),
             "at": at + dt.timedelta(hours=i % 2), "data": bulk.RawJson('{"q": "a\\"b\\\\c\\n"}')}
            for i in range(8)]
    assert bulk.copy_text([[r[c] for c in SCALARS] for r in rows]) is not None
    by_bulk, by_orm = _both(scalar_probe, lambda: bulk.insert_dicts(scalar_probe, rows),
                            lambda: scalar_probe.objects.bulk_create([scalar_probe(**{**r, "data": {"q": 'a"b\\c\n'}})
                                                               for r in rows]))
    assert by_bulk == by_orm
    bulk.insert_dicts(scalar_probe, rows)
    got = list(scalar_probe.objects.order_by("key").values_list("label", "note", "at", "data"))
    # (compared as instants: Python never equates an ambiguous local time with another zone's, PEP 495)
    assert (got[0][0], got[0][1], got[0][2].timestamp(), got[0][3]) == ("reserved", None, at.timestamp(),
                                                                         {"q": 'a"b\\c\n'})
    assert got[0][2] == dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # 01:30 PDT
    assert got[1][2].timestamp() == (at + dt.timedelta(hours=1)).timestamp()
    assert scalar_probe.objects.filter(ratio=float("inf")).count() == 2


def test_copy_text_leaves_a_column_of_mixed_or_other_types_to_psycopg():
    assert bulk.copy_text([[1, "a"], [2.5, "b"]]) is None  # int and float in one column
    assert bulk.copy_text([[1, [1, 2]], [2, [3]]]) is None  # arrays
    assert bulk.copy_text([[1, b"x"]]) is None  # bytes
    assert bulk.copy_text([[1, None, "t\tab"], [None, None, "\\N"]]) == "1\t\\N\tt\\tab\n\\N\t\\N\t\\\\N\n"


def test_raw_json_is_written_as_given(probe):
    rows = _rows(5)
    for r in rows:
        r["data"] = bulk.RawJson('{"already": "encoded", "n": [1, 2]}')
    by_bulk, by_orm = _both(probe, lambda: bulk.insert_dicts(probe, rows),
                            lambda: probe.objects.bulk_create([probe(**{**r, "data": {"already": "encoded",
                                                                                       "n": [1, 2]}})
                                                               for r in rows]))
    assert by_bulk == by_orm


def test_insert_objects_fills_defaults_like_save(probe):
    def objs():
        return [probe(key=i, amount=Decimal("1.5"), note=NASTY[i % len(NASTY)]) for i in range(12)]

    by_bulk, by_orm = _both(probe, lambda: bulk.insert_objects(probe, objs()),
                            lambda: probe.objects.bulk_create(objs()))
    assert by_bulk == by_orm
    assert '"numbers": []' in by_bulk[0] and '"data": {}' in by_bulk[0] and '"flag": false' in by_bulk[0]


def test_insert_missing_on_conflict_does_nothing(probe):
    rows = _rows(30)
    existing = rows[::3]
    varying_cols = ["key", "amount", "note", "at", "words", "data"]
    constant = {"label": "tab\tconst\\", "day": dt.date(2026, 7, 1), "flag": True}

    def write_bulk():
        bulk.insert_rows(probe, list(rows[0]), [list(r.values()) for r in existing])
        bulk.insert_missing(probe, varying={c: [r[c] for r in rows] for c in varying_cols}, constant=constant)

    def write_orm():
        probe.objects.bulk_create([probe(**r) for r in existing])
        probe.objects.bulk_create([probe(**{c: r[c] for c in varying_cols}, **constant) for r in rows],
                                  ignore_conflicts=True)

    by_bulk, by_orm = _both(probe, write_bulk, write_orm)
    assert len(by_bulk) == 30
    assert by_bulk == by_orm
    # the existing rows were left as they were
    write_bulk()
    kept = probe.objects.get(key=existing[1]["key"])
    assert kept.label == existing[1]["label"] and kept.flag == existing[1]["flag"]
    # running it again inserts nothing
    bulk.insert_missing(probe, varying={c: [r[c] for r in rows] for c in varying_cols}, constant=constant)
    assert probe.objects.count() == 30


def test_update_rows_matches_bulk_update(probe):
    rows = _rows(40)
    fields = ["amount", "note", "day", "at", "numbers", "words", "data", "flag"]
    changes = _rows(40, start=100)

    def write_bulk():
        bulk.insert_dicts(probe, rows)
        pks = dict(probe.objects.values_list("key", "pk"))
        bulk.update_rows(probe, {pks[r["key"]]: {f: c[f] for f in fields} for r, c in zip(rows, changes,
                                                                                              strict=True)}, fields)

    def write_orm():
        probe.objects.bulk_create([probe(**r) for r in rows])
        objs = {o.key: o for o in probe.objects.all()}
        for r, c in zip(rows, changes, strict=True):
            for f in fields:
                setattr(objs[r["key"]], f, c[f])
        probe.objects.bulk_update(list(objs.values()), fields)

    by_bulk, by_orm = _both(probe, write_bulk, write_orm)
    assert by_bulk == by_orm


def test_update_rows_with_constant_values_matches_bulk_update(probe):
    rows = _rows(30)
    fields = ["amount", "data", "note"]
    changes = _rows(30, start=200)
    constant = {"at": dt.datetime(2026, 10, 5, 12, tzinfo=UTC), "label": "quote ' \t\\ done", "day": None}

    def write_bulk():
        bulk.insert_dicts(probe, rows)
        pks = dict(probe.objects.values_list("key", "pk"))
        bulk.update_rows(probe, {pks[r["key"]]: {f: c[f] for f in fields} for r, c in zip(rows, changes,
                                                                                              strict=True)},
                         fields, constant=constant)

    def write_orm():
        probe.objects.bulk_create([probe(**r) for r in rows])
        objs = {o.key: o for o in probe.objects.all()}
        for r, c in zip(rows, changes, strict=True):
            for f in fields:
                setattr(objs[r["key"]], f, c[f])
            for f, v in constant.items():
                setattr(objs[r["key"]], f, v)
        probe.objects.bulk_update(list(objs.values()), [*fields, *constant])

    by_bulk, by_orm = _both(probe, write_bulk, write_orm)
    assert by_bulk == by_orm
    assert '"label": "quote \' \\t\\\\ done"' in by_bulk[0]


def test_set_fields_matches_update(probe):
    rows = _rows(20)

    def write(setter):
        def go():
            bulk.insert_dicts(probe, rows)
            pks = list(probe.objects.filter(key__lt=10).values_list("pk", flat=True))
            setter(pks)
        return go

    by_bulk, by_orm = _both(
        probe, write(lambda pks: bulk.set_fields(probe, pks, {"flag": True, "note": "a\tb\\c", "amount": None})),
        write(lambda pks: probe.objects.filter(pk__in=pks).update(flag=True, note="a\tb\\c", amount=None)))
    assert by_bulk == by_orm


def test_copy_binary_writes_encoded_rows(probe):
    # one row: key (int4) and label (text), the rest defaults of the table
    label = b"bin\tary"
    row = ((2).to_bytes(2, "big") + (4).to_bytes(4, "big") + (7).to_bytes(4, "big", signed=True)
           + len(label).to_bytes(4, "big") + label)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {probe._meta.db_table} ALTER COLUMN numbers SET DEFAULT '{{}}', "
                       "ALTER COLUMN data SET DEFAULT '{}', ALTER COLUMN flag SET DEFAULT false")
    bulk.copy_binary(probe, ["key", "label"], [row])
    assert list(probe.objects.values_list("key", "label")) == [(7, "bin\tary")]


COLUMNS = ["key", "flag", "label", "data"]  # the probe's columns without a database default


def test_insert_rows_start_lets_python_run_while_the_database_inserts(scalar_probe):
    """The rows are in the table once ``finish`` returns (with their count); Python runs in between; the
    connection serves the next statement afterwards."""
    rows = [[i, False, f"row {i}", {}] for i in range(bulk.BATCH + 7)]
    started = bulk.insert_rows_start(scalar_probe, COLUMNS, rows)
    meanwhile = sum(range(1000))  # Python work, no query
    assert started.finish() == bulk.BATCH + 7
    assert started.finish() == bulk.BATCH + 7  # idempotent
    assert meanwhile == 499500
    assert scalar_probe.objects.count() == bulk.BATCH + 7
    assert scalar_probe.objects.get(key=42).label == "row 42"


def test_insert_rows_start_raises_the_database_error_when_finished(scalar_probe):
    """A constraint the COPY breaks (a duplicate key) is Django's ``IntegrityError`` at ``finish``, naming the
    constraint; nothing of the COPY is written and the transaction goes on after a savepoint rollback."""
    from django.db import IntegrityError, transaction

    scalar_probe.objects.create(key=3, label="first", data={})
    with pytest.raises(IntegrityError, match="duplicate key value violates unique constraint"):
        with transaction.atomic():
            with bulk.insert_rows_start(scalar_probe, COLUMNS, [[1, False, "a", {}], [2, False, "b", {}],
                                                          [3, False, "again", {}]]):
                pass
    assert list(scalar_probe.objects.values_list("key", "label")) == [(3, "first")]


def test_an_error_in_the_overlapped_python_leaves_the_connection_usable(scalar_probe):
    """Python failing while the database inserts: the COPY is waited for (the connection is free for the
    rollback), the Python error is the one raised, and the savepoint rolls the rows back."""
    from django.db import transaction

    with pytest.raises(ZeroDivisionError):
        with transaction.atomic():
            with bulk.insert_rows_start(scalar_probe, COLUMNS, [[1, False, "a", {}], [2, False, "b", {}]]):
                1 / 0  # noqa: B018
    assert scalar_probe.objects.count() == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
