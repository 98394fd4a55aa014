"""Bulk writes: one helper for the write paths that move thousands of rows at a time (issue 14, item 5).

On PostgreSQL:

- ``insert_rows`` / ``insert_objects``: ``COPY ... FROM STDIN`` (text format, encoded column-wise by ``copy_text``;
  psycopg adapts the columns of other types); ``insert_rows_start``: the same COPY, the database's answer read later
  (``StartedInsert.finish``) so the caller's Python runs while the rows are inserted;
  ``copy_binary``: ``COPY ... (FORMAT BINARY)`` of data the caller encoded itself (numpy records of interval days);
- ``insert_missing``: ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` (rows a concurrent run may
  have written already);
- ``update_rows``: ``UPDATE ... FROM unnest(arrays)`` (one statement for thousands of rows, where Django's
  ``bulk_update`` builds one CASE per field and row); ``set_fields``: the same constant values on many rows.

Elsewhere (SQLite in ``make test``) each falls back to the ORM (``bulk_create``, ``bulk_update``, ``update``) in this
module, so the callers have one code path. ``tests/cpm/test_bulk.py`` checks on PostgreSQL that both paths write the
same table contents, row for row.

Values go through one adaptation (``_adapter``): JSON fields are encoded once with the field's encoder (or given
already encoded as ``RawJson``), every other field is passed as the Python value psycopg adapts (int, str, Decimal,
date, aware datetime, bool, bytes, lists for arrays); fields with their own database preparation (UUIDs, custom
fields) use ``Field.get_db_prep_value``. Columns are named by attname (``event_id``) or field name (``event``).
This module imports no app.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.db import connection, models
from psycopg import errors as psycopg_errors
from psycopg import pq
from psycopg.copy import LibpqWriter
from psycopg.generators import fetch_many
from psycopg.waiting import Wait

#: Rows written per ``write_row`` loop / ``bulk_create`` batch.
BATCH = 5000

#: The binary COPY framing (``PGCOPY`` signature, flags, header extension length; trailer: field count -1).
COPY_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_BINARY_TRAILER = (-1).to_bytes(2, "big", signed=True)

# Field types psycopg adapts as they are (no per-value preparation on the fast path).
_PLAIN = frozenset({
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField",
    "PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField", "ForeignKey", "OneToOneField",
    "CharField", "TextField", "SlugField", "EmailField", "URLField", "DecimalField", "FloatField", "BooleanField",
    "DateField", "DateTimeField", "TimeField", "DurationField", "BinaryField",
})


class RawJson(str):
    """JSON text already encoded: written as it is (COPY, unnest), decoded for the ORM fallback."""


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _field(model: type[models.Model], column: str) -> models.Field:
    return model._meta.get_field(column)


def _is_json(field: models.Field) -> bool:
    return field.get_internal_type() == "JSONField"


def _adapter(field: models.Field) -> Callable[[Any], Any] | None:
    """The one adaptation of a Python value for ``field`` on PostgreSQL (None: passed as it is)."""
    if _is_json(field):
        encoder = getattr(field, "encoder", None)

        def to_json(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, RawJson):
                return str(value)
            return json.dumps(value, cls=encoder)

        return to_json
    if field.get_internal_type() in _PLAIN:
        return None
    return lambda value: field.get_db_prep_value(value, connection, prepared=False)


def _python(field: models.Field, value: Any) -> Any:
    """The value as the ORM wants it (``RawJson`` decoded)."""
    return json.loads(value) if isinstance(value, RawJson) else value


def _orm_objects(model, columns: Sequence[str], rows: Iterable[Sequence]) -> list[models.Model]:
    fields = [_field(model, c) for c in columns]
    names = [f.attname if c == f.attname else f.name for c, f in zip(columns, fields, strict=True)]
    return [model(**{n: _python(f, v) for n, f, v in zip(names, fields, row, strict=True)}) for row in rows]


# ---------------------------------------------------------------------------------------------------- COPY


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence]) -> int:
    """Insert ``rows`` (sequences of values in ``columns`` order): one COPY on PostgreSQL, ``bulk_create``
    elsewhere. Fields not named take their database default on PostgreSQL (name every field without one: the
    model default is not applied by COPY); no primary keys are returned. Returns the number of rows."""
    return insert_rows_start(model, columns, rows).finish()


def insert_rows_start(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence]) -> StartedInsert:
    """``insert_rows``, returned as soon as PostgreSQL has every row and the end of the COPY: the database inserts
    them (indexes, statement triggers) while the caller does Python work; ``StartedInsert.finish`` (or leaving it
    as a context manager) waits for the database's answer and raises its error (Django's ``IntegrityError`` for a
    constraint). Until then the connection must not run another statement. Elsewhere (SQLite) the rows are
    written at once. Used by the reservation engine to decide the next span while the ledger is inserted
    (issue 20)."""
    if not rows or not is_postgresql():
        if rows:
            model.objects.bulk_create(_orm_objects(model, columns, rows), batch_size=BATCH)
        return StartedInsert(None, len(rows))
    qn = connection.ops.quote_name
    fields = [_field(model, c) for c in columns]
    adapters = [_adapter(f) for f in fields]

    def write(copy) -> None:
        for lo in range(0, len(rows), BATCH):
            batch = rows[lo:lo + BATCH]
            if any(adapters):
                batch = [[v if a is None or v is None else a(v) for a, v in zip(adapters, row, strict=True)]
                         for row in batch]
            text = copy_text(batch)
            if text is not None:
                copy.write(text)
            else:  # a value type the column-wise encoder does not write: psycopg adapts it, row by row
                for row in batch:
                    copy.write_row(row)

    sql = f"COPY {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
    return StartedInsert(_copy_start(sql, write), len(rows))


def _copy_start(sql: str, write: Callable[[Any], None]) -> Any:
    """Run ``sql`` (a ``COPY ... FROM STDIN``) with ``write(copy)`` sending its data, and end it without waiting
    for the database's answer (``_EndWithoutWaiting``); returns the Django cursor ``StartedInsert`` reads the answer
    on (closed here if sending fails). ``wrap_database_errors``: a constraint the COPY violates raises Django's
    ``IntegrityError``, as an INSERT does (the COPY runs on the driver's cursor, outside Django's error
    translation)."""
    cursor = connection.cursor()
    try:
        with connection.wrap_database_errors, cursor.cursor.copy(sql, writer=_EndWithoutWaiting(cursor.cursor)) as copy:
            write(copy)
    except BaseException:
        cursor.close()
        raise
    return cursor


class _EndWithoutWaiting(LibpqWriter):
    """psycopg's COPY writer, except that a COPY that ends without error is ended without waiting for the
    database's answer (read by ``StartedInsert.finish``)."""

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            super().finish(exc)
            return
        self.connection.wait(_send_copy_end(self._pgconn))


