import datetime as dt

import pytest

from programs import selectors, services
from tests.actors import TEST_ACTOR
from tests.factories.programs import (
    IncentiveRuleFactory,
    ParticipationRuleFactory,
    ProgramFactory,
    SeasonFactory,
)

pytestmark = pytest.mark.django_db
D = dt.date


def test_season_for_inclusive_dates_with_and_without_prefetch(django_assert_num_queries):
    program = ProgramFactory()
    summer = SeasonFactory(program=program)
    winter = SeasonFactory(program=program, name="Winter 2026-27", start_date=D(2026, 12, 1),
                           end_date=D(2027, 2, 28))
    assert selectors.season_for(program, D(2026, 6, 1)) == summer
    assert selectors.season_for(program, D(2026, 9, 30)) == summer
    assert selectors.season_for(program, D(2027, 1, 15)) == winter
    assert selectors.season_for(program, D(2026, 10, 1)) is None
    loaded = selectors.program_get(pk=program.pk)
    with django_assert_num_queries(0):
        assert selectors.season_for(loaded, D(2026, 12, 1)) == winter
        assert selectors.season_for(loaded, D(2026, 11, 30)) is None


def test_participation_rule_for_latest_in_effect_wins(django_assert_num_queries):
    program = ProgramFactory()
    first = ParticipationRuleFactory(program=program, effective_from=D(2026, 1, 1))
    second = ParticipationRuleFactory(program=program, effective_from=D(2026, 7, 1), max_duration_minutes=120)
    assert selectors.participation_rule_for(program, D(2025, 12, 31)) is None
    assert selectors.participation_rule_for(program, D(2026, 6, 30)) == first
    assert selectors.participation_rule_for(program, D(2026, 7, 1)) == second
    loaded = selectors.program_get(pk=program.pk)
    with django_assert_num_queries(0):
        assert selectors.participation_rule_for(loaded, D(2026, 8, 1)).max_duration_minutes == 120
        assert selectors.participation_rule_for(loaded, D(2026, 2, 1)) == first


def test_exclusive_program_ids_either_side(now):
    a, b, c, d = ProgramFactory(), ProgramFactory(), ProgramFactory(), ProgramFactory()
    services.mutual_exclusion_create(program_a=b, program_b=a, now=now, actor=TEST_ACTOR)
    services.mutual_exclusion_create(program_a=b, program_b=c, now=now, actor=TEST_ACTOR)
    assert selectors.exclusive_program_ids(b) == {a.pk, c.pk}
    assert selectors.exclusive_program_ids(a) == {b.pk}
    assert selectors.exclusive_program_ids(c.pk) == {b.pk}
    assert selectors.exclusive_program_ids(d) == set()


def test_incentive_rules_for_season_and_price_lookup(now):
    program = ProgramFactory(status="draft")
    summer = SeasonFactory(program=program)
    general = IncentiveRuleFactory(program=program)
    seasonal = IncentiveRuleFactory(program=program, season=summer, kind="seasonal", basis="per_device")
    assert selectors.incentive_rules_for(program, summer) == [general, seasonal]
    assert selectors.incentive_rules_for(program, None) == [general]
    price_set = services.price_set_create(program=program, name="P", interval_minutes=15, rows=[
        {"interval_start": "2026-07-01T14:00", "price_per_kwh": "0.5"},
        {"interval_start": "2026-07-01T14:15", "price_per_kwh": "0.7"}], now=now, actor=TEST_ACTOR)
    at = dt.datetime(2026, 7, 1, 21, 20, tzinfo=dt.UTC)  # 14:20 local
    assert str(selectors.price_for(price_set, at)) == "0.70000"
    assert selectors.price_for(price_set, at + dt.timedelta(minutes=10)) is None
