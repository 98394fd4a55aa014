"""Settlement models, split by concern: ``meterdata`` (interval data, load jobs) and ``credits`` (event and customer
settlements, bill-credit export batches)."""

from .credits import (  # noqa: F401
    BillCreditExport,
    CustomerSettlement,
    EventSettlement,
    SettlementBatch,
    SettlementLine,
)
from .meterdata import IntervalDay, MeterDataLoad  # noqa: F401
