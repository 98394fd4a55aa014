"""Logging filters.

``ClientErrorsWithoutTraceback``: Django logs every refused request (``django.request``: 403 PermissionDenied, 404,
400) as a WARNING with the exception attached, so a role sent to a page it may not use printed a full Python
traceback on the console, which reads like a crash. A 4xx answer is the request's fault, not the server's: the one
line (status, path) is kept and the traceback dropped. 5xx records keep their traceback.
"""

from __future__ import annotations

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """Drop the exception (traceback) of ``django.request`` records whose response status is below 500."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
