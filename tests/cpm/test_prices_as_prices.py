"""Prices and rates in the admin read as prices, not rounded to cents and never as energy. Before, an interval
price of $0.12345/kWh read "0.12 kWh" (its field name holds "kwh"), a settlement line's rate of $0.0815 per kWh
read "$0.08" beside "100 kWh" and "$8.15", and an incentive rule paying $0.1234 per kWh read "$0.12"."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.money import format_decimal_field
from programs.choices import IncentiveBasis, IncentiveKind
from settlement.models import SettlementLine
from tests.factories.enrollments import AccountFactory
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import price_set

UTC = dt.UTC


def test_field_formats():
    assert format_decimal_field(Decimal("0.12345"), "price_per_kwh", decimal_places=5) == "$0.12345/kWh"
    assert format_decimal_field(Decimal("0.08150"), "rate", decimal_places=5) == "$0.0815"
    assert format_decimal_field(Decimal("0.1234"), "amount", decimal_places=4) == "$0.1234"
    assert format_decimal_field(Decimal("75.0000"), "amount", decimal_places=4) == "$75.00"
    assert format_decimal_field(Decimal("8.15"), "amount", decimal_places=2) == "$8.15"


@pytest.mark.django_db
def test_admin_lists_show_prices_as_prices(admin_client):
    program = ProgramFactory()
    price_set(program=program, prices={dt.datetime(2026, 7, 15, 23, tzinfo=UTC): "0.12345"})
    page = admin_client.get("/admin/programs/intervalprice/").content.decode()
    assert "$0.12345/kWh" in page and "0.12 kWh" not in page

    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("0.1234"))
    page = admin_client.get("/admin/programs/incentiverule/").content.decode()
    assert "$0.1234" in page

    SettlementLine.objects.create(account=AccountFactory(), program=program, kind="event", line_code="DR-EVT",
                                  amount=Decimal("8.15"), quantity=Decimal("100"), unit="kWh",
                                  rate=Decimal("0.0815"), created_at=dt.datetime(2026, 7, 16, tzinfo=UTC))
    page = admin_client.get("/admin/settlement/settlementline/").content.decode()
    assert "$8.15" in page
    line = SettlementLine.objects.get()
    detail = admin_client.get(f"/admin/settlement/settlementline/{line.pk}/change/").content.decode()
    assert "$0.0815" in detail
