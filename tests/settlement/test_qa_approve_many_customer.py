"""Approving several customer settlements in the admin at once when one of them is refused (issue 13, QA).

Before: the action approved the selection in a loop that stopped at the first refusal (a season settlement whose
deferred line went stale, ``customer_settlement_approve``): the page read only that refusal and the settlements
after it in the selection were left unapproved (those before it approved), nothing said which. Each settlement is
now approved on its own: the refused one is named with its reason, the others are approved and counted.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from settlement.choices import CustomerSettlementStatus
from settlement.models import EventSettlement
from tests.settlement import test_season_corrections as sc

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False


def test_a_stale_season_settlement_is_named_and_the_others_are_approved(admin_user, client):
    settlements = []
    for _ in range(2):
        program, season, _sp, event = sc._season_end_participant()
        sc._settle(event, dt.datetime(2026, 7, 20, tzinfo=dt.UTC))
        settlements.append(sc._season_settlement(program, season, sc.OCT))
    good, stale = settlements
    es = EventSettlement.objects.get(event__program=stale.program)
    comps = es.components
    comps[0]["rounded"] = "4.38"
    EventSettlement.objects.filter(pk=es.pk).update(components=comps, amount=Decimal("4.38"))

    client.force_login(admin_user)
    r = client.post("/admin/settlement/customersettlement/",
                    {"action": "approve", "_selected_action": [good.pk, stale.pk]}, follow=True)
    shown = [str(m) for m in r.context["messages"]]
    good.refresh_from_db()
    stale.refresh_from_db()
    assert (good.status, stale.status) == (CustomerSettlementStatus.APPROVED, CustomerSettlementStatus.CALCULATED)
    assert "1 customer settlement(s) approved." in shown
    assert any(m.startswith(f"{stale}: Customer settlement {stale.pk} holds lines that no longer match") for m in shown)
