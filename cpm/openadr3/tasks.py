"""Celery tasks of the VTN: webhook delivery of notifications (load by id, one service, idempotent), retried with
backoff until delivered or FAILED (``OPENADR3_NOTIFY_ATTEMPTS``)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings

from cpm.base.capabilities import system_actor

from .models import Notification

DELIVER_ACTOR = system_actor("celery:openadr3.deliver_notification")


@shared_task(name="openadr3.deliver_notification", bind=True, max_retries=None)
def deliver_notification(self, *, notification_id: int) -> str:
    """POST one notification to its subscriber's callback URL; retried until delivered or FAILED."""
    from . import services

    n = Notification.objects.filter(pk=notification_id).first()
    if n is None:
        return "missing"
    done = services.notification_deliver(notification=n, now=dt.datetime.now(dt.UTC), actor=DELIVER_ACTOR)
    # Run in-process (no broker: the demo, the tests), the attempts follow one another at once: an eager retry would
    # raise into the request whose commit sent the notification.
    while not done and self.request.is_eager:
        done = services.notification_deliver(notification=n, now=dt.datetime.now(dt.UTC), actor=DELIVER_ACTOR)
    if not done:
        base = settings.OPENADR3_NOTIFY_RETRY_SECONDS
        raise self.retry(countdown=min(base * 2 ** self.request.retries, 900))
    return Notification.objects.get(pk=notification_id).status
