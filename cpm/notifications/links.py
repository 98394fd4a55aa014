"""The one-click opt-out link of an event notice: a signed, expiring token naming the message.

Django's ``TimestampSigner`` (HMAC with ``SECRET_KEY`` and a salt of its own) signs the message id; the link is
refused when tampered with (``BadSignature``) or older than the program's ``opt_out_link_hours``
(``SignatureExpired``). Using it a second time does nothing more (``Message.link_used_at``).
"""

from __future__ import annotations

import datetime as dt
import re

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "cpm.notifications.opt-out-link"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=SALT)


def make_token(message_id: int, *, now: dt.datetime) -> str:
    """A token for ``message_id`` signed as of ``now`` (the send time: its age counts from there)."""
    signer = _signer()
    # TimestampSigner reads the clock; sign with an explicit timestamp so the domain's ``now`` is the issue time.
    value = f"{message_id}{signer.sep}{signing.b62_encode(int(now.timestamp()))}"
    return signing.Signer.sign(signer, value)


def read_token(token: str, *, max_age_hours: int, now: dt.datetime) -> int:
    """The message id in ``token``. Raises ``signing.BadSignature`` (tampered) or ``signing.SignatureExpired``
    (older than ``max_age_hours`` at ``now``)."""
    signer = _signer()
    value = signing.Signer.unsign(signer, token)
    message_id, stamp = value.rsplit(signer.sep, 1)
    age = now.timestamp() - signing.b62_decode(stamp)
    if age > max_age_hours * 3600:
        raise signing.SignatureExpired(f"Signature age {age:.0f} > {max_age_hours * 3600} seconds")
    return int(message_id)


def issued_at(token: str) -> dt.datetime:
    """When the (already verified) token was issued, UTC."""
    stamp = token.rsplit(_signer().sep, 2)[1]
    return dt.datetime.fromtimestamp(signing.b62_decode(stamp), tz=dt.UTC)


def opt_out_url(token: str) -> str:
    """The absolute link (``CPM_PUBLIC_BASE_URL`` + the view's path)."""
    return settings.CPM_PUBLIC_BASE_URL.rstrip("/") + reverse("notifications:opt-out", args=[token])


WITHHELD = "[opt-out link withheld: it opts the customer out, and only the customer holds it]"


def withhold_links(text: str) -> str:
    """``text`` (a message body as sent) with every opt-out link replaced by ``WITHHELD``: the link is the
    customer's credential (whoever holds it opts the customer out, recorded as the customer), so the utility's
    screens show where it was, never the token."""
    if not text:
        return text
    marker = "TOKEN"
    prefix, _, suffix = reverse("notifications:opt-out", args=[marker]).partition(marker)
    pattern = re.compile(r"\S*" + re.escape(prefix) + r"[^\s/]+" + re.escape(suffix).rstrip("/") + r"/?")
    return pattern.sub(WITHHELD, text)
