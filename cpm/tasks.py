"""Celery tasks of the shared base: the job sweeper (``cpm.base.jobs.jobs_sweep``), every minute by beat."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from cpm.base.jobs import jobs_sweep


@shared_task(name="cpm.sweep_jobs")
def sweep_jobs() -> dict[str, int]:
    """Send again the chunks that stopped making progress, or fail their job with the reason (idempotent)."""
    return jobs_sweep(now=dt.datetime.now(dt.UTC))
