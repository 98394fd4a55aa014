"""A real Celery worker (Redis broker, solo pool, in a thread) runs a real programs task against the database.

Skipped without CELERY_BROKER_URL; run it with e.g.
CELERY_BROKER_URL=redis://127.0.0.1:6379/1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_programs
"""

import datetime as dt
from decimal import Decimal

import pytest

from programs import services
from programs.models import Program
from tests.actors import TEST_ACTOR
from tests.factories.programs import draft_program_data


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_worker_activates_due_programs(now):
    from celery.contrib.testing.worker import start_worker

    from cpm.celery import app
    from programs.tasks import program_activate_due

    assert not app.conf.task_always_eager
    def make(**changes):
        return services.program_create(
            data=draft_program_data(auto_activate=True, **changes),
            seasons=[{"name": "Summer 2026", "start_date": dt.date(2026, 6, 1), "end_date": dt.date(2026, 9, 30)}],
            participation_rules=[{"effective_from": dt.date(2026, 1, 1), "max_duration_minutes": 240}],
            incentive_rules=[{"kind": "performance_kwh", "basis": "per_kwh", "amount": Decimal("1.25")}], now=now,
            actor=TEST_ACTOR)

    due = make(enrollment_opens_on=dt.date(2026, 5, 15))
    later = make(enrollment_opens_on=dt.date(2026, 6, 1))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
        result = program_activate_due.apply_async(kwargs={"now": now.isoformat()})
        assert result.get(timeout=30) == [due.pk]
        # Idempotent: a second run through the worker changes nothing.
        assert program_activate_due.apply_async(kwargs={"now": now.isoformat()}).get(timeout=30) == []
    assert dict(Program.objects.values_list("pk", "status")) == {due.pk: "active", later.pk: "draft"}
