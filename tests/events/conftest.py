import datetime as dt

import pytest

from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory


@pytest.fixture
def program(db):
    """An active LA thermostat program: summer season, weekdays 14:00-21:00, 30-240 minutes, no limits yet."""
    program = ProgramFactory(code="smart-ac")
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    return program


@pytest.fixture
def rule(program):
    return program.participation_rules.get()


@pytest.fixture
def july_now():
    """2026-07-14 16:00 UTC (09:00 in Los Angeles), the day before the default event."""
    return dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """The test client speaks plain HTTP; production settings redirect it to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False
