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
    if not services.notification_deliver(notification=n, now=dt.datetime.now(dt.UTC), actor=DELIVER_ACTOR):
        base = settings.OPENADR3_NOTIFY_RETRY_SECONDS
        raise self.retry(countdown=min(base * 2 ** self.request.retries, 900))
    return Notification.objects.get(pk=notification_id).status
