"""Helpers for enqueueing Celery tasks safely."""

from __future__ import annotations

from django.db import transaction


def enqueue_on_commit(task, /, **kwargs) -> None:
    """Send ``task`` with keyword arguments once the current transaction commits (at once outside one).

    On the embedded default (no broker) Celery runs the task eagerly, still after the commit.
    """
    transaction.on_commit(lambda: task.apply_async(kwargs=kwargs))
