"""Bulk inserts of the reservation engine: COPY on PostgreSQL (one statement per table and span), ``bulk_create``
elsewhere. The COPY text is what the benchmark measures: keep it as it is."""

from __future__ import annotations

import datetime as dt

from django.db import connection

WRITE_BATCH = 5000

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def insert_rows(model, columns: list[str], rows: list[tuple]) -> None:
    """Insert many rows: COPY on PostgreSQL (one statement, fastest), ``bulk_create`` elsewhere.

    Row values are ints, None, Decimals, str or aware datetimes (formatted once per distinct value)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create([model(**dict(zip(columns, row, strict=True))) for row in rows],
                                  batch_size=WRITE_BATCH)
        return
    # Keyed by type and value: 3 == Decimal("3.000") == True in Python, but their COPY texts differ ("3", "3.000").
    cache: dict = {(type(None), None): "\\N"}

    def text(value) -> str:
        key = (value.__class__, value)
        try:
            return cache[key]
        except KeyError:
            pass
        except TypeError:  # unhashable: never the case for these rows
            return str(value)
        if isinstance(value, str):
            out = value.translate(_COPY_ESCAPES)
        elif isinstance(value, dt.datetime):
            out = value.isoformat()
        else:
            out = str(value)
        if len(cache) < 50_000:
            cache[key] = out
        return out

    table = connection.ops.quote_name(model._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(model._meta.get_field(c.removesuffix("_id")).column
                                               if c.endswith("_id") else c) for c in columns)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for start in range(0, len(rows), WRITE_BATCH):
            copy.write("".join("\t".join(map(text, row)) + "\n" for row in rows[start:start + WRITE_BATCH]))
