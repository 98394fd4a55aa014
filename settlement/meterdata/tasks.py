"""Celery tasks of interval data loading (imported by ``settlement.tasks`` so the worker registers them)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from cpm.base.capabilities import system_actor


@shared_task(name="settlement.run_meter_data_load", acks_late=True)
def run_meter_data_load(*, load_id: int) -> str:
    """Run one PENDING ``MeterDataLoad`` (idempotent: a started or finished load is left as it is)."""
    from .loaders import meter_data_load_run

    load = meter_data_load_run(load_id=load_id, now=dt.datetime.now(dt.UTC),
                               actor=system_actor("celery:settlement.run_meter_data_load"))
    return f"{load.status}: {load.summary}"


@shared_task(name="settlement.resend_pending_loads")
def resend_pending_loads() -> int:
    """Send again the loads still PENDING long after they were sent (beat; idempotent): see
    ``loaders.meter_data_loads_resend``."""
    from .loaders import meter_data_loads_resend

    return meter_data_loads_resend(now=dt.datetime.now(dt.UTC))


@shared_task(name="settlement.interval_partitions_maintain")
def interval_partitions_maintain(*, months_ahead: int = 3) -> list[str]:
    """Create the coming months' partitions of interval data (daily on beat; idempotent); returns the names made."""
    from .partitions import interval_partitions_maintain as maintain

    return maintain(now=dt.datetime.now(dt.UTC), months_ahead=months_ahead,
                    actor=system_actor("celery:settlement.interval_partitions_maintain"))
