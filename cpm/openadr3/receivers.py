"""The VTN follows cpm's events (``events.signals``): a reservation, a modification, a dispatch (devices released
by its re-check) or a cancellation publishes
the event's OpenADR view (``services.oadr_event_publish``) in the transaction of the change (rolled back with it;
webhooks are sent after the commit), as a named system actor. A program created, changed or deleted
(``programs.signals.program_changed``) is notified to the subscribers of programs."""

from __future__ import annotations

from django.dispatch import receiver

from cpm.base.capabilities import system_actor
from events.models import Event
from events.signals import event_cancelled, event_dispatched, event_modified, event_reserved
from programs.signals import program_changed

PUBLISH_ACTOR = system_actor("openadr3.publish")


def _publish(event_id: int, now) -> None:
    from . import services

    event = Event.objects.filter(pk=event_id).first()
    if event is not None:
        services.oadr_event_publish(event=event, now=now, actor=PUBLISH_ACTOR)


@receiver(event_reserved, dispatch_uid="openadr3-event-reserved")
def _on_reserved(sender, event, now, actor, **kwargs) -> None:
    _publish(event.pk, now)


@receiver(event_modified, dispatch_uid="openadr3-event-modified")
def _on_modified(sender, event_id, now, **kwargs) -> None:
    _publish(event_id, now)


@receiver(event_cancelled, dispatch_uid="openadr3-event-cancelled")
def _on_cancelled(sender, event_id, now, **kwargs) -> None:
    _publish(event_id, now)


@receiver(event_dispatched, dispatch_uid="openadr3-event-dispatched")
def _on_dispatched(sender, event_id, now, **kwargs) -> None:
    _publish(event_id, now)


@receiver(program_changed, dispatch_uid="openadr3-program-changed")
def _on_program_changed(sender, program, change, now, **kwargs) -> None:
    from . import services

    services.program_notify(program=program, change=change, now=now)
