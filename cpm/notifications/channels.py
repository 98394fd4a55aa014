"""The two channels: e-mail through Django's e-mail framework, SMS through a small pluggable backend.

E-mail: ``django.core.mail`` through the ``notifications`` mailer of Django's ``MAILERS`` setting (SMTP in
production, or an ``anymail`` backend for a provider; Django's test runner makes every mailer locmem).
``OutboxEmailBackend`` writes one ``.eml`` file per message into ``CPM_NOTIFY_OUTBOX_DIR/email`` (the demo).

SMS: ``CPM_SMS_BACKEND`` (dotted path) is one of ``LocmemSmsBackend`` (tests), ``FileSmsBackend`` (the demo:
``CPM_NOTIFY_OUTBOX_DIR/sms``), ``ConsoleSmsBackend`` or ``HttpSmsBackend`` (a JSON-over-HTTP provider adapter).

Every message carries its idempotency key (``Message.key``): the file and locmem backends store one message per
key (a second hand-off of the same key, after a worker died before its chunk committed, writes nothing), and the
HTTP adapter sends it as the ``Idempotency-Key`` header for a provider that honours one. SMTP cannot deduplicate:
with it, a worker killed between handing a chunk to the server and committing may repeat that chunk's messages.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from django.conf import settings
from django.core.mail import EmailMessage, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.module_loading import import_string

from .choices import Channel

log = logging.getLogger(__name__)
KEY_HEADER = "X-CPM-Message-Key"
#: The alias of Django's ``MAILERS`` that customer messages go through.
MAILER = "notifications"


@dataclass(frozen=True)
class Outgoing:
    """One rendered message to hand to a channel."""

    key: str
    channel: str
    recipient: str
    subject: str
    body: str


@dataclass(frozen=True)
class Result:
    """What the channel answered: the provider's id, or the error in words."""

    key: str
    provider_id: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _file_name(key: str, suffix: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key) + suffix


def outbox_dir() -> Path:
    return Path(settings.CPM_NOTIFY_OUTBOX_DIR)


# --------------------------------------------------------------------------------------------------------- e-mail
class OutboxEmailBackend(BaseEmailBackend):
    """Django e-mail backend writing each message to ``<CPM_NOTIFY_OUTBOX_DIR>/email/<key>.eml`` (created
    exclusively: the same key twice writes once)."""

    def send_messages(self, email_messages) -> int:
        folder = outbox_dir() / "email"
        folder.mkdir(parents=True, exist_ok=True)
        written = 0
        for message in email_messages:
            key = message.extra_headers.get(KEY_HEADER) or message.extra_headers.get("Message-ID", "no-key")
            try:
                with open(folder / _file_name(key, ".eml"), "xb") as fh:
                    fh.write(message.message().as_bytes())
                written += 1
            except FileExistsError:
                written += 1  # already delivered under this key: nothing more to write
        return written


def message_id(key: str, domain: str) -> str:
    """The e-mail's ``Message-ID``, derived from the message's key alone (``<event_notice.e7.c12.email@domain>``):
    a message handed twice (its sender killed before the outcome was recorded) carries the same id both times, so
    a provider or a mailbox that de-duplicates on it keeps one. (``make_msgid`` adds the time and a random number:
    the second hand-off was a new message.)"""
    local = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]", ".", key)).strip(".") or "message"
    return f"<{local}@{domain}>"


def send_emails(items: list[Outgoing]) -> list[Result]:
    """Send e-mails over one connection; each message's failure is its own (the others still go)."""
    connection = mailers[MAILER]
    results = []
    domain = settings.CPM_NOTIFY_MESSAGE_ID_DOMAIN
    try:
        connection.open()
    except Exception as exc:  # noqa: BLE001 - the server is down: every message of the batch fails, in words
        error = f"{type(exc).__name__}: {exc}"[:500]
        return [Result(item.key, error=error) for item in items]
    try:
        for item in items:
            mid = message_id(item.key, domain)
            email = EmailMessage(subject=item.subject, body=item.body, from_email=settings.CPM_NOTIFY_FROM_EMAIL,
                                 to=[item.recipient], headers={"Message-ID": mid, KEY_HEADER: item.key})
            try:
                connection.send_messages([email])
            except Exception as exc:  # noqa: BLE001 - SMTP and providers raise many kinds: record it in words
                results.append(Result(item.key, error=f"{type(exc).__name__}: {exc}"[:500]))
                continue
            status = getattr(email, "anymail_status", None)  # django-anymail sets the provider's id here
            provider_id = (getattr(status, "message_id", None) or mid) if status else mid
            results.append(Result(item.key, provider_id=str(provider_id)[:200]))
    finally:
        connection.close()
    return results


