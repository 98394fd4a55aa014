"""Corrections of a season-end program's event settlements around the season-end customer settlement.

The participant uses 2.0 kWh every hour before the event day and 0.5 kWh in each of the three event hours
(16:00-19:00 PDT on 2026-07-15): 4.5 kWh avoided x $1.25 = $5.625 -> $5.63, deferred to the season end. The
corrected meter data make the last event hour 1.5 kWh: 1.5 + 1.5 + 0.5 = 3.5 kWh x $1.25 = $4.375 -> $4.38.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum

from cpm.base.errors import ConflictError
from programs.choices import IncentiveBasis, IncentiveKind, SettlementTiming
from settlement import services
from settlement.choices import CustomerSettlementStatus, EventSettlementStatus, PeriodKind
from settlement.models import CustomerSettlement, EventSettlement, IntervalDay
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import (
    EVENT_END,
    EventFactory,
    ParticipationFactory,
    event_hours,
    run_on_commit,
    write_hourly,
)

pytestmark = pytest.mark.django_db
ES = EventSettlementStatus
CS = CustomerSettlementStatus
OCT = dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC)


def _settle(event, now, **kw):
    with run_on_commit():
        return services.event_settle(event=event, now=now, actor=TEST_ACTOR, **kw)


def _season_end_participant():
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    write_hourly(service_point=sp, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16),
                 overrides={h: 0.5 for h in event_hours()})
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    return program, season, sp, event


def _correct_meter_data(sp):
    IntervalDay.objects.filter(service_point=sp, day=dt.date(2026, 7, 16)).delete()
    write_hourly(service_point=sp, first=dt.date(2026, 7, 16), last=dt.date(2026, 7, 16),
                 overrides={EVENT_END - dt.timedelta(hours=2): 0.5, EVENT_END - dt.timedelta(hours=1): 1.5})


def _season_settlement(program, season, now):
    with run_on_commit():
        services.season_settle(program=program, season=season, now=now, actor=TEST_ACTOR)
    return CustomerSettlement.objects.get(program=program, period_kind=PeriodKind.SEASON_END)


def test_a_correction_before_the_season_settlement_is_approved_is_what_it_pays(admin_user):
    """The season settlement is calculated ($5.63), then the event is recalculated on corrected meter data ($4.38)
    before the analyst approves the season settlement. The season settlement must pay $4.38 (it paid the stale
    $5.63, marked the event settlement APPROVED with $5.63 posted against $4.38 computed, and a later recalculation
    found it 'unchanged': the $1.25 overpaid was never taken back)."""
    program, season, sp, event = _season_end_participant()
    _settle(event, dt.datetime(2026, 7, 20, tzinfo=dt.UTC))
    cs = _season_settlement(program, season, OCT)
    assert (cs.status, cs.total_amount) == (CS.CALCULATED, Decimal("5.63"))

    _correct_meter_data(sp)
    _settle(event, OCT + dt.timedelta(hours=1), recalculate=True)
    es = EventSettlement.objects.get()
    assert (es.status, es.amount) == (ES.DEFERRED, Decimal("4.38"))
    cs.refresh_from_db()
    assert cs.total_amount == Decimal("4.38")
    assert sorted(cs.lines.values_list("amount", flat=True)) == [Decimal("4.38")]

    services.customer_settlement_approve(settlement=cs, now=OCT + dt.timedelta(hours=2), actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount, es.amount) == (ES.APPROVED, Decimal("4.38"), Decimal("4.38"))
    export = services.bill_credit_export_create(now=OCT + dt.timedelta(hours=3), actor=admin_user)
    assert export.total_amount == Decimal("4.38")


def test_a_season_settlement_whose_deferred_lines_went_stale_is_not_approved(admin_user):
    """Safety net: a season settlement holding a deferred event line that no longer matches its event settlement
    (changed under it) is refused in words naming the event settlement, nothing approved."""
    program, season, sp, event = _season_end_participant()
    _settle(event, dt.datetime(2026, 7, 20, tzinfo=dt.UTC))
    cs = _season_settlement(program, season, OCT)
    es = EventSettlement.objects.get()
    comps = es.components
    comps[0]["rounded"] = "4.38"
    EventSettlement.objects.filter(pk=es.pk).update(components=comps, amount=Decimal("4.38"))
    with pytest.raises(ConflictError) as err:
        services.customer_settlement_approve(settlement=cs, now=OCT, actor=admin_user)
    assert f"event settlement {es.pk}" in str(err.value).lower() and "recalculate" in str(err.value).lower()
    cs.refresh_from_db()
    es.refresh_from_db()
    assert (cs.status, es.status, es.posted_amount) == (CS.CALCULATED, ES.DEFERRED, Decimal("0.00"))
    # Recalculated, it is approved with the event settlement's amount.
    cs = services.customer_settlement_calculate(account=cs.account, program=program, period_kind=cs.period_kind,
                                                period_start=cs.period_start, period_end=cs.period_end, now=OCT,
                                                actor=TEST_ACTOR)
    services.customer_settlement_approve(settlement=cs, now=OCT, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (ES.APPROVED, Decimal("4.38"))


def test_a_correction_approved_after_the_final_bill_is_settled_by_the_next_billing_period(admin_user):
    """After-event program. The July 15 event pays $5.63 (approved July 18); the customer unenrolls on July 25 and
    the final bill (May 1 - July 25) carries the $5.63. In August the meter data are corrected ($4.38) and the
    correction approved: -$5.63 and +$4.38. The August billing period (tick of September 2) must carry them for the
    departed customer, -$1.25, once (they stayed unclaimed forever: the batch read only enrolled accounts)."""
    from enrollments.choices import EnrollmentStatus
    from settlement.models import SettlementLine

    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    sub = active_participant(program=program, start=dt.date(2026, 5, 1))
    sp = sub.enrollment.service_point
    write_hourly(service_point=sp, first=dt.date(2026, 5, 25), last=dt.date(2026, 7, 16),
                 overrides={h: 0.5 for h in event_hours()})
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=sub)
    _settle(event, dt.datetime(2026, 7, 17, tzinfo=dt.UTC))
    es = EventSettlement.objects.get()
    services.event_settlement_approve(settlement=es, now=dt.datetime(2026, 7, 18, tzinfo=dt.UTC), actor=admin_user)
    type(sub.enrollment).objects.filter(pk=sub.enrollment_id).update(status=EnrollmentStatus.UNENROLLED,
                                                                    end_date=dt.date(2026, 7, 25))
    with run_on_commit():
        services.settlement_tick(now=dt.datetime(2026, 8, 2, 12, tzinfo=dt.UTC), actor=TEST_ACTOR)
    final = CustomerSettlement.objects.get(period_kind=PeriodKind.FINAL_BILL)
    assert final.total_amount == Decimal("5.63")

    _correct_meter_data(sp)
    _settle(event, dt.datetime(2026, 8, 10, tzinfo=dt.UTC), recalculate=True)
    services.event_settlement_approve(settlement=EventSettlement.objects.get(), now=dt.datetime(2026, 8, 11,
                                                                                                tzinfo=dt.UTC),
                                      actor=admin_user)
    for month in (9, 10):
        with run_on_commit():
            services.settlement_tick(now=dt.datetime(2026, month, 2, 12, tzinfo=dt.UTC), actor=TEST_ACTOR)
    august = CustomerSettlement.objects.get(account=sub.enrollment.account, period_kind=PeriodKind.BILLING_PERIOD,
                                            period_start=dt.date(2026, 8, 1))
    assert sorted(august.lines.values_list("amount", flat=True)) == [Decimal("-5.63"), Decimal("4.38")]
    assert august.total_amount == Decimal("-1.25")
    assert not SettlementLine.objects.filter(customer_settlement__isnull=True).exists()
    assert not CustomerSettlement.objects.filter(period_start=dt.date(2026, 9, 1)).exists()


def _tick(now):
    with run_on_commit():
        services.settlement_tick(now=now, actor=TEST_ACTOR)


def test_a_correction_after_the_season_settlement_was_exported_is_carried_by_the_next_adjustment(admin_user):
    """The season settlement paid $5.63 (approved, exported to billing on October 5). On October 10 the meter data
    are corrected: the event settlement is re-opened (APPROVED -> DEFERRED, revision 2, $4.38). No customer
    settlement claimed the difference (the season settlement is exported, the season batch ran once, season-end
    programs have no billing periods): the customer was never charged back the $1.25. The next adjustment batch
    (tick of November 2, October) carries the difference only, -$1.25, on a line naming the event settlement, its
    revision and the recalculation; approving it approves the event settlement ($4.38 posted) and the export sends
    -$1.25. Re-running the tick, the batch's chunk or the recalculation changes nothing."""
    from cpm.models import AuditEntry
    from settlement.choices import LineKind
    from settlement.models import SettlementBatch, SettlementLine

    program, season, sp, event = _season_end_participant()
    _settle(event, dt.datetime(2026, 7, 20, tzinfo=dt.UTC))
    season_cs = _season_settlement(program, season, OCT)
    services.customer_settlement_approve(settlement=season_cs, now=OCT + dt.timedelta(hours=1), actor=admin_user)
    first = services.bill_credit_export_create(now=OCT + dt.timedelta(hours=2), actor=admin_user)
    assert first.total_amount == Decimal("5.63")

    _correct_meter_data(sp)
    recalc = _settle(event, dt.datetime(2026, 10, 10, tzinfo=dt.UTC), recalculate=True)
    es = EventSettlement.objects.get()
    assert (es.status, es.revision, es.amount, es.posted_amount) == (ES.DEFERRED, 2, Decimal("4.38"),
                                                                      Decimal("5.63"))
    season_cs.refresh_from_db()
    assert (season_cs.status, season_cs.total_amount) == (CS.EXPORTED, Decimal("5.63"))

    nov = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)
    _tick(nov)
    carried = SettlementLine.objects.filter(event_settlement=es, event_revision=2)
    assert list(carried.values_list("amount", flat=True)) == [Decimal("-1.25")]  # nothing was ever carried
    adjustment = carried.get().customer_settlement
    assert (adjustment.period_kind, adjustment.account_id, adjustment.period_start, adjustment.period_end,
            adjustment.season_id, adjustment.status, adjustment.total_amount) == (
        "adjustment", es.account_id, dt.date(2026, 10, 1), dt.date(2026, 11, 1), None, CS.CALCULATED,
        Decimal("-1.25"))
    line = adjustment.lines.get()
    assert (line.kind, line.line_code, line.amount, line.event_settlement_id, line.event_revision) == (
        LineKind.PERFORMANCE_KWH, "DRPK", Decimal("-1.25"), es.pk, 2)
    assert line.description == (f"Correction of event settlement {es.pk} revision 2 (event of 2026-07-15, "
                                f"recalculated by batch {recalc.pk}): paid $5.63, now $4.38")
    assert f"event settlement {es.pk}" in adjustment.explanation

    # Idempotent: the tick again, the batch's chunk again, the recalculation again.
    _tick(nov + dt.timedelta(hours=1))
    batch = SettlementBatch.objects.get(program=program, period_start=dt.date(2026, 10, 1))
    services.customer_settle_chunk(batch=batch, account_first=es.account_id, account_last=es.account_id,
                                   period_kind=adjustment.period_kind, now=nov, actor=TEST_ACTOR)
    _settle(event, nov + dt.timedelta(hours=2), recalculate=True)
    assert CustomerSettlement.objects.filter(period_kind="adjustment").count() == 1
    assert sorted(adjustment.lines.values_list("amount", flat=True)) == [Decimal("-1.25")]

    services.customer_settlement_approve(settlement=adjustment, now=nov + dt.timedelta(hours=3), actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.amount, es.posted_amount) == (ES.APPROVED, Decimal("4.38"), Decimal("4.38"))
    assert AuditEntry.objects.filter(object_id=str(es.pk), to_status=ES.APPROVED,
                                     reason=f"correction (revision 2) carried by customer settlement "
                                            f"{adjustment.pk}").exists()
    export = services.bill_credit_export_create(now=nov + dt.timedelta(hours=4), actor=admin_user)
    assert (export.total_amount, export.line_count) == (Decimal("-1.25"), 1)
    assert f",DRPK,-1.25,{adjustment.pk},{es.pk},," in export.content
    # Paid in all: $5.63 - $1.25 = $4.38, the corrected amount; nothing left to carry in December.
    assert SettlementLine.objects.filter(event_settlement=es).aggregate(s=Sum("amount"))["s"] == Decimal("4.38")
    _tick(dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC))
    assert CustomerSettlement.objects.filter(period_kind="adjustment").count() == 1
