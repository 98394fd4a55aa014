"""Hooks other apps subscribe to (events never imports settlement).

``event_completed``: sent once per completed event of an after-event program, after the transaction that set
``Event.settlement_handed_off_at`` commits. Keyword argument: ``event_id`` (int). Settlement subscribes::

    from events.signals import event_completed
    event_completed.connect(lambda sender, event_id, **kw: ..., dispatch_uid="settlement-after-event")

``event_reserved``: sent inside the transaction that (re)wrote an event's reservation ledger, after
``Event.reserved_at`` is set. Keyword arguments: ``event`` (the Event), ``now``, ``actor`` (who ran the reservation).
Settlement subscribes to store the event's available-kW forecast (``settlement.forecast``: it needs the program's
delivered share in settled events, which the events app cannot read).

``event_modified``: sent inside the transaction that changed an event (a new revision of a scheduled or
dispatched event, or an edit of a draft), after the change is written. Keyword arguments: ``event_id`` (int),
``revision`` (int, the event's revision after the change), ``now``, ``actor``.

``event_cancelled``: sent inside the transaction that cancelled an event, after its participations are cancelled.
Keyword arguments: ``event_id`` (int), ``reason`` (str), ``now``, ``actor``.

``event_dispatched``: sent inside the transaction that dispatched an event, after the re-check released the
participations no longer valid. Keyword arguments: ``event_id`` (int), ``now``, ``actor``.

The OpenADR 3 VTN (``cpm.openadr3``) subscribes to these three, and to ``event_reserved``, to publish the event, its
modification, the devices released at dispatch or its cancellation to the VENs in the same transaction (its webhooks
are sent after the commit).
"""

from django.dispatch import Signal

event_completed = Signal()
event_reserved = Signal()
event_modified = Signal()
event_cancelled = Signal()
event_dispatched = Signal()
