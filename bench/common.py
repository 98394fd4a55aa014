"""Shared helpers for benchmarks: Django setup against a PostgreSQL database (created and migrated if needed), peak
memory, and the ``BENCH_JSON {...}`` line each step prints last for the harness (``python -m bench``)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cpm_bench"


def bench_actor():
    """The benchmark's named system actor (services refuse ``actor=None``): ``system:bench`` in the audit trail."""
    from cpm.base.capabilities import system_actor

    return system_actor("bench")


# The planner's cost of a random page read. PostgreSQL's default (4) models spinning disks; with the data in memory
# or on SSD (this machine, any current server) 1.1 is the usual setting, and with 4 the planner scans whole tables
# where an index reads 5 % of them (e.g. a chunk's 48 days of interval data: 780 ms instead of 126 ms).
RANDOM_PAGE_COST = 1.1


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it does not exist, with ``random_page_cost`` = 1.1 for its
    sessions (``ALTER DATABASE ... SET``)."""
    import psycopg

    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres"):
        sys.exit("The benchmark needs PostgreSQL: DATABASE_URL=postgres://...")
    dbname = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')
        conn.execute(f'ALTER DATABASE "{dbname}" SET random_page_cost = {RANDOM_PAGE_COST}')


def bench_database_error(url: str) -> str | None:
    """Why the benchmarks may not use ``url``, or None. They truncate the domain tables of their database, so its
    name must contain "bench" (as the default ``cpm_bench`` does) unless ``BENCH_ANY_DATABASE=1`` says the caller
    owns it: a ``DATABASE_URL`` left exported for cpm itself is refused, not erased."""
    name = urlparse(url).path.lstrip("/")
    if "bench" in name.lower() or os.environ.get("BENCH_ANY_DATABASE") == "1":
        return None
    return (f"the benchmarks erase the tables of their database, and DATABASE_URL names {name!r}: point it at a "
            "database of the benchmarks' own whose name contains 'bench' (default cpm_bench: unset DATABASE_URL), "
            "or set BENCH_ANY_DATABASE=1 if this one may be erased")


def setup_django(default_url: str = DEFAULT_URL, *, migrate: bool = True) -> str:
    """Point Django at ``DATABASE_URL`` (default ``default_url``), create the database if missing, migrate. Exits
    with a message when the database is not the benchmarks' own (``bench_database_error``)."""
    url = os.environ.setdefault("DATABASE_URL", default_url)
    if (error := bench_database_error(url)) is not None:
        raise SystemExit(f"bench: {error}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpm.settings")
    ensure_database(url)
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    return url


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loadavg() -> float:
    """The 1-minute load average (other jobs on the machine skew timings: it is recorded with each figure)."""
    return os.getloadavg()[0]


def emit(result: dict) -> None:
    """Print the step's result as the final ``BENCH_JSON {...}`` line (parsed by ``python -m bench``)."""
    print("BENCH_JSON " + json.dumps(result, default=str), flush=True)


def cpu_s(pid: int | str = "self") -> float:
    """CPU seconds (user + system) a process has used so far (``/proc/<pid>/stat``; 0 when not readable): on a
    shared machine they move a few percent where the wall clock moves 2x."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_s() -> float:
    """``cpu_s`` of this process's PostgreSQL backend (Django's default connection; its pid is known to the driver,
    so reading it runs no query)."""
    from django.db import connection

    connection.ensure_connection()
    return cpu_s(connection.connection.info.backend_pid)


def statement_part(sql: str, parts) -> str:
    """The name of the first ``(name, compiled pattern)`` of ``parts`` that matches ``sql``, else "other SQL"."""
    for name, pattern in parts:
        if pattern.search(sql):
            return name
    return "other SQL"


def cpu_now() -> tuple[float, float]:
    """(process, backend) CPU seconds used so far: this process and its PostgreSQL backend (``backend_cpu_s``)."""
    return time.process_time(), backend_cpu_s()


def cpu_since(start: tuple[float, float]) -> dict[str, float]:
    """``{"process_s", "backend_s"}``: the CPU seconds used since ``start`` (a ``cpu_now()``), rounded."""
    process, backend = cpu_now()
    return {"process_s": round(process - start[0], 2), "backend_s": round(backend - start[1], 2)}
