"""Query plans for tests: which index PostgreSQL answers a query from."""

from __future__ import annotations

from django.db import connection


def plan_without_seq_scans(sql: str, params=None) -> str:
    """PostgreSQL's EXPLAIN of ``sql`` with sequential scans off (inside the test's transaction): a query its
    indexes can answer shows them; one they cannot shows a Seq Scan anyway. ``params`` None: ``sql`` is complete
    (no placeholders read). The plan's lines joined by newlines."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def assert_index_scans(probes: dict) -> None:
    """Each queryset of ``probes`` (index name -> queryset) is answered from that index."""
    for index, qs in probes.items():
        plan = plan_without_seq_scans(*qs.query.sql_with_params())
        assert index in plan, plan
