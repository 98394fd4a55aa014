import datetime as dt
from decimal import Decimal

import pytest

from programs import services
from programs.models import Program
from programs.tasks import program_activate_due
from tests.actors import TEST_ACTOR
from tests.factories.programs import draft_program_data

pytestmark = pytest.mark.django_db


def test_activate_due_task_eager(now):
    program = services.program_create(
        data=draft_program_data(auto_activate=True, enrollment_opens_on=dt.date(2026, 5, 15)),
        seasons=[{"name": "Summer 2026", "start_date": dt.date(2026, 6, 1), "end_date": dt.date(2026, 9, 30)}],
        participation_rules=[{"effective_from": dt.date(2026, 1, 1)}],
        incentive_rules=[{"kind": "per_event", "basis": "flat", "amount": Decimal("5")}], now=now, actor=TEST_ACTOR)
    result = program_activate_due.delay(now=now.isoformat()).get()
    assert result == [program.pk]
    assert Program.objects.get(pk=program.pk).status == "active"
    assert program_activate_due.delay(now=now.isoformat()).get() == []
