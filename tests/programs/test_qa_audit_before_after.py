"""A program's and its items' updates record before and after in the audit trail (issue 13, QA).

Before: ``incentive_rule.updated`` read ``{"program": "prog-0", "amount": "9.99"}``: who, when and the new rate, not
the rate it replaced; the admin (which passes the changed fields) and the API (which passes every field of a PUT)
also listed values that did not change. Devices, CIS records and events record ``[before, after]`` per changed
field; programs, seasons, participation and incentive rules and questions now do the same.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.models import AuditEntry
from programs import services
from programs.models import ProgramStatus
from tests.actors import TEST_ACTOR
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory, QuestionFactory, SeasonFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 5, 1, 16, 0, tzinfo=dt.UTC)


def _last(code):
    return AuditEntry.objects.filter(code=code).latest("pk")


def test_incentive_rule_update_records_the_rate_it_replaced():
    rule = IncentiveRuleFactory(amount=Decimal("1.25"), description="old")
    services.incentive_rule_update(incentive=rule, data={"amount": Decimal("2.50"), "description": "old",
                                                         "kind": "performance_kwh"}, now=NOW, actor=TEST_ACTOR)
    entry = _last("incentive_rule.updated")
    assert entry.changes == {"program": rule.program.code, "amount": ["1.2500", "2.50"]}
    assert entry.actor_label == "system:tests"


def test_season_and_question_updates_record_before_and_after():
    program = ProgramFactory(status=ProgramStatus.DRAFT)
    season = SeasonFactory(program=program, name="Summer 2026")
    services.season_update(season=season, data={"name": "Summer 2026", "end_date": dt.date(2026, 9, 15)}, now=NOW,
                           actor=TEST_ACTOR)
    assert _last("season.updated").changes == {"program": program.code, "end_date": ["2026-09-30", "2026-09-15"]}
    question = QuestionFactory(program=program)
    old_text = question.text
    services.question_update(question=question, data={"text": "Do you own the home?"}, now=NOW, actor=TEST_ACTOR)
    assert _last("qualification_question.updated").changes == {"program": program.code,
                                                  "text": [old_text, "Do you own the home?"]}


def test_program_update_records_before_and_after():
    program = ProgramFactory(name="Cool Rewards", event_priority=0)
    services.program_update(program=program, data={"name": "Cool Rewards 2026", "event_priority": 0}, now=NOW,
                            actor=TEST_ACTOR)
    assert _last("program.updated").changes == {"name": ["Cool Rewards", "Cool Rewards 2026"]}
