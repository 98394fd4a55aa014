"""Settlement models: ``credits`` (event and customer settlements, bill-credit export batches) here; interval data and
its load jobs live with meter data (``settlement.meterdata.models``, app label ``settlement``, same tables), imported
here so Django finds them as settlement's models."""

from settlement.meterdata.models import IntervalDay, MeterDataLoad  # noqa: F401

from .credits import (  # noqa: F401
    BillCreditExport,
    CustomerSettlement,
    EventSettlement,
    SettlementBatch,
    SettlementLine,
)
