"""Read replicas (issue 20): with ``DATABASE_REPLICA_URL`` set, the reads of selectors marked ``@replica_reads`` go to
the database alias ``replica`` (a PostgreSQL streaming replica of the primary); everything else, every write and
every read inside a transaction, stays on ``default`` (the primary). Without the setting nothing changes.

Only selectors that return finished values (lists, dataclasses) are marked: a lazy queryset returned by a selector
is evaluated after the selector returned, outside the mark, on the primary. Rows read from the replica remember it
(``_state.db``), so a related object fetched from one of them later also comes from the replica; a write of such a
row goes to the primary. Replicas lag behind the primary by a moment: only pages that may show slightly old data
are marked (the dashboard, the CSR search and customer page), never jobs, settlement or anything that reads what it
has just written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
_reading: ContextVar[bool] = ContextVar("cpm_replica_reads", default=False)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads_block() -> Iterator[None]:
    """Reads in this block go to the replica (when configured and outside a transaction on the primary)."""
    token = _reading.set(True)
    try:
        yield
    finally:
        _reading.reset(token)


def replica_reads[F: Callable](fn: F) -> F:
    """Decorator of a selector whose reads may go to the replica (see the module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with replica_reads_block():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ReplicaRouter:
    """``DATABASE_ROUTERS`` entry: reads of marked selectors to ``replica``, writes to ``default``; no opinion (the
    default behaviour) when no replica is configured."""

    def db_for_read(self, model, **hints):
        if _reading.get() and replica_configured() and not connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return REPLICA
        return None

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS if replica_configured() else None

    def allow_relation(self, obj1, obj2, **hints):
        return True if replica_configured() else None  # the replica holds the primary's rows: same objects

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return None
