"""A real Celery worker for ``test_worker_killed``: ``python -m tests.settlement.slow_worker <celery worker args>``.

Each event-settlement chunk first sleeps ``CPM_TEST_CHUNK_DELAY`` seconds inside its transaction (holding its job
chunk's row lock, as a long chunk would), so the test can kill the worker in the middle of a batch. Everything else is
the production worker (``cpm.celery.app``); ``DATABASE_URL`` names the test database."""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpm.settings")
    django.setup()
    from cpm.celery import app
    from settlement import services

    delay = float(os.environ.get("CPM_TEST_CHUNK_DELAY", "0"))
    real = services.event_settle_chunk

    def slow_chunk(**kwargs):
        time.sleep(delay)
        return real(**kwargs)

    services.event_settle_chunk = slow_chunk  # the task imports it from ``settlement.services`` when it runs
    app.worker_main(["worker", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
