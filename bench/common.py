"""Shared helpers for benchmarks: Django setup against a PostgreSQL database (created and migrated if needed), peak
memory, and the ``BENCH_JSON {...}`` line each step prints last for the harness (``python -m bench``)."""

from __future__ import annotations

import json
import os
import resource
import sys
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cpm_bench"


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it does not exist."""
    import psycopg

    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres"):
        sys.exit("The benchmark needs PostgreSQL: DATABASE_URL=postgres://...")
    dbname = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')


def setup_django(default_url: str = DEFAULT_URL, *, migrate: bool = True) -> str:
    """Point Django at ``DATABASE_URL`` (default ``default_url``), create the database if missing, migrate."""
    url = os.environ.setdefault("DATABASE_URL", default_url)
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
