"""A real Celery worker for ``test_many_workers``: ``python -m tests.workflows.recording_worker <celery worker args>``.

The production worker (``cpm.celery.app``) with one addition: before each task it appends ``<pid> <task name>`` to
the file ``CPM_TEST_TASK_LOG`` (so the test can see which process ran which chunk) and sleeps ``CPM_TEST_TASK_DELAY``
seconds (so one worker cannot take every chunk before the other has started). ``DATABASE_URL`` names the test
database."""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpm.settings")
    django.setup()
    from celery.signals import task_prerun

    from cpm.celery import app

    log = os.environ["CPM_TEST_TASK_LOG"]
    delay = float(os.environ.get("CPM_TEST_TASK_DELAY", "0"))

    @task_prerun.connect(weak=False)
    def record(sender=None, **kwargs):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {sender.name}\n")
        time.sleep(delay)

    app.worker_main(["worker", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