def _send_copy_end(pgconn) -> Iterator[Wait]:
    """psycopg generator: queue the end of the COPY and flush it (and the rows before it) to the server."""
    while pgconn.put_copy_end(None) == 0:
        while not (yield Wait.W):
            continue
    while True:
        while not (yield Wait.W):
            continue
        if pgconn.flush() == 0:
            return


class StartedInsert:
    """A COPY the database is still inserting (``insert_rows_start``)."""

    def __init__(self, cursor: Any, count: int):
        self._cursor = cursor
        self.count = count

    def finish(self) -> int:
        """Wait until the database has inserted the rows (or refused them: its error is raised, translated as
        Django translates errors) and return their number. Idempotent."""
        cursor, self._cursor = self._cursor, None
        if cursor is None:
            return self.count
        try:
            conn = cursor.cursor.connection
            with connection.wrap_database_errors, conn.lock:
                for result in conn.wait(fetch_many(conn.pgconn)):
                    if result.status == pq.ExecStatus.FATAL_ERROR:
                        raise psycopg_errors.error_from_result(result, encoding=conn.info.encoding)
        finally:
            cursor.close()
        return self.count

    def __enter__(self) -> StartedInsert:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.finish()
            return
        with contextlib.suppress(Exception):  # the connection must be free for the rollback; ``exc`` is raised
            self.finish()


# COPY text format: backslash, tab, newline and carriage return are escaped in a text value; NULL is \N.
_COPY_SPECIAL = [("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")]  # the backslash first
_COPY_NULL = "\\N"
_COPY_KINDS = frozenset({int, bool, float, Decimal, dt.date, dt.datetime})


def _escape(text: str, special: list[tuple[str, str]]) -> str:
    """``text`` with the ``special`` characters escaped (``str.replace``, a C loop per character kind: translate
    with a table looks up every character, 50 times slower on the JSON of an event settlement)."""
    for char, escaped in special:
        if char in text:
            text = text.replace(char, escaped)
    return text


