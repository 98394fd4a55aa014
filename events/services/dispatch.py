"""Dispatch messages: one message per aggregator for each (event, kind, revision), polled by the aggregator or
POSTed to its webhook by a task.

The HTTP delivery is behind one seam, ``deliver_http(url, body, headers, timeout)``: the only function here that
touches the network (tests replace it: ``monkeypatch.setattr(dispatch, "deliver_http", fake)``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

from django.db import transaction

from cpm.base.audit import audit_record
from cpm.base.capabilities import Cap, use_case
from cpm.base.errors import ConflictError
from cpm.base.tasks import enqueue_on_commit

from ..choices import DeliveryStatus, DispatchKind, ParticipationStatus
from ..models import DispatchMessage, Event, Participation
from .common import RELEASED

MAX_DELIVERY_ATTEMPTS = 5
DELIVERY_TIMEOUT_S = 10


def _message_payload(event: Event, kind: str, devices: list[str], released: list[str] | None = None
                     ) -> dict[str, Any]:
    payload = {
        "event_id": event.pk, "program": event.program.code, "kind": kind, "revision": event.revision,
        "name": event.name, "category": event.category, "direction": event.direction,
        "start": event.start.isoformat(), "end": event.end.isoformat(),
        "notification_at": event.notification_at.isoformat(),
        "target_kw": None if event.target_kw is None else str(event.target_kw),
        "devices": sorted(devices),
    }
    if released is not None:
        payload["released_devices"] = sorted(released)
    return payload


def create_dispatch_messages(event: Event, *, kind: str, now: dt.datetime) -> list[int]:
    """One message per aggregator for (event, kind, revision); idempotent (unique constraint). A step of the
    lifecycle services (dispatch, modify, cancel), which checked the actor and audit the change.

    DISPATCH: aggregators of the devices taking part (not opted out). CANCEL: every aggregator that was sent the
    event, listing all its devices in it. MODIFY: aggregators with devices taking part and every aggregator already
    sent this event, with ``released_devices`` (its devices whose participation was cancelled, e.g. no longer
    fitting the new window).
    Messages to aggregators with a webhook are delivered by a task after commit; the others are POLL_ONLY."""
    by_agg: dict[int, list[str]] = {}
    released: dict[int, list[str]] = {}
    hooks: dict[int, str] = {}
    for status, agg_id, dev, hook in Participation.objects.filter(event_id=event.pk, device__isnull=False).values_list(
            "status", "device__aggregator_id", "device__aggregator_device_id", "device__aggregator__webhook_url"):
        hooks[agg_id] = hook
        if kind == DispatchKind.CANCEL or status not in (RELEASED, ParticipationStatus.OPTED_OUT):
            by_agg.setdefault(agg_id, []).append(dev)
        elif status == RELEASED:
            released.setdefault(agg_id, []).append(dev)
    recipients = set(by_agg)
    if kind in (DispatchKind.MODIFY, DispatchKind.CANCEL):
        sent = set(DispatchMessage.objects.filter(event_id=event.pk).values_list("aggregator_id", flat=True))
        # A CANCEL goes only to aggregators that were sent the event (not one whose devices all opted out or were
        # released before the dispatch: it never heard of the event).
        recipients = recipients | sent if kind == DispatchKind.MODIFY else recipients & sent
    msgs = [DispatchMessage(event_id=event.pk, aggregator_id=agg_id, kind=kind, revision=event.revision,
                            payload=_message_payload(event, kind, by_agg.get(agg_id, []),
                                                     released.get(agg_id, []) if kind == DispatchKind.MODIFY
                                                     else None),
                            delivery_status=DeliveryStatus.PENDING if hooks.get(agg_id) else DeliveryStatus.POLL_ONLY,
                            created_at=now) for agg_id in sorted(recipients)]
    DispatchMessage.objects.bulk_create(msgs, ignore_conflicts=True)
    pending = list(DispatchMessage.objects.filter(event_id=event.pk, kind=kind, revision=event.revision,
                                                  delivery_status=DeliveryStatus.PENDING).values_list("pk", flat=True))
    from ..tasks import deliver_dispatch_message

    for pk in pending:
        enqueue_on_commit(deliver_dispatch_message, message_id=pk)
    return pending


# ------------------------------------------------------------------------------------------------ HTTP delivery
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would repeat a redirected POST as a GET without its body, and the page
    redirected to (a sign-in page) would answer 200 for a message the receiver never got."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def deliver_http(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` to ``url``; returns the HTTP status (a redirect's own 3xx: it is not followed, so it is no
    delivery). Raises ``OSError`` (``urllib.error.URLError``) or ``ValueError`` when the request cannot be made.
    The one seam to the network (tests replace it)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as resp:  # noqa: S310 - URL set by an administrator
            return getattr(resp, "status", 200)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            exc.close()
            return exc.code
        raise


def signed_request(message: DispatchMessage) -> tuple[bytes, dict[str, str]]:
    """The JSON body of a message and its headers (``X-CPM-Signature`` = HMAC-SHA256 of the body with the
    aggregator's webhook secret, when it has one)."""
    agg = message.aggregator
    body = json.dumps(message.payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "cpm-dispatch/1"}
    if agg.webhook_secret:
        headers["X-CPM-Signature"] = hmac.new(agg.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    return body, headers


def _attempt(message: DispatchMessage) -> str:
    """One POST of the message; the error in words, or "" when the webhook answered 2xx."""
    body, headers = signed_request(message)
    try:
        status = deliver_http(message.aggregator.webhook_url, body, headers, DELIVERY_TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(exc)[:500] or exc.__class__.__name__
    return "" if 200 <= status < 300 else f"HTTP {status}"


@use_case("dispatch_message.deliver", Cap.MANAGE_EVENTS)
def dispatch_message_deliver(*, message: DispatchMessage, now: dt.datetime, actor: Any) -> bool:
    """POST one dispatch message to its aggregator's webhook (JSON, signed: ``signed_request``). Records the
    attempt; after ``MAX_DELIVERY_ATTEMPTS`` failures the message is FAILED. The end of the delivery (DELIVERED or
    FAILED) is audited. Returns True when delivered (or nothing left to do)."""
    message = DispatchMessage.objects.select_related("aggregator").get(pk=message.pk)
    if message.delivery_status != DeliveryStatus.PENDING:
        return True
    error = _attempt(message)
    attempts = message.attempts + 1
    if not error:
        new_status = DeliveryStatus.DELIVERED
    elif attempts >= MAX_DELIVERY_ATTEMPTS:
        new_status = DeliveryStatus.FAILED
    else:
        new_status = DeliveryStatus.PENDING
    with transaction.atomic():
        DispatchMessage.objects.filter(pk=message.pk).update(delivery_status=new_status, attempts=attempts,
                                                             last_attempt_at=now, last_error=error)
        if new_status != DeliveryStatus.PENDING:
            audit_record(obj=message, action="status_change", now=now, actor=actor,
                         from_status=DeliveryStatus.PENDING, to_status=new_status,
                         reason=error or f"delivered after {attempts} attempt(s)",
                         code=f"dispatch_message.{new_status}")
    return new_status != DeliveryStatus.PENDING


@use_case("dispatch_message.retry", Cap.MANAGE_EVENTS)
def dispatch_message_retry(*, message: DispatchMessage, now: dt.datetime, actor: Any, reason: str = ""
                           ) -> DispatchMessage:
    """Deliver a message again from the first attempt: the delivery is reset (PENDING, no attempts, no error)
    and the delivery task is enqueued after commit. Only for an aggregator with a webhook (``ConflictError``);
    a message already delivered is sent again (the aggregator's copy is idempotent by event and revision). Audited
    as ``dispatch_message.retried``."""
    from ..tasks import deliver_dispatch_message

    with transaction.atomic():
        message = DispatchMessage.objects.select_for_update().select_related("aggregator").get(pk=message.pk)
        if not message.aggregator.webhook_url:
            raise ConflictError(f"Aggregator {message.aggregator.code} has no webhook; it polls its messages.")
        before = {"delivery_status": message.delivery_status, "attempts": message.attempts,
                  "last_error": message.last_error}
        DispatchMessage.objects.filter(pk=message.pk).update(delivery_status=DeliveryStatus.PENDING, attempts=0,
                                                             last_error="")
        audit_record(obj=message, action="status_change", now=now, actor=actor,
                     from_status=message.delivery_status, to_status=DeliveryStatus.PENDING,
                     reason=reason or "retry delivery", changes={"before": before},
                     code="dispatch_message.retried")
        message.delivery_status, message.attempts, message.last_error = DeliveryStatus.PENDING, 0, ""
        enqueue_on_commit(deliver_dispatch_message, message_id=message.pk)
    return message
