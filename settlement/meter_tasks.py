"""Celery tasks of interval data loading (imported by ``settlement.tasks`` so the worker registers them)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task


@shared_task(name="settlement.run_meter_data_load", acks_late=True)
def run_meter_data_load(*, load_id: int) -> str:
    """Run one PENDING ``MeterDataLoad`` (idempotent: a started or finished load is left as it is)."""
    from .meterdata import meter_data_load_run

    load = meter_data_load_run(load_id=load_id, now=dt.datetime.now(dt.UTC))
    return f"{load.status}: {load.summary}"
