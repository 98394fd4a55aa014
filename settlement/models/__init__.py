"""Settlement models: ``credits`` (event and customer settlements, bill-credit export batches) here; interval data and
its load jobs live with meter data (``settlement.meterdata.models``, app label ``settlement``, same tables), imported
here so Django finds them as settlement's models."""

from settlement.meterdata.models import IntervalDay, MeterDataLoad, ReportedKwDrop  # noqa: F401

from .abnormal import AbnormalDay  # noqa: F401
from .credits import (  # noqa: F401
    BillCreditExport,
    CustomerSettlement,
    EventSettlement,
    SettlementBatch,
    SettlementLine,
)


def _on_job_failed(sender=None, *, job, error: str, now, **kwargs) -> None:
    """A job failed (``cpm.base.jobs.job_failed``): a settlement batch or a meter-data load still running ends FAILED
    with the error (a failed load can be retried)."""
    if job.subject_type == MeterDataLoad._meta.label_lower:
        from cpm.base.capabilities import system_actor
        from settlement.meterdata.loaders import meter_data_load_fail

        meter_data_load_fail(load_id=int(job.subject_id), error=error, now=now, actor=system_actor("jobs"))
    elif job.subject_type == SettlementBatch._meta.label_lower:
        from cpm.base.capabilities import system_actor
        from settlement.services.batches import batch_fail

        batch_fail(batch_id=int(job.subject_id), error=error, now=now, actor=system_actor("jobs"))


def _connect() -> None:
    from cpm.base.jobs import job_failed

    job_failed.connect(_on_job_failed, dispatch_uid="settlement.batch_job_failed")


_connect()
