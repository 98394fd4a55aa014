"""Page counts for very large lists (interval days, participations, settlements at utility scale).

``COUNT(*)`` reads every row of the result, so an exact count of an unfiltered list of interval days (millions of
rows: one per meter and day) costs more than the page itself, and grows with the table. Above ``ESTIMATE_ABOVE``
(10,000) rows the page count uses PostgreSQL's planner estimate of the same query (``EXPLAIN``: the table
statistics, no scan) instead; smaller results (and other databases) are counted exactly. The estimate is what
"about N" means on the page; the rows shown are always exact.
"""

from __future__ import annotations

import json

from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

ESTIMATE_ABOVE = 10_000


def estimated_count(queryset: QuerySet) -> int | None:
    """The planner's row estimate for ``queryset`` (PostgreSQL), or None elsewhere. A queryset Django knows matches
    nothing (an empty ``__in``, a value beyond an integer column's range: ``EmptyResultSet`` when compiled) is 0."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    try:
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
    except EmptyResultSet:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A ``Paginator`` whose ``count`` is the planner's estimate when that is over ``ESTIMATE_ABOVE`` rows."""

    @cached_property
    def count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            estimate = estimated_count(self.object_list)
            if estimate is not None and estimate > ESTIMATE_ABOVE:
                return estimate
        return super().count
