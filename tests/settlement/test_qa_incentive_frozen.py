"""An incentive rule that has already priced settlements cannot change its money afterwards (issue 13, QA).

Before: a program administrator could change a performance rule's rate from $1.25/kWh to $9.99/kWh after the
event had been settled and approved at $5.63 (4.50 kWh x $1.25) per site; the next recalculation of the event
(routine after late meter data) repriced it at 4.50 x $9.99 = $44.96 per site, retroactively. Participation rules
and seasons are frozen once in effect; an incentive rule is now frozen once a settlement has used it: update and
delete are refused (409 in the API, the message in the admin) naming the program, the rule and the first
settlement; a description-only change and rules of a season nothing was settled in stay editable.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.base.errors import ConflictError
from cpm.models import AuditEntry
from programs import services as program_services
from programs.models import IncentiveRule
from settlement import services
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.programs import IncentiveRuleFactory, SeasonFactory
from tests.factories.settlement import run_on_commit
from tests.settlement import test_capabilities

pytestmark = pytest.mark.django_db
NOW = test_capabilities.NOW
_http = test_capabilities._http  # fixtures shared with the capability tests
settled = test_capabilities.settled


@pytest.fixture
def program_admin(django_user_model):
    user = django_user_model.objects.create_user("pa-qa", password="pw-123-long-enough", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.PROGRAM_ADMIN))
    return user


def _approve_all():
    services.event_settlements_approve(settlements=EventSettlement.objects.all(), now=NOW, actor=TEST_ACTOR)


def test_rate_change_after_settlement_is_refused_and_a_recalculation_keeps_the_old_rate(settled, program_admin):
    _approve_all()
    rule = settled["program"].incentive_rules.get()
    audits = AuditEntry.objects.count()
    with pytest.raises(ConflictError) as exc:
        program_services.incentive_rule_update(incentive=rule, data={"amount": Decimal("9.99")}, now=NOW,
                                               actor=program_admin)
    assert exc.value.code == "incentive_rule_settled"
    assert exc.value.message == (
        f"Incentive rule #{rule.pk} (Performance per kWh avoided) of program {settled['program'].code} has already "
        f"priced 3 event settlements (the first of event #{settled['event'].pk} on 2026-07-15); changing or "
        "deleting it would reprice them when they are recalculated. Add a rule for a later season instead.")
    assert IncentiveRule.objects.get(pk=rule.pk).amount == Decimal("1.2500")
    assert AuditEntry.objects.count() == audits
    with pytest.raises(ConflictError, match="already priced 3 event settlements"):
        program_services.incentive_rule_delete(incentive=rule, now=NOW, actor=program_admin)
    assert IncentiveRule.objects.filter(pk=rule.pk).exists()

    with run_on_commit():
        services.event_settle(event=settled["event"], now=NOW + dt.timedelta(days=1), actor=TEST_ACTOR,
                              recalculate=True)
    assert sorted(EventSettlement.objects.values_list("amount", flat=True)) == [Decimal("5.63")] * 3


def test_description_only_change_and_an_unsettled_season_stay_editable(settled, program_admin):
    rule = settled["program"].incentive_rules.get()
    program_services.incentive_rule_update(incentive=rule, data={"description": "Summer performance"}, now=NOW,
                                           actor=program_admin)
    assert IncentiveRule.objects.get(pk=rule.pk).description == "Summer performance"
    winter = SeasonFactory(program=settled["program"], name="Winter 2026", start_date=dt.date(2026, 12, 1),
                           end_date=dt.date(2027, 2, 28))
    later = IncentiveRuleFactory(program=settled["program"], season=winter, amount=Decimal("1.00"))
    program_services.incentive_rule_update(incentive=later, data={"amount": Decimal("1.50")}, now=NOW,
                                           actor=program_admin)
    assert IncentiveRule.objects.get(pk=later.pk).amount == Decimal("1.5000")


def test_api_patch_of_a_settled_rate_answers_409_and_changes_nothing(settled, program_admin, api_client):
    rule = settled["program"].incentive_rules.get()
    api_client.force_authenticate(program_admin)
    response = api_client.patch(f"/api/v1/incentive-rules/{rule.pk}/", {"amount": "9.99"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "incentive_rule_settled"
    assert IncentiveRule.objects.get(pk=rule.pk).amount == Decimal("1.2500")


def test_a_new_rule_covering_settled_days_is_refused_one_for_a_later_season_is_not(settled, program_admin):
    """A second performance rule of every season added after settlement would add 4.50 kWh x $2.00 = $9.00 to each
    settled site on the next recalculation."""
    program = settled["program"]
    with pytest.raises(ConflictError) as exc:
        program_services.incentive_rule_create(program=program, data={"kind": "performance_kwh", "basis": "per_kwh",
                                                                      "amount": Decimal("2.00")},
                                               now=NOW, actor=program_admin)
    assert exc.value.code == "incentive_rule_settled"
    assert exc.value.message.startswith(
        f"A new incentive rule (Performance per kWh avoided) of program {program.code} would reprice 3 event "
        f"settlements (the first of event #{settled['event'].pk} on 2026-07-15) already settled")
    assert program.incentive_rules.count() == 1
    winter = SeasonFactory(program=program, name="Winter 2026", start_date=dt.date(2026, 12, 1),
                           end_date=dt.date(2027, 2, 28))
    program_services.incentive_rule_create(program=program, data={"kind": "performance_kwh", "basis": "per_kwh",
                                                                  "amount": Decimal("2.00"), "season": winter},
                                           now=NOW, actor=program_admin)
    assert program.incentive_rules.count() == 2
