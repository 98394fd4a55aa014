"""Settlement subscribes to the events app: a completed event is settled (after the transaction commits)."""

from __future__ import annotations

from cpm.base.tasks import enqueue_on_commit


def on_event_completed(sender=None, *, event_id: int, now=None, **kwargs) -> None:
    """Receiver of ``events.signals.event_completed``: enqueue ``settlement.settle_event`` (idempotent: the first
    settlement of an event is one batch, whoever asks)."""
    from .tasks import settle_event

    enqueue_on_commit(settle_event, event_id=event_id, now=now.isoformat() if now is not None else None)


def connect() -> bool:
    """Connect the receiver; False while the events app does not define the signal yet."""
    try:
        from events.signals import event_completed
    except ImportError:
        return False
    event_completed.connect(on_event_completed, dispatch_uid="settlement.on_event_completed")
    from programs.signals import incentive_rule_changing

    from .selectors import incentive_rule_changing_receiver

    incentive_rule_changing.connect(incentive_rule_changing_receiver, dispatch_uid="settlement.incentive_rule_changing")
    return True
