"""A refused request is logged as one line without a traceback; a server error keeps its traceback."""

import logging
import logging.config

from cpm.base.logfilters import ClientErrorsWithoutTraceback


def _record(status):
    try:
        raise PermissionError("denied")
    except PermissionError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Forbidden: %s", ("/csr/",),
                               exc_info)
    record.status_code = status
    return record


def test_a_403_is_logged_without_its_traceback():
    record = _record(403)
    assert ClientErrorsWithoutTraceback().filter(record) is True
    line = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert line == "WARNING Forbidden: /csr/"
    assert "Traceback" not in line


def test_a_500_keeps_its_traceback():
    record = _record(500)
    assert ClientErrorsWithoutTraceback().filter(record) is True
    text = logging.Formatter("%(message)s").format(record)
    assert "Traceback (most recent call last)" in text and "PermissionError: denied" in text


def test_the_console_handler_uses_the_filter(settings):
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["client_errors"]
    # Configured as Django configures it at start-up: a test that ran before in the same process may have replaced
    # the root logger's handlers (an in-process Celery worker sets up its own logging).
    logging.config.dictConfig(settings.LOGGING)
    assert any(isinstance(f, ClientErrorsWithoutTraceback) for h in logging.getLogger().handlers for f in h.filters)
