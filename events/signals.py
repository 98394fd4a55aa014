"""Hooks other apps subscribe to (events never imports settlement).

``event_completed``: sent once per completed event of an after-event program, after the transaction that set
``Event.settlement_handed_off_at`` commits. Keyword argument: ``event_id`` (int). Settlement subscribes::

    from events.signals import event_completed
    event_completed.connect(lambda sender, event_id, **kw: ..., dispatch_uid="settlement-after-event")
"""

from django.dispatch import Signal

event_completed = Signal()
