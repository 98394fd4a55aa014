"""Shared fixtures and markers.

- ``@pytest.mark.postgres``: needs PostgreSQL behaviour (row locks, concurrency); skipped on SQLite.
- ``@pytest.mark.celery_worker``: runs a real Celery worker against the broker; skipped without CELERY_BROKER_URL.
- Everything else runs Celery tasks eagerly, whatever the environment, so tests are deterministic.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.conf import settings
from django.db import connection


def pytest_collection_modifyitems(config, items):
    is_pg = connection.vendor == "postgresql"
    has_broker = bool(os.environ.get("CELERY_BROKER_URL"))
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL=postgres://...)")
    skip_broker = pytest.mark.skip(reason="needs a broker (set CELERY_BROKER_URL=redis://...)")
    for item in items:
        if "postgres" in item.keywords and not is_pg:
            item.add_marker(skip_pg)
        if "celery_worker" in item.keywords and not has_broker:
            item.add_marker(skip_broker)


@pytest.fixture(autouse=True, scope="session")
def _celery_queue_per_test_process():
    """Under pytest-xdist every test process gets a queue of its own: a real worker started by one process (on its
    own test database) must not take the tasks another process sends on the same broker."""
    from cpm.celery import app

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        app.conf.task_default_queue = f"cpm-test-{worker}"
    yield


@pytest.fixture(autouse=True)
def _eager_celery(request):
    """Run tasks in-process unless the test asks for a real worker."""
    from cpm.celery import app

    if "celery_worker" in request.keywords:
        yield
        return
    old = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = old


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.AXES_ENABLED = False
    # Fast hashing: tests create many users; production keeps Django's default PBKDF2.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def other_connection():
    """A second PostgreSQL connection to the test database (another transaction, as another worker or process
    would hold one), closed after the test; for tests marked ``postgres`` and ``django_db(transaction=True)``."""
    import psycopg

    params = {k: v for k, v in connection.get_connection_params().items()
              if k in ("host", "port", "user", "password", "dbname")}
    other = psycopg.connect(**params)
    yield other
    other.close()


@pytest.fixture
def now() -> dt.datetime:
    """A fixed 'now' for services (2026-05-15 16:00 UTC)."""
    return dt.datetime(2026, 5, 15, 16, 0, tzinfo=dt.UTC)


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def admin_api(api_client, admin_user):
    api_client.force_authenticate(admin_user)
    return api_client


def pytest_report_header(config):
    return f"cpm database: {settings.DATABASES['default']['ENGINE']}"
