"""Issue 16 point 3: net load where the customer exports. A service point with received-channel readings (or flagged
net metered) is settled on delivered - received, never clamped at zero; ``Program.counts_reduction_below_zero_net_load``
says whether a reduction that takes the net load below zero counts.

Readings (hourly, UTC days 2026-05-25..2026-07-16; event Wednesday 2026-07-15 16:00-19:00 PDT = 23:00Z-02:00Z,
CAISO 10-in-10 with the day-of adjustment): delivered 2.0 kWh and received 0.5 kWh every hour, so the net load is
1.5 kW on every baseline day and in the adjustment hours (adjustment ratio 1.5 / 1.5 = 1.0); in the three event
hours delivered 0.2 kWh and received 1.2 kWh: net -1.0 kW.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from settlement import services
from settlement.choices import Channel
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
FIRST, LAST = dt.date(2026, 5, 25), dt.date(2026, 7, 16)
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)


def _settle_one(*, counts_below_zero: bool = True, received: bool = True, net_metered: bool = True):
    program = ProgramFactory(counts_reduction_below_zero_net_load=counts_below_zero)
    IncentiveRuleFactory(program=program, kind="performance_kwh", basis="per_kwh", amount=Decimal("1.25"))
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    sp.net_metered = net_metered
    sp.save(update_fields=["net_metered"])
    write_hourly(service_point=sp, first=FIRST, last=LAST, kwh=2.0, overrides={h: 0.2 for h in event_hours()})
    if received:
        write_hourly(service_point=sp, first=FIRST, last=LAST, kwh=0.5, channel=Channel.RECEIVED,
                     overrides={h: 1.2 for h in event_hours()})
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    return EventSettlement.objects.get()


def test_net_load_is_delivered_minus_received_never_clamped_at_zero():
    """Baseline 1.5 kW (net), actual -1.0 kW (net, exporting): 2.5 kWh avoided per hour x 3 = 7.5 kWh;
    kW drop 7.5 / 3 = 2.5 kW; 7.5 x $1.25 = $9.375 -> $9.38. Both channels are in the inputs and the explanation."""
    es = _settle_one()
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("7.5000"), Decimal("2.5000"), Decimal("9.38"))
    assert es.inputs["baseline_kw"] == [1.5, 1.5, 1.5]
    assert es.inputs["actual_kw"] == [-1.0, -1.0, -1.0]
    assert es.inputs["net_load"] == {"delivered_kwh": [0.2, 0.2, 0.2], "received_kwh": [1.2, 1.2, 1.2]}
    assert ("Net load = delivered - received (both channels read): delivered 0.6000 kWh, received 3.6000 kWh, "
            "net -3.0000 kWh in the counted intervals.") in es.explanation


def test_reduction_below_zero_net_load_does_not_count_when_the_program_says_so():
    """Same readings; the program does not count reduction below zero net load: the actual counted is
    max(-1.0, min(1.5, 0)) = 0 kW, so 1.5 kWh per hour x 3 = 4.5 kWh; $5.625 -> $5.63; 1.5 kW drop."""
    es = _settle_one(counts_below_zero=False)
    assert (es.kwh_avoided, es.kw_drop_avg, es.amount) == (Decimal("4.5000"), Decimal("1.5000"), Decimal("5.63"))
    assert es.inputs["actual_kw"] == [-1.0, -1.0, -1.0]  # the measured net load is shown as it is
    assert es.inputs["reduction_kwh"] == [1.5, 1.5, 1.5]
    assert "Reduction below zero net load does not count (program setting)." in es.explanation


def test_a_delivered_only_service_point_is_settled_on_delivered_as_before():
    """No received readings (not net metered): baseline 2.0 kW, actual 0.2 kW: 1.8 x 3 = 5.4 kWh x $1.25 = $6.75;
    no net-load inputs. Flagged net metered without received readings: the same amounts, the explanation says so."""
    es = _settle_one(received=False, net_metered=False)
    assert (es.kwh_avoided, es.amount) == (Decimal("5.4000"), Decimal("6.75"))
    assert "net_load" not in es.inputs and "Net" not in es.explanation
    EventSettlement.objects.all().delete()
    es = _settle_one(received=False, net_metered=True)
    assert (es.kwh_avoided, es.amount) == (Decimal("5.4000"), Decimal("6.75"))
    assert "Net metered: no received-channel readings, so net load = delivered." in es.explanation
