"""Reading many rows at once: a ``values_list`` queryset's rows fetched in one driver call (issue 20).

Django reads a queryset's rows 100 at a time (``cursor.fetchmany``) through a chain of Python iterators: for the
1,000,000 candidates of a reservation that is about 40,000 driver calls. ``fetch_rows`` runs the same SQL and takes
every row with one ``fetchall``, then lets Django's compiler apply the same converters (``from_db_value``, the
backend's) and tuple shape, so the values are those ``list(queryset)`` gives, on every backend.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.db.models.query import ValuesListIterable
from django.db.models.sql.constants import CURSOR


def fetch_rows(queryset: QuerySet) -> list[tuple]:
    """The rows of ``queryset`` (a ``values_list(...)`` queryset, not ``flat`` nor ``named``) as a list of tuples,
    the same values as ``list(queryset)``. Raises ``TypeError`` for another kind of queryset."""
    if queryset._iterable_class is not ValuesListIterable:  # noqa: SLF001 - the kind of rows the caller asked for
        raise TypeError("fetch_rows takes a values_list(...) queryset (not flat, not named)")
    compiler = queryset.query.get_compiler(queryset.db)
    cursor = compiler.execute_sql(CURSOR)
    if cursor is None:  # an empty result known without a query (``pk__in=[]``)
        return []
    try:
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if compiler.has_extra_select:
        rows = [row[:compiler.col_count] for row in rows]
    return list(compiler.results_iter(results=[rows], tuple_expected=True))
