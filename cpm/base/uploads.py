"""Validation of uploaded files (meter data, CIS extracts, device lists): size-limited, expected kind only."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

KINDS = {
    "csv": ((".csv", ".txt"), b""),
    "xml": ((".xml", ".espi"), b"<"),
}
_BLOCK = 1024 * 1024


def validate_upload(upload, *, kinds: tuple[str, ...] = ("csv",), text: bool = True) -> None:
    """Refuse a file larger than ``CPM_MAX_UPLOAD_BYTES``, with another extension than ``kinds`` allow, empty, or
    (with ``text``) not text: a NUL byte or a byte that is not UTF-8 anywhere in the file, named by its line and
    byte offset. Raises Django's ``ValidationError`` naming the problem; leaves the file at its start.

    Importers that check the text themselves (naming the line and column) pass ``text=False``."""
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
    if text:
        try:
            _check_text(upload)
        finally:
            upload.seek(0)


def _check_text(upload) -> None:
    """Scan the whole file block by block (a bad byte after the first block counts too)."""
    upload.seek(0)
    offset, line, carry = 0, 1, b""
    while True:
        block = upload.read(_BLOCK)
        final = not block
        data = carry + block
        if b"\x00" in data:
            raise ValidationError("The file is not text (it contains NUL bytes).")
        try:
            data.decode("utf-8")
            good, carry = len(data), b""
        except UnicodeDecodeError as exc:
            if not final and exc.reason == "unexpected end of data":  # a character cut at the block boundary
                good, carry = exc.start, data[exc.start:]
            else:
                at = line + data.count(b"\n", 0, exc.start)
                raise ValidationError(f"The file is not UTF-8 text (line {at}, byte {offset + exc.start}).") from exc
        line += data.count(b"\n", 0, good)
        offset += good
        if final:
            return


#: The csv module's per-field limit (131,072 characters by default), raised once for the whole process
#: (``CpmConfig.ready``): a field longer than a column may hold is reported by the importers as that column's row error
#: ("is 140,000 characters long (at most 256)") rather than an unreadable row.
CSV_FIELD_LIMIT = 256 * 1024 * 1024


def raise_csv_field_limit() -> None:
    import csv
    import sys

    csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, CSV_FIELD_LIMIT)))
