"""Settlement write path, by sub-domain: event settlements (``event_settlement``), customer settlements
(``customer_settlement``), bill-credit export (``export``), batch bookkeeping (``batches``), the periodic tick
(``tick``) and shared steps (``common``).

Every public write service is a use case (``cpm.base.capabilities.use_case``) taking keyword-only ``now`` and a
required ``actor`` (a user or a named system actor), idempotent: running it twice with the same data changes nothing.
Chunk steps run by Celery (``event_settle_chunk``, ``customer_settle_chunk``, ``batch_chunk_done``) are internal steps
of a batch already checked when it started; their tasks pass a named system actor for the audit trail.
``from settlement import services`` keeps working: the public names are re-exported here.
"""

from .abnormal import abnormal_day_create, abnormal_day_delete, abnormal_days_import
from .batches import BATCH_TABLES, batch_chunk_done
from .common import enrolled_capacity, rule_specs
from .customer_settlement import (
    _accounts_for,  # noqa: F401  (tests read the chunk's accounts)
    customer_batch_start,
    customer_settle_chunk,
    customer_settlement_approve,
    customer_settlement_calculate,
    customer_settlements_approve,
    customer_settlements_calculate,
    customer_settlements_create_due,
    season_settle,
)
from .event_settlement import (
    event_settle,
    event_settle_chunk,
    event_settlement_approve,
    event_settlement_reverse,
    event_settlements_approve,
)
from .export import (
    EXPORT_COLUMNS,
    bill_credit_export_acknowledge,
    bill_credit_export_create,
    bill_credit_export_reject,
    bill_credit_export_render,
)
from .retention import interval_data_retire
from .tick import settlement_tick

__all__ = [
    "abnormal_day_create", "abnormal_day_delete", "abnormal_days_import",
    "BATCH_TABLES", "EXPORT_COLUMNS", "batch_chunk_done", "bill_credit_export_acknowledge", "bill_credit_export_create",
    "bill_credit_export_reject",
    "bill_credit_export_render", "customer_batch_start", "customer_settle_chunk", "customer_settlement_approve",
    "customer_settlement_calculate", "customer_settlements_approve", "customer_settlements_calculate",
    "customer_settlements_create_due", "enrolled_capacity", "event_settle", "event_settle_chunk",
    "event_settlement_approve", "event_settlement_reverse", "event_settlements_approve", "interval_data_retire",
    "rule_specs",
    "season_settle", "settlement_tick",
]
