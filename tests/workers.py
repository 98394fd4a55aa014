"""Real Celery worker processes for the tests that need them (PostgreSQL and a broker): started on the test
database with a module of the tests (a worker app with test hooks), stopped, and waited on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def start_worker(module: str, *, queue: str, name: str, env: dict[str, str] | None = None,
                 new_session: bool = False) -> subprocess.Popen:
    """``python -m <module>`` (a Celery worker command: solo pool, queue ``queue``, node ``name@host``) on the test
    database; ``env``: extra environment (test hooks); ``new_session``: its own process group."""
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}/{db['NAME']}"  # the test database
    return subprocess.Popen(
        [sys.executable, "-m", module, "--pool", "solo", "-Q", queue, "-n", f"{name}@%h", "--without-heartbeat",
         "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url, **(env or {})}, start_new_session=new_session)


def stop_worker(proc: subprocess.Popen) -> None:
    """Terminate a worker (a warm shutdown), killed if it has not stopped after 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, *, timeout: float, what: str, step: float = 0.05):
    """Poll ``predicate`` until it returns a true value (returned) or ``timeout`` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")
