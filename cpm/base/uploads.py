"""Validation of uploaded files (meter data, CIS extracts, device lists): size-limited, expected kind only."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

KINDS = {
    "csv": ((".csv", ".txt"), b""),
    "xml": ((".xml", ".espi"), b"<"),
}


def validate_upload(upload, *, kinds: tuple[str, ...] = ("csv",)) -> None:
    """Refuse a file larger than ``CPM_MAX_UPLOAD_BYTES``, with another extension than ``kinds`` allow, empty, or
    not text (NUL bytes, not UTF-8 in its first 64 KiB). Raises Django's ``ValidationError`` naming the problem."""
    limit = settings.CPM_MAX_UPLOAD_BYTES
    name = (getattr(upload, "name", "") or "").lower()
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise ValidationError(f"The file is {size:,} bytes; the limit is {limit:,} bytes.")
    if size == 0:
        raise ValidationError("The file is empty.")
    extensions = tuple(ext for kind in kinds for ext in KINDS[kind][0])
    if name and not name.endswith(extensions):
        raise ValidationError(f"Expected a {' or '.join(k.upper() for k in kinds)} file ({', '.join(extensions)}).")
    head = upload.read(65536)
    upload.seek(0)
    if b"\x00" in head:
        raise ValidationError("The file is not text (it contains NUL bytes).")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the 64 KiB boundary is fine
            raise ValidationError(f"The file is not UTF-8 text (byte {exc.start}).") from exc
