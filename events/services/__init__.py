"""Events: the write path, by sub-domain.

- ``lifecycle``: create and modify (revisions), schedule under the participation rules, dispatch, activate,
  complete (hand-off to settlement) and cancel;
- ``reservation``: the reservation engine (candidates, spans, locks, evaluation, the target kW, ledger writes);
- ``dispatch``: dispatch messages to aggregators and their webhook delivery (HTTP behind ``deliver_http``);
- ``optouts``: opt-outs, aggregators' outcome reports, customer-declared unavailability;
- ``release``: reservations follow the customer (releases on enrollment or subscription end, device removed,
  replaced or inactive, unavailability; the re-check at dispatch; the signal receivers, as ``events.release``);
- ``tick``: the scheduling tick (due status changes, hand-off of completed events);
- ``common``: local dates, local times to UTC, the audited bulk move of participations.

Every public write service is a use case (``cpm.base.capabilities.use_case``) with a required keyword-only
``actor`` (a user or a named system actor); ``from events import services; services.event_cancel(...)`` works for
each of them.
"""

from cpm.base.bulk import BATCH as WRITE_BATCH

from .common import RELEASED, event_local_dates
from .dispatch import (
    MAX_DELIVERY_ATTEMPTS,
    create_dispatch_messages,
    deliver_http,
    dispatch_message_deliver,
    dispatch_message_retry,
)
from .lifecycle import (
    EDITABLE_FIELDS,
    RESERVATION_FIELDS,
    event_activate,
    event_cancel,
    event_complete,
    event_create,
    event_dispatch,
    event_schedule,
    event_update,
    event_values_errors,
    settlement_hand_off,
)
from .optouts import (
    REQUEST_CHANNELS,
    participation_opt_out,
    participation_outcomes_report,
    unavailability_create,
    unavailability_period_errors,
)
from .release import (
    RELEASE_ACTOR,
    dispatch_recheck,
    release_for_device,
    release_for_enrollment,
    release_for_subscription,
    release_for_unavailability,
    release_participations,
)
from .reservation import (
    REEVALUATED,
    CandidateFilters,
    CandidateRow,
    Decided,
    ReservationChunk,
    Span,
    event_reservation_finish,
    event_reservation_start,
    event_reserve,
    reserve_chunk,
)
from .tick import events_tick

__all__ = [
    "EDITABLE_FIELDS", "MAX_DELIVERY_ATTEMPTS", "REEVALUATED", "RELEASED", "RELEASE_ACTOR", "REQUEST_CHANNELS",
    "RESERVATION_FIELDS", "WRITE_BATCH", "CandidateFilters", "CandidateRow", "Decided", "ReservationChunk", "Span",
    "create_dispatch_messages", "deliver_http", "dispatch_message_deliver", "dispatch_message_retry",
    "dispatch_recheck",
    "event_activate", "event_cancel", "event_complete", "event_create", "event_dispatch", "event_local_dates",
    "event_reservation_finish", "event_reservation_start", "event_reserve", "event_schedule", "event_update",
    "event_values_errors", "events_tick", "participation_opt_out", "participation_outcomes_report",
    "release_for_device",
    "release_for_enrollment", "release_for_subscription", "release_for_unavailability", "release_participations",
    "reserve_chunk", "settlement_hand_off",
    "unavailability_create",
    "unavailability_period_errors",
]