# ------------------------------------------------------------------------------------------------------------ SMS
class BaseSmsBackend:
    """An SMS backend: ``send(items)`` returns one ``Result`` per item, in order."""

    def send(self, items: list[Outgoing]) -> list[Result]:  # pragma: no cover - interface
        raise NotImplementedError


class LocmemSmsBackend(BaseSmsBackend):
    """Keeps messages in ``LocmemSmsBackend.outbox`` (tests); one per key."""

    outbox: ClassVar[list[Outgoing]] = []

    def send(self, items):
        known = {o.key for o in self.outbox}
        for item in items:
            if item.key not in known:
                self.outbox.append(item)
                known.add(item.key)
        return [Result(item.key, provider_id=f"locmem-{item.key}") for item in items]


class FileSmsBackend(BaseSmsBackend):
    """Writes ``<CPM_NOTIFY_OUTBOX_DIR>/sms/<key>.txt`` (``To:`` line, blank line, text), created exclusively."""

    def send(self, items):
        folder = outbox_dir() / "sms"
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for item in items:
            try:
                with open(folder / _file_name(item.key, ".txt"), "x", encoding="utf-8") as fh:
                    fh.write(f"To: {item.recipient}\n\n{item.body}\n")
            except FileExistsError:
                pass
            results.append(Result(item.key, provider_id=f"file-{item.key}"))
        return results


class ConsoleSmsBackend(BaseSmsBackend):
    """Logs each SMS (development)."""

    def send(self, items):
        for item in items:
            log.info("SMS to %s: %s", item.recipient, item.body)
        return [Result(item.key, provider_id=f"console-{item.key}") for item in items]


NOT_AN_OBJECT = "The SMS provider's answer is not a JSON object with the message's id"


class HttpSmsBackend(BaseSmsBackend):
    """A JSON-over-HTTP SMS provider: ``POST CPM_SMS_HTTP_URL`` with ``{"to", "body", "reference"}``, bearer
    ``CPM_SMS_HTTP_TOKEN`` and ``Idempotency-Key: <key>``; a 2xx answer's JSON ``id`` is the provider's id, any
    other answer (or no answer in ``CPM_SMS_HTTP_TIMEOUT`` seconds, a dropped connection, a 2xx whose body is not
    a JSON object) fails that message with the reason, never the batch."""

    def send(self, items):
        results = []
        for item in items:
            body = json.dumps({"to": item.recipient, "body": item.body, "reference": item.key}).encode()
            try:
                request = urllib.request.Request(settings.CPM_SMS_HTTP_URL, data=body, method="POST", headers={
                    "Content-Type": "application/json", "Authorization": f"Bearer {settings.CPM_SMS_HTTP_TOKEN}",
                    "Idempotency-Key": item.key})
            except ValueError as exc:
                results.append(Result(item.key, error=f"CPM_SMS_HTTP_URL is not a valid URL: {exc}"[:500]))
                continue
            try:
                with urllib.request.urlopen(request, timeout=settings.CPM_SMS_HTTP_TIMEOUT) as response:
                    answer = json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                results.append(Result(item.key, error=f"HTTP {exc.code} from the SMS provider"))
                continue
            except ValueError:
                results.append(Result(item.key, error=NOT_AN_OBJECT))
                continue
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                # OSError: timeouts and connections reset or refused; HTTPException: no or a broken status line.
                results.append(Result(item.key, error=f"SMS provider unreachable: {type(exc).__name__}: {exc}"[:500]))
                continue
            if not isinstance(answer, dict):
                results.append(Result(item.key, error=NOT_AN_OBJECT))
                continue
            results.append(Result(item.key, provider_id=str(answer.get("id", ""))[:200]))
        return results


def sms_backend() -> BaseSmsBackend:
    return import_string(settings.CPM_SMS_BACKEND)()


def send(items: list[Outgoing]) -> list[Result]:
    """Hand ``items`` to their channels; one ``Result`` per item, in order."""
    emails = [i for i in items if i.channel == Channel.EMAIL]
    sms = [i for i in items if i.channel == Channel.SMS]
    by_key = {r.key: r for r in (send_emails(emails) if emails else [])}
    by_key.update({r.key: r for r in (sms_backend().send(sms) if sms else [])})
    return [by_key[i.key] for i in items]