def _copy_value(kind: type, value: Any) -> str:
    """One non-null value of a ``_copy_column`` kind as COPY text."""
    if issubclass(kind, str):
        return _escape(value, _COPY_SPECIAL)
    if kind is bool:
        return "t" if value else "f"
    if kind is float:
        return repr(value)
    if kind in (dt.datetime, dt.date):
        return value.isoformat()
    return str(value)  # int, Decimal


def _copy_column(values: tuple) -> Iterable[str] | None:
    """One column of a COPY batch as text values (None: a type ``copy_text`` leaves to psycopg).

    Column-wise, so the per-value work is a C loop (``map``) or one lookup: a column of one repeated value (the
    event, a status, a timestamp) is formatted once; integers by ``str``; texts as they are unless one holds a
    character to escape; dates, datetimes and decimals once per distinct value."""
    kinds = set(map(type, values))
    nulls = type(None) in kinds
    kinds.discard(type(None))
    if not kinds:
        return itertools.repeat(_COPY_NULL, len(values))
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if not (kind in _COPY_KINDS or issubclass(kind, str)):
        return None
    first = values[0]
    if not nulls and values.count(first) == len(values):
        return itertools.repeat(_copy_value(kind, first), len(values))
    if kind is int and not nulls:
        return map(str, values)
    if issubclass(kind, str):  # str, TextChoices members, RawJson
        present = values if not nulls else [v for v in values if v is not None]
        joined = "".join(present)
        special = [(c, e) for c, e in _COPY_SPECIAL if c in joined]
        if not special:
            return values if not nulls else [_COPY_NULL if v is None else v for v in values]
        return [_COPY_NULL if v is None else _escape(v, special) for v in values]
    if kind in (dt.datetime, dt.date, Decimal):
        text = {v: _copy_value(kind, v) for v in set(values) if v is not None}
        text[None] = _COPY_NULL
        return map(text.__getitem__, values)
    return [_COPY_NULL if v is None else _copy_value(kind, v) for v in values]


def copy_text(rows: Sequence[Sequence]) -> str | None:
    """``rows`` (sequences of adapted values, one per column) as one block of COPY text format, or None when a
    column holds a value of another type than None, int, bool, float, str (and its subclasses), Decimal, date or
    aware datetime (the caller writes those rows through psycopg's ``write_row``).

    The values PostgreSQL reads are those of psycopg's ``write_row`` for these types (``tests/cpm/test_bulk.py``), at a
    fraction of the Python time: 1,970,000 rows per reservation of 1,000,000 devices (issue 20)."""
    if not rows:
        return ""
    columns = []
    for values in zip(*rows, strict=True):
        column = _copy_column(values)
        if column is None:
            return None
        columns.append(column)
    return "\n".join(map("\t".join, zip(*columns, strict=False))) + "\n"  # repeated columns are endless


