"""Celery tasks of the programs app (keyword-only arguments, idempotent)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from cpm.base.capabilities import system_actor

from . import services


@shared_task(name="programs.activate_due")
def program_activate_due(*, now: str | None = None) -> list[int]:
    """Activate DRAFT programs marked ``auto_activate`` whose enrollment has opened (local date in their zone).

    ``now``: ISO 8601 instant with offset (tests and replays); default the time the task runs (a beat tick, hourly).
    Returns the ids activated; re-running changes nothing.
    """
    instant = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.UTC)
    return services.programs_activate_due(now=instant, actor=system_actor("celery:programs.activate_due"))
