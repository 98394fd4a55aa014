"""Settlement subscribes to the events app (a completed event is settled after the transaction commits) and to
the programs app (an incentive rule that has priced settlements is not changed)."""

from __future__ import annotations

from cpm.base.tasks import enqueue_on_commit


def on_event_completed(sender=None, *, event_id: int, now=None, **kwargs) -> None:
    """Receiver of ``events.signals.event_completed``: enqueue ``settlement.settle_event`` (idempotent: the first
    settlement of an event is one batch, whoever asks)."""
    from .tasks import settle_event

    enqueue_on_commit(settle_event, event_id=event_id, now=now.isoformat() if now is not None else None)


def incentive_rule_changing_receiver(sender, *, rule, uses, **kwargs) -> None:
    """Receiver of ``programs.signals.incentive_rule_changing``: refuse (``ConflictError``, code
    ``incentive_rule_settled``) adding, changing or deleting an incentive rule once a settlement of its program has
    been priced with it (``selectors.settlements_priced_with``): a recalculation would reprice settled money."""
    from cpm.base.errors import ConflictError

    from .selectors import settlements_priced_with

    what = settlements_priced_with(program_id=rule.program_id, uses=uses)
    if what is None:
        return
    if rule.pk is None:
        raise ConflictError(f"A new incentive rule ({rule.get_kind_display()}) of program {rule.program.code} would "
                            f"reprice {what} already settled when they are recalculated. Add it for a later "
                            "season instead.", code="incentive_rule_settled")
    raise ConflictError(f"Incentive rule #{rule.pk} ({rule.get_kind_display()}) of program {rule.program.code} has "
                        f"already priced {what}; changing or deleting it would reprice them when they are "
                        "recalculated. Add a rule for a later season instead.", code="incentive_rule_settled")


def connect() -> bool:
    """Connect the receiver; False while the events app does not define the signal yet."""
    try:
        from events.signals import event_completed
    except ImportError:
        return False
    event_completed.connect(on_event_completed, dispatch_uid="settlement.on_event_completed")
    from programs.signals import incentive_rule_changing

    incentive_rule_changing.connect(incentive_rule_changing_receiver, dispatch_uid="settlement.incentive_rule_changing")
    return True