def insert_dicts(model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> int:
    """``insert_rows`` of rows given as ``{column: value}`` (every row with the keys of the first)."""
    if not rows:
        return 0
    columns = list(rows[0])
    return insert_rows(model, columns, [[row[c] for c in columns] for row in rows])


def insert_objects(model: type[models.Model], objs: Sequence[models.Model]) -> int:
    """Insert unsaved instances (no primary key needed back): every concrete field but the automatic primary key,
    model defaults filled in as ``save`` would; COPY on PostgreSQL, ``bulk_create`` elsewhere."""
    if not objs:
        return 0
    if not is_postgresql():
        model.objects.bulk_create(objs, batch_size=BATCH)
        return len(objs)
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
    for obj in objs:
        for f in fields:
            if getattr(obj, f.attname) is None and f.has_default():
                setattr(obj, f.attname, f.get_default())
    return insert_rows(model, [f.attname for f in fields], [[getattr(o, f.attname) for f in fields] for o in objs])


def copy_binary(model: type[models.Model], columns: Sequence[str], data: Iterable[bytes]) -> None:
    """Write ``data`` (binary COPY rows the caller encoded, without the header and trailer: added here) with
    ``COPY ... FROM STDIN (FORMAT BINARY)``. PostgreSQL only: the caller's ORM fallback builds instances instead
    (``insert_objects``)."""
    copy_binary_start(model, columns, data).finish()


def copy_binary_start(model: type[models.Model], columns: Sequence[str], data: Iterable[bytes]) -> StartedInsert:
    """``copy_binary``, returned as soon as PostgreSQL has every row and the end of the COPY, as
    ``insert_rows_start`` does: the database inserts them while the caller works; ``StartedInsert.finish`` waits
    for its answer (and raises its error) and must come before the connection's next statement. The count of the
    returned ``StartedInsert`` is the number of ``data`` parts, not of rows. Used by the interval loads to merge a
    chunk of readings while the previous chunk's rows are inserted (issue 20)."""
    qn = connection.ops.quote_name
    cols = ", ".join(qn(_field(model, c).column) for c in columns)
    parts = list(data)

    def write(copy) -> None:
        copy.write(COPY_BINARY_HEADER)
        for part in parts:
            copy.write(part)
        copy.write(COPY_BINARY_TRAILER)

    return StartedInsert(_copy_start(f"COPY {qn(model._meta.db_table)} ({cols}) FROM STDIN (FORMAT BINARY)", write),
                         len(parts))


# ---------------------------------------------------------------------------------------------------- unnest


def int_array_literal(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers (``{1,2,3}``), sent as ONE text parameter and cast in the query
    (``= ANY(%s::bigint[])``): the driver adapts a Python list element by element (8.6 ms for 5,000 ids against
    1.1 ms for the literal, issue 20)."""
    return "{" + ",".join(map(str, values)) + "}"


def text_array_literal(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal of texts, each double-quoted with backslashes and quotes escaped (``None`` is
    NULL; dates and datetimes in ISO 8601), sent as one text parameter and cast in the query.

    A list of plain strings without quote or backslash (service point ids, serials) is joined in one piece: the
    same literal, without a function call per item (0.57 s of Python for the 100,000 ids of a load, issue 20)."""
    if isinstance(values, list) and all(type(v) is str for v in values):
        plain = "".join(values)
        if '"' not in plain and "\\" not in plain:
            return '{"' + '","'.join(values) + '"}' if values else "{}"
    return "{" + ",".join(_literal_item(v) for v in values) + "}"


def _literal_item(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list | tuple):
        return _array_literal(value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_literal(values: Sequence) -> str:
    """A PostgreSQL array literal (``{"a","b\\"c",NULL}``) for a value of an array column: ``unnest`` of an array of
    arrays would flatten them, so such a column travels as text and is cast back."""
    return text_array_literal(values)


def _array_param(field: models.Field, values: list) -> tuple[str, Any]:
    """``(cast, parameter)`` of one column given as an array to ``unnest``."""
    adapt = _adapter(field)
    if adapt is not None:
        values = [None if v is None else adapt(v) for v in values]
    if _is_json(field):
        return "text[])::jsonb", values
    db_type = field.db_type(connection)
    if db_type.endswith("]"):  # an array column: one literal per row
        return f"text[])::{db_type}", [None if v is None else _array_literal(v) for v in values]
    return f"{db_type}[])", values


def _scalar_param(field: models.Field, value: Any) -> tuple[str, Any]:
    adapt = _adapter(field)
    if adapt is not None and value is not None:
        value = adapt(value)
    return ("jsonb" if _is_json(field) else field.db_type(connection)), value


def insert_missing(model: type[models.Model], *, varying: Mapping[str, Sequence],
                   constant: Mapping[str, Any] | None = None) -> None:
    """Insert the rows that do not exist yet (``ON CONFLICT DO NOTHING``: a unique constraint decides).

    ``varying``: ``{column: [value per row]}``; ``constant``: ``{column: value}`` for every row; every other
    concrete field (but the automatic primary key) takes its model default. One ``INSERT ... SELECT FROM
    unnest(arrays)`` on PostgreSQL; ``bulk_create(ignore_conflicts=True)`` elsewhere."""
    constant = dict(constant or {})
    n = len(next(iter(varying.values()), []))
    if n == 0:
        return
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
    given = {_field(model, c).attname: c for c in [*varying, *constant]}
    values = {f.attname: constant[given[f.attname]] if f.attname in given and given[f.attname] in constant
              else f.get_default() for f in fields if given.get(f.attname) not in varying}
    if not is_postgresql():
        columns = [*values, *(_field(model, c).attname for c in varying)]
        rows = [[*values.values(), *(v[i] for v in varying.values())] for i in range(n)]
        model.objects.bulk_create(_orm_objects(model, columns, rows), batch_size=BATCH, ignore_conflicts=True)
        return
    qn = connection.ops.quote_name
    selects, params = [], []
    for f in fields:
        column = given.get(f.attname)
        if column in varying:
            cast, param = _array_param(f, list(varying[column]))
            selects.append(f"unnest(%s::{cast}")
        else:
            cast, param = _scalar_param(f, values[f.attname])
            selects.append(f"%s::{cast}")
        params.append(param)
    columns = ", ".join(qn(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {qn(model._meta.db_table)} ({columns}) SELECT {', '.join(selects)} "
                       "ON CONFLICT DO NOTHING", params)


def update_rows(model: type[models.Model], rows: Mapping[Any, Mapping[str, Any]], fields: Sequence[str], *,
                constant: Mapping[str, Any] | None = None) -> None:
    """Set ``fields`` of many rows given as ``{pk: {field: value}}`` and the ``constant`` values (``{field: value}``,
    the same on every row): one ``UPDATE ... FROM unnest(arrays)`` on PostgreSQL, ``bulk_update`` elsewhere."""
    if not rows:
        return
    constant = dict(constant or {})
    if not is_postgresql():
        objs = []
        for pk, values in rows.items():
            obj = model(pk=pk)
            for name in fields:
                setattr(obj, _field(model, name).attname, _python(_field(model, name), values[name]))
            for name, value in constant.items():
                setattr(obj, _field(model, name).attname, _python(_field(model, name), value))
            objs.append(obj)
        model.objects.bulk_update(objs, [_field(model, n).name for n in [*fields, *constant]], batch_size=1000)
        return
    meta = model._meta
    qn = connection.ops.quote_name
    pks = list(rows)
    pk_cast, pk_param = _array_param(meta.pk, pks)
    sets, selects, params = [], [f"unnest(%s::{pk_cast} AS pk"], [pk_param]
    for name in fields:
        field = _field(model, name)
        cast, param = _array_param(field, [rows[pk][name] for pk in pks])
        selects.append(f"unnest(%s::{cast} AS {qn(field.column)}")
        params.append(param)
        sets.append(f"{qn(field.column)} = v.{qn(field.column)}")
    const_params = []
    for name, value in constant.items():
        field = _field(model, name)
        cast, param = _scalar_param(field, value)
        sets.append(f"{qn(field.column)} = %s::{cast}")
        const_params.append(param)
    params = [*const_params, *params]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(meta.db_table)} AS t SET {', '.join(sets)} FROM (SELECT {', '.join(selects)}) "
                       f"AS v WHERE t.{qn(meta.pk.column)} = v.pk", params)


def set_fields(model: type[models.Model], pks: Sequence, values: Mapping[str, Any]) -> int:
    """Set the same ``values`` on the rows ``pks``: ``UPDATE ... FROM unnest(pks)`` on PostgreSQL (a hash join,
    not ``= ANY(array)`` evaluated row x element), filtered ``update`` in batches elsewhere. Returns rows changed."""
    pks = list(pks)
    if not pks:
        return 0
    if not is_postgresql():
        return sum(model.objects.filter(pk__in=pks[i:i + BATCH]).update(**values) for i in range(0, len(pks), BATCH))
    meta = model._meta
    qn = connection.ops.quote_name
    pk_cast, pk_param = _array_param(meta.pk, pks)
    sets, params = [], []
    for name, value in values.items():
        field = _field(model, name)
        cast, param = _scalar_param(field, value)
        sets.append(f"{qn(field.column)} = %s::{cast}")
        params.append(param)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(meta.db_table)} AS t SET {', '.join(sets)} FROM unnest(%s::{pk_cast} AS k(pk) "
                       f"WHERE t.{qn(meta.pk.column)} = k.pk", [*params, pk_param])
        return cursor.rowcount


def reserve_ids(model: type[models.Model], n: int) -> list[int]:
    """``n`` new primary keys of ``model`` (an automatic integer key) taken now, in increasing order, for rows the
    caller inserts later in its transaction with their ids given (rows written once, referenced before they exist by
    rows whose foreign keys are checked at commit). PostgreSQL: ``nextval`` of the key's sequence (never handed out
    twice, gaps if the transaction rolls back); SQLite: the ``AUTOINCREMENT`` counter moved past them (SQLite has one
    writer at a time)."""
    if n <= 0:
        return []
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        if is_postgresql():
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                           [table, column, n])
            return sorted(r[0] for r in cursor.fetchall())
        qn = connection.ops.quote_name
        cursor.execute(f"SELECT MAX({qn(column)}) FROM {qn(table)}")
        top = cursor.fetchone()[0] or 0
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        first = max(top, row[0] if row else 0) + 1
        if row:
            cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [first + n - 1, table])
        else:
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, first + n - 1])
    return list(range(first, first + n))


__all__ = ["BATCH", "COPY_BINARY_HEADER", "COPY_BINARY_TRAILER", "RawJson", "copy_binary", "insert_dicts",
           "insert_missing", "insert_objects", "insert_rows", "is_postgresql", "reserve_ids", "set_fields",
           "update_rows"]
