import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from cpm.models import AuditEntry
from programs import selectors
from programs.models import IncentiveRule, ParticipationRule, Program, Season

pytestmark = pytest.mark.django_db


def snapshot():
    return (Program.objects.count(), Season.objects.count(), ParticipationRule.objects.count(),
            IncentiveRule.objects.count(), AuditEntry.objects.count(),
            AuditEntry.objects.filter(object_type="programs.program").count(),
            AuditEntry.objects.filter(object_type="programs.season").count(),
            sorted(Program.objects.values_list("code", "status", "updated_at")))


def test_load_sample_programs_idempotent_and_active():
    out = StringIO()
    call_command("load_sample_programs", stdout=out)
    assert out.getvalue().startswith("created: sce-smart-energy-kwh, ngrid-ma-connectedsolutions-battery, "
                                     "eversource-ct-ev-managed-charging, pge-or-smart-thermostat")
    first = snapshot()
    assert first[0] == 6
    assert set(Program.objects.values_list("status", flat=True)) == {"active"}
    out = StringIO()
    call_command("load_sample_programs", stdout=out)
    assert out.getvalue().startswith("unchanged: sce-smart-energy-kwh")
    assert snapshot() == first


def test_sample_program_facts():
    call_command("load_sample_programs", stdout=StringIO())
    sce = selectors.program_list().get(code="sce-smart-energy-kwh")
    perf = sce.incentive_rules.get(kind="performance_kwh")
    assert (perf.basis, perf.amount) == ("per_kwh", Decimal("1.2500"))
    assert (sce.baseline_method, sce.settlement_timing) == ("caiso-auto", "after_event")
    assert "https://www.sce.com/tnc/smart-energy-program-terms-and-conditions" in sce.description
    ngrid = Program.objects.get(code="ngrid-ma-connectedsolutions-battery")
    assert (ngrid.settlement_timing, ngrid.performance_measurement) == ("season_end", "device_telemetry")
    assert ngrid.incentive_rules.get().amount == Decimal("275")
    ev = Program.objects.get(code="eversource-ct-ev-managed-charging")
    assert sorted(ev.incentive_rules.filter(kind="monthly").values_list("season__name", "amount"),
                  key=str) == [("Summer 2011", Decimal("20")), ("Summer 2026", Decimal("20")), (None, Decimal("10"))]
    pge = Program.objects.get(code="pge-or-smart-thermostat")
    assert selectors.season_for(pge, dt.date(2012, 2, 29)).name == "Winter 2011-12"
    assert selectors.participation_rule_for(pge, dt.date(2027, 1, 10)).window_start == dt.time(6)
    assert selectors.participation_rule_for(pge, dt.date(2026, 7, 10)).window_start == dt.time(15)
    alliant = Program.objects.get(code="alliant-smart-hours")
    assert alliant.incentive_rules.get(kind="seasonal").max_opt_outs == 3
    # 2011 seasons exist for the Green Button demo data.
    assert Season.objects.filter(name="Summer 2011").count() == 6


def test_more_years_adds_only_missing_seasons():
    call_command("load_sample_programs", "--years", "2026", stdout=StringIO())
    assert Season.objects.filter(name="Summer 2026").count() == 6
    out = StringIO()
    call_command("load_sample_programs", "--years", "2026", "2027", stdout=out)
    assert "updated: " in out.getvalue()
    assert Season.objects.filter(name="Summer 2027").count() == 6
    ev = Program.objects.get(code="eversource-ct-ev-managed-charging")
    assert ev.incentive_rules.filter(season__name="Summer 2027", amount=20).count() == 1
