"""Customer settlements: enrollment bonus once, monthly incentives, seasonal threshold, top-N% kW drop, season cap,
claimed event lines, statuses and the due-settlement tick. Dollar amounts are hand-computed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.errors import DomainValidationError
from enrollments.choices import EnrollmentStatus
from events.choices import EventStatus, ParticipationStatus
from programs.choices import IncentiveBasis, IncentiveKind, SettlementTiming
from settlement import services
from settlement.choices import CustomerSettlementStatus, EventSettlementStatus, LineKind, PeriodKind
from settlement.models import CustomerSettlement, EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, EventSettlementFactory, ParticipationFactory, run_on_commit

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)
CS = CustomerSettlementStatus


def calc(sub, start, end, kind=PeriodKind.BILLING_PERIOD, now=NOW, **kw):
    enrollment = sub.enrollment
    return services.customer_settlement_calculate(account=enrollment.account, program=enrollment.program,
                                                  period_kind=kind, period_start=start, period_end=end, now=now,
                                                  **{"actor": TEST_ACTOR, **kw})


def lines(cs):
    return sorted((x.kind, x.amount) for x in cs.lines.all())


def event_on(program, day: dt.date, *, hours=3, status=EventStatus.COMPLETED):
    start = dt.datetime.combine(day, dt.time(23, 0), tzinfo=dt.UTC)  # 16:00 PDT
    return EventFactory(program=program, start=start, end=start + dt.timedelta(hours=hours), status=status)


def _kwh_component(kwh: str, rounded: str) -> list[dict]:
    """The components of an event settlement paying ``kwh`` x $1.25 = ``rounded``."""
    return [{"kind": "performance_kwh", "amount": rounded, "rounded": rounded, "description": f"{kwh} kWh x $1.25",
             "quantity": kwh, "unit": "kWh", "rate": "1.25", "rule_id": None}]


def _correct(es, kwh: str, rounded: str, revision: int, actor) -> None:
    """A meter correction of an approved event settlement (recalculated to ``rounded``), approved again."""
    EventSettlement.objects.filter(pk=es.pk).update(
        status=EventSettlementStatus.CALCULATED, revision=revision, amount=Decimal(rounded),
        components=_kwh_component(kwh, rounded))
    services.event_settlement_approve(settlement=EventSettlement.objects.get(pk=es.pk), now=NOW, actor=actor)


def test_enrollment_bonus_is_paid_once_per_account():
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.ENROLLMENT_BONUS, basis=IncentiveBasis.FLAT,
                         amount=Decimal("75"))
    sub = active_participant(program=program, start=dt.date(2026, 6, 10))
    june = calc(sub, dt.date(2026, 6, 1), dt.date(2026, 7, 1))
    assert (june.status, june.total_amount, lines(june)) == (CS.CALCULATED, Decimal("75.00"),
                                                              [(LineKind.ENROLLMENT_BONUS, Decimal("75.00"))])
    # Recalculating the same period changes nothing (still one bonus line).
    again = calc(sub, dt.date(2026, 6, 1), dt.date(2026, 7, 1))
    assert again.pk == june.pk and lines(again) == [(LineKind.ENROLLMENT_BONUS, Decimal("75.00"))]
    july = calc(sub, dt.date(2026, 7, 1), dt.date(2026, 8, 1))
    assert july.total_amount == Decimal("0.00")
    # Unenrolled, then enrolled again at the same account: no second bonus.
    enrollment = sub.enrollment
    type(enrollment).objects.filter(pk=enrollment.pk).update(status=EnrollmentStatus.UNENROLLED,
                                                             end_date=dt.date(2026, 7, 20))
    again = active_participant(program=program, account=enrollment.account, start=dt.date(2026, 8, 5))
    august = calc(again, dt.date(2026, 8, 1), dt.date(2026, 9, 1))
    assert august.total_amount == Decimal("0.00")
    assert "already paid" in august.explanation


def test_monthly_incentive_for_months_enrolled_in_season_without_opt_out():
    program = ProgramFactory()
    season = SeasonFactory(program=program)  # 2026-06-01 .. 2026-09-30
    IncentiveRuleFactory(program=program, kind=IncentiveKind.MONTHLY, amount=Decimal("20"), season=season,
                         requires_no_skipped_event=True)
    sub = active_participant(program=program, start=dt.date(2026, 5, 20))
    type(sub.enrollment).objects.filter(pk=sub.enrollment_id).update(status=EnrollmentStatus.UNENROLLED,
                                                                    end_date=dt.date(2026, 8, 15))
    sub.enrollment.refresh_from_db()
    july_event = event_on(program, dt.date(2026, 7, 8))
    ParticipationFactory(event=july_event, subscription=sub, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=july_event.start + dt.timedelta(minutes=30))
    cs = calc(sub, dt.date(2026, 5, 1), dt.date(2026, 10, 1))
    # May: outside the rule's season. June: $20. July: opted out, forfeited. August: enrolled until the 15th: $20.
    # September: not enrolled.
    assert sorted(cs.lines.values_list("incentive_key", "amount")) == [
        (f"monthly:{program.incentive_rules.get().pk}:2026-06", Decimal("20.00")),
        (f"monthly:{program.incentive_rules.get().pk}:2026-08", Decimal("20.00"))]
    assert cs.total_amount == Decimal("40.00")
    assert "2026-07: monthly incentive forfeited" in cs.explanation
    # A later settlement over the same months does not pay them again.
    assert calc(sub, dt.date(2026, 6, 1), dt.date(2026, 9, 1), kind=PeriodKind.FINAL_BILL).total_amount == 0


def test_seasonal_incentive_needs_the_minimum_share_of_event_hours_not_opted_out():
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, amount=Decimal("60"),
                         min_participation_share=Decimal("0.5"))
    good = active_participant(program=program)
    poor = active_participant(program=program)
    e1, e2 = event_on(program, dt.date(2026, 7, 1)), event_on(program, dt.date(2026, 7, 8))
    cancelled = event_on(program, dt.date(2026, 7, 15), status=EventStatus.CANCELLED)
    ParticipationFactory(event=e1, subscription=good)
    ParticipationFactory(event=e2, subscription=good, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=e2.start + dt.timedelta(hours=1))
    # Opted out of a cancelled event: cancelled events are not in the share (else 4 of 9 h = 44% < 50%).
    ParticipationFactory(event=cancelled, subscription=good, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=cancelled.start)
    ParticipationFactory(event=e1, subscription=poor, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=e1.start + dt.timedelta(minutes=30))
    ParticipationFactory(event=e2, subscription=poor, status=ParticipationStatus.OPTED_OUT,
                         opted_out_at=e2.start + dt.timedelta(hours=2))
    start, end = season.start_date, season.end_date + dt.timedelta(days=1)
    paid = calc(good, start, end, kind=PeriodKind.SEASON_END)
    assert lines(paid) == [(LineKind.SEASONAL, Decimal("60.00"))]  # (3 + 1) / 6 h = 66.7%
    assert "66.7% of event hours not opted out" in paid.explanation
    unpaid = calc(poor, start, end, kind=PeriodKind.SEASON_END)
    assert unpaid.total_amount == 0  # (0.5 + 2) / 6 h = 41.7%
    assert "41.7% of event hours not opted out < minimum 50.0%" in unpaid.explanation
    # The seasonal incentive is a season-end payment: a billing period does not pay it.
    assert calc(good, dt.date(2026, 7, 1), dt.date(2026, 8, 1)).total_amount == 0


def test_top_percent_kw_drop_pays_at_season_end_and_approves_deferred_settlements(admin_user):
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KW, basis=IncentiveBasis.PER_KW,
                         amount=Decimal("275"), top_percent_events=Decimal("50"))
    sub = active_participant(program=program)
    drops = [("3.0", False), ("1.0", False), ("2.0", False), ("2.5", True)]
    for i, (kw, opted) in enumerate(drops):
        event = event_on(program, dt.date(2026, 7, 1) + dt.timedelta(days=7 * i))
        part = ParticipationFactory(
            event=event, subscription=sub, status=ParticipationStatus.OPTED_OUT if opted else "participated",
            opted_out_at=event.start + dt.timedelta(hours=1) if opted else None)
        EventSettlementFactory(participation=part, status=EventSettlementStatus.DEFERRED, kw_drop_avg=Decimal(kw))
    cs = calc(sub, season.start_date, season.end_date + dt.timedelta(days=1), kind=PeriodKind.SEASON_END)
    # Issue 16: the event opted out after 1 h counts its prorated 2.5 kW (it counted 0 before: $687.50, 2.5 kW).
    # kW drops 3, 1, 2 and 2.5; top 50% = 3 and 2.5: 2.75 kW x $275 = $756.25.
    assert lines(cs) == [(LineKind.PERFORMANCE_KW, Decimal("756.25"))]
    assert cs.lines.get().quantity == Decimal("2.7500")
    services.customer_settlement_approve(settlement=cs, now=NOW, actor=admin_user)
    cs.refresh_from_db()
    assert cs.status == CS.APPROVED
    # Deferred event settlements with no per-event money stay deferred (nothing of theirs was paid here).
    assert set(EventSettlement.objects.values_list("status", flat=True)) == {EventSettlementStatus.DEFERRED}


def test_deferred_event_money_is_paid_by_the_season_settlement(admin_user):
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 1)), subscription=sub)
    es = EventSettlementFactory(participation=part, status=EventSettlementStatus.DEFERRED, amount=Decimal("4.00"),
                                components=[{"kind": "per_event", "amount": "4", "rounded": "4.00",
                                             "description": "$4 per event", "quantity": "1", "unit": "",
                                             "rate": "4", "rule_id": None}])
    cs = calc(sub, season.start_date, season.end_date + dt.timedelta(days=1), kind=PeriodKind.SEASON_END)
    assert lines(cs) == [(LineKind.PER_EVENT, Decimal("4.00"))]
    calc(sub, season.start_date, season.end_date + dt.timedelta(days=1), kind=PeriodKind.SEASON_END)
    assert cs.lines.count() == 1  # recalculation replaces, never duplicates
    services.customer_settlement_approve(settlement=cs, now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (EventSettlementStatus.APPROVED, Decimal("4.00"))


def test_season_cap_limits_the_season_net():
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.MONTHLY, amount=Decimal("30"), season=season)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, amount=Decimal("60"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASON_CAP, amount=Decimal("100"), season=season)
    sub = active_participant(program=program)
    first = calc(sub, dt.date(2026, 6, 1), dt.date(2026, 8, 1))
    assert first.total_amount == Decimal("60.00")  # June + July, under the cap
    end = calc(sub, season.start_date, season.end_date + dt.timedelta(days=1), kind=PeriodKind.SEASON_END)
    # August + September $60 + seasonal $60 = $120; with the earlier $60 the season would be $180: cap -$80.
    assert lines(end) == sorted([(LineKind.MONTHLY, Decimal("30.00")), (LineKind.MONTHLY, Decimal("30.00")),
                                 (LineKind.SEASONAL, Decimal("60.00")), (LineKind.CAP_ADJUSTMENT, Decimal("-80.00"))])
    assert end.total_amount == Decimal("40.00")
    assert "Season cap $100" in end.explanation


def test_approved_event_lines_are_claimed_once_and_approved_settlements_do_not_change(admin_user):
    program = ProgramFactory()
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 1)), subscription=sub)
    es = EventSettlementFactory(participation=part, amount=Decimal("5.63"), components=[
        {"kind": "performance_kwh", "amount": "5.625", "rounded": "5.63", "description": "4.5 kWh x $1.25",
         "quantity": "4.5", "unit": "kWh", "rate": "1.25", "rule_id": None}])
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    july = calc(sub, dt.date(2026, 7, 1), dt.date(2026, 8, 1))
    assert lines(july) == [(LineKind.PERFORMANCE_KWH, Decimal("5.63"))]
    august = calc(sub, dt.date(2026, 8, 1), dt.date(2026, 9, 1))
    assert august.total_amount == 0
    services.customer_settlement_approve(settlement=july, now=NOW, actor=admin_user)
    services.customer_settlement_approve(settlement=july, now=NOW, actor=admin_user)  # idempotent
    july.refresh_from_db()
    assert july.status == CS.APPROVED
    assert calc(sub, dt.date(2026, 7, 1), dt.date(2026, 8, 1)).total_amount == Decimal("5.63")


def test_period_must_be_ordered():
    from cpm.base.errors import DomainValidationError

    sub = active_participant(program=ProgramFactory())
    with pytest.raises(DomainValidationError) as err:
        calc(sub, dt.date(2026, 7, 1), dt.date(2026, 7, 1))
    assert "period_end" in err.value.errors


def test_due_settlements_billing_period_and_final_bill_created_once():
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.MONTHLY, amount=Decimal("10"))
    staying = active_participant(program=program, start=dt.date(2026, 6, 1))
    leaving = active_participant(program=program, start=dt.date(2026, 6, 1))
    type(leaving.enrollment).objects.filter(pk=leaving.enrollment_id).update(status=EnrollmentStatus.UNENROLLED,
                                                                            end_date=dt.date(2026, 9, 20))
    now = dt.datetime(2026, 10, 2, 12, tzinfo=dt.UTC)
    with run_on_commit():
        services.customer_settlements_create_due(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        services.customer_settlements_create_due(now=now, actor=TEST_ACTOR)
    september = CustomerSettlement.objects.filter(period_kind=PeriodKind.BILLING_PERIOD)
    assert sorted(september.values_list("account_id", "period_start", "period_end", "total_amount")) == [
        (staying.enrollment.account_id, dt.date(2026, 9, 1), dt.date(2026, 10, 1), Decimal("10.00")),
        (leaving.enrollment.account_id, dt.date(2026, 9, 1), dt.date(2026, 10, 1), Decimal("0.00"))]
    final = CustomerSettlement.objects.get(period_kind=PeriodKind.FINAL_BILL)
    assert (final.account_id, final.period_start, final.period_end) == (
        leaving.enrollment.account_id, dt.date(2026, 6, 1), dt.date(2026, 9, 20))
    # Nothing was billed before: the final bill pays June to September ($40), so the September billing period pays
    # the leaving account nothing more: each month once.
    assert final.total_amount == Decimal("40.00")
    assert staying.enrollment.account.customer_settlements.count() == 1


def test_a_chunk_of_accounts_equals_one_by_one_and_pays_a_shared_service_point_bonus_once():
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.ENROLLMENT_BONUS, amount=Decimal("75"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.MONTHLY, amount=Decimal("20"), season=season)
    subs = [active_participant(program=program, start=dt.date(2026, 6, 10)) for _ in range(3)]
    # A second account at the first account's service point (e.g. a new tenant): no second bonus there.
    from enrollments.models import ServiceAgreement

    ServiceAgreement.objects.filter(service_point=subs[0].enrollment.service_point).update(
        end_date=dt.date(2026, 6, 14))
    type(subs[0].enrollment).objects.filter(pk=subs[0].enrollment_id).update(status=EnrollmentStatus.UNENROLLED,
                                                                             end_date=dt.date(2026, 6, 14))
    shared = active_participant(program=program, service_point=subs[0].enrollment.service_point,
                                start=dt.date(2026, 6, 15))
    accounts = [s.enrollment.account_id for s in [*subs, shared]]
    out = services.customer_settlements_calculate(account_ids=accounts, program=program,
                                                  period_kind=PeriodKind.BILLING_PERIOD,
                                                  period_start=dt.date(2026, 6, 1), period_end=dt.date(2026, 8, 1),
                                                  now=NOW, actor=TEST_ACTOR)
    # $75 bonus + $20 a month enrolled (the first account only in June, the new tenant June and July, no bonus).
    assert [out[a].total_amount for a in accounts] == [Decimal("95.00"), Decimal("115.00"), Decimal("115.00"),
                                                       Decimal("40.00")]
    assert "already paid" in out[accounts[3]].explanation
    assert all(cs.status == CS.CALCULATED for cs in out.values())
    # One by one gives the same (recalculation of the same period changes nothing).
    again = calc(subs[1], dt.date(2026, 6, 1), dt.date(2026, 8, 1))
    assert again.pk == out[accounts[1]].pk and lines(again) == lines(out[accounts[1]])


def test_a_chunk_of_accounts_runs_the_same_queries_for_one_or_many():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(n):
        program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
        season = SeasonFactory(program=program)
        IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, amount=Decimal("20"), season=season)
        IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KW, basis=IncentiveBasis.PER_KW,
                             amount=Decimal("5"), season=season)
        accounts = []
        for _ in range(n):
            sub = active_participant(program=program)
            part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 1)), subscription=sub)
            EventSettlementFactory(participation=part, status=EventSettlementStatus.DEFERRED,
                                   components=[{"kind": "per_event", "amount": "4", "rounded": "4.00",
                                                "description": "$4", "quantity": "1", "unit": "", "rate": "4",
                                                "rule_id": None}])
            accounts.append(sub.enrollment.account_id)
        with CaptureQueriesContext(connection) as ctx:
            out = services.customer_settlements_calculate(
                account_ids=accounts, program=program, period_kind=PeriodKind.SEASON_END,
                period_start=season.start_date, period_end=season.end_date + dt.timedelta(days=1), now=NOW,
                actor=TEST_ACTOR)
        assert {cs.total_amount for cs in out.values()} == {Decimal("24.00")}  # $4 event + $20 seasonal
        return len(ctx.captured_queries)

    assert queries(1) == queries(5)


def test_a_season_batch_chunk_reads_and_settles_only_its_own_accounts(settings):
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, amount=Decimal("20"), season=season,
                         min_participation_share=Decimal("0"))
    subs = [active_participant(program=program) for _ in range(5)]
    accounts = sorted(s.enrollment.account_id for s in subs)
    settings.CPM_CHUNK_SIZE = 2
    batch = services.season_settle(program=program, season=season, now=NOW,
                                   actor=TEST_ACTOR)  # chunks enqueued on commit, not run
    assert batch.chunks_total == 3 and CustomerSettlement.objects.count() == 0
    assert services._accounts_for(program, season.start_date, season.end_date, first=accounts[1],
                                  last=accounts[3]) == accounts[1:4]
    counts = services.customer_settle_chunk(batch=batch, account_first=accounts[2], account_last=accounts[3],
                                            period_kind=PeriodKind.SEASON_END, now=NOW, actor=TEST_ACTOR)
    assert counts == {"calculated": 2, "failed": 0}
    assert sorted(CustomerSettlement.objects.values_list("account_id", flat=True)) == accounts[2:4]


def test_a_period_reads_with_its_last_day_included_in_the_admin_and_on_the_csr_page(client, admin_user):
    """The period is stored half-open ([Jun 1, Oct 1)); a person reads "Jun 1, 2026 – Sep 30, 2026"."""
    program = ProgramFactory()
    SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.ENROLLMENT_BONUS, basis=IncentiveBasis.FLAT,
                         amount=Decimal("25"))
    sub = active_participant(program=program, start=dt.date(2026, 5, 20))
    cs = calc(sub, dt.date(2026, 6, 1), dt.date(2026, 10, 1))
    assert (cs.period_end, cs.period_last_day) == (dt.date(2026, 10, 1), dt.date(2026, 9, 30))
    assert cs.period_display == "Jun 1, 2026 \u2013 Sep 30, 2026"
    client.force_login(admin_user)
    page = client.get("/admin/settlement/customersettlement/").content.decode()
    assert "Jun 1, 2026 \u2013 Sep 30, 2026" in page and "Period (local days, both included)" in page
    csr = client.get(f"/csr/customers/{sub.enrollment.account.customer_id}/").content.decode()
    assert "Jun 1, 2026 \u2013 Sep 30, 2026" in csr and "Oct 1, 2026" not in csr


def test_season_cap_does_not_take_back_a_mid_season_enrollment_bonus(admin_user):
    """SCE Smart Energy Program terms (programs/samples.py): $1.25/kWh "up to $60 a year, plus the $75 enrollment
    incentive". A customer enrolled on July 5 is paid the $75 bonus in the July billing period, with an event of
    July 8 that saved 10 kWh: 10 x $1.25 = $12.50. The per-kWh earnings ($12.50) are under the $60 cap, so July pays
    $75 + $12.50 = $87.50 and no cap line. Later per-kWh earnings are capped at $60 in all: a second period with
    $60 more per-kWh gets a cap line of -$12.50 (earlier capped net $12.50 + $60 - $60)."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.ENROLLMENT_BONUS, basis=IncentiveBasis.FLAT,
                         amount=Decimal("75"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASON_CAP, amount=Decimal("60"), season=season)
    sub = active_participant(program=program, start=dt.date(2026, 7, 5))

    def approved_event(day, kwh, rounded):
        part = ParticipationFactory(event=event_on(program, day), subscription=sub)
        es = EventSettlementFactory(participation=part, amount=Decimal(rounded), components=[
            {"kind": "performance_kwh", "amount": rounded, "rounded": rounded, "description": f"{kwh} kWh x $1.25",
             "quantity": kwh, "unit": "kWh", "rate": "1.25", "rule_id": None}])
        services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)

    approved_event(dt.date(2026, 7, 8), "10", "12.50")
    july = calc(sub, dt.date(2026, 7, 1), dt.date(2026, 8, 1))
    assert lines(july) == [(LineKind.ENROLLMENT_BONUS, Decimal("75.00")), (LineKind.PERFORMANCE_KWH, Decimal("12.50"))]
    assert july.total_amount == Decimal("87.50")
    approved_event(dt.date(2026, 8, 12), "48", "60.00")
    august = calc(sub, dt.date(2026, 8, 1), dt.date(2026, 9, 1))
    assert lines(august) == [(LineKind.CAP_ADJUSTMENT, Decimal("-12.50")),
                             (LineKind.PERFORMANCE_KWH, Decimal("60.00"))]
    assert august.total_amount == Decimal("47.50")


def test_a_downward_correction_after_the_cap_gives_back_the_capped_amount_first(admin_user):
    """Season cap $60. July: an event earning $80 (64 kWh x $1.25) is approved; the July settlement pays $80 and a
    cap line of -$20: $60. In August the meter data is corrected: the event earned $70 (56 kWh), still above the
    cap, so the season's right total stays $60. The re-approval posts -$80 and +$70 (net -$10) into August; the
    August settlement must give back $10 of the July cap line (+$10), total $0, season net $60, not $50.
    A second correction down to $50 (40 kWh): the season's earnings are now $50, under the cap: the customer is owed
    $50, so September nets -$20 (reversal -$70, +$50) and releases the remaining $10 of the cap: -$10, season net
    $50."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASON_CAP, amount=Decimal("60"), season=season)
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 8)), subscription=sub)

    es = EventSettlementFactory(participation=part, amount=Decimal("80.00"), components=_kwh_component("64", "80.00"))
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    july = calc(sub, dt.date(2026, 7, 1), dt.date(2026, 8, 1))
    assert july.total_amount == Decimal("60.00")

    def correct(kwh, rounded, revision):
        _correct(es, kwh, rounded, revision, admin_user)

    correct("56", "70.00", 2)
    august = calc(sub, dt.date(2026, 8, 1), dt.date(2026, 9, 1))
    assert lines(august) == [(LineKind.CAP_ADJUSTMENT, Decimal("10.00")),
                             (LineKind.PERFORMANCE_KWH, Decimal("-80.00")),
                             (LineKind.PERFORMANCE_KWH, Decimal("70.00"))]
    assert august.total_amount == Decimal("0.00")
    correct("40", "50.00", 3)
    september = calc(sub, dt.date(2026, 9, 1), dt.date(2026, 10, 1))
    assert september.total_amount == Decimal("-10.00")
    assert july.total_amount + august.total_amount + september.total_amount == Decimal("50.00")


def test_a_deferred_event_settlement_gone_pending_is_no_longer_paid_by_the_season_settlement(admin_user):
    """Season-end program: the deferred event settlement ($4 per event) is in the season settlement (calculated, not
    approved). New meter data then leave the event without a baseline: the event settlement goes back to PENDING
    (DEFERRED -> PENDING). Recalculating the season settlement must drop its $4 line (nothing is owed while it is
    pending): total $0; approving it leaves the event settlement PENDING with nothing posted."""
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 1)), subscription=sub)
    es = EventSettlementFactory(participation=part, status=EventSettlementStatus.DEFERRED, amount=Decimal("4.00"),
                                components=[{"kind": "per_event", "amount": "4", "rounded": "4.00",
                                             "description": "$4 per event", "quantity": "1", "unit": "",
                                             "rate": "4", "rule_id": None}])
    period = (season.start_date, season.end_date + dt.timedelta(days=1))
    cs = calc(sub, *period, kind=PeriodKind.SEASON_END)
    assert cs.total_amount == Decimal("4.00")
    EventSettlement.objects.filter(pk=es.pk).update(status=EventSettlementStatus.PENDING, amount=0, components=[])
    cs = calc(sub, *period, kind=PeriodKind.SEASON_END)
    assert lines(cs) == [] and cs.total_amount == Decimal("0.00")
    services.customer_settlement_approve(settlement=cs, now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount, es.lines.count()) == (EventSettlementStatus.PENDING, 0, 0)


def test_a_correction_approved_after_the_season_is_still_capped_by_its_season(admin_user):
    """Season cap $60 (June-September). A July event earning $80 is approved: July pays $80 and a cap line of -$20.
    In October the meter data is corrected: the event earned $100. The re-approval posts -$80 and +$100 into the
    October billing period, outside the season: the lines are of the July event, so the season's cap still holds
    them (earlier $60 + this $20 over $60: -$20), and the season pays $60 in all, not $80. Recalculating October
    changes nothing; a downward correction in November gives back what the caps took only down to the earnings."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASON_CAP, amount=Decimal("60"), season=season)
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 8)), subscription=sub)

    es = EventSettlementFactory(participation=part, amount=Decimal("80.00"), components=_kwh_component("64", "80.00"))
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    july = calc(sub, dt.date(2026, 7, 1), dt.date(2026, 8, 1))
    assert (july.total_amount, july.season_id) == (Decimal("60.00"), season.pk)

    def correct(kwh, rounded, revision):
        _correct(es, kwh, rounded, revision, admin_user)

    correct("80", "100.00", 2)
    october = calc(sub, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert october.season_id is None  # a billing period outside the season
    assert lines(october) == [(LineKind.CAP_ADJUSTMENT, Decimal("-20.00")),
                              (LineKind.PERFORMANCE_KWH, Decimal("-80.00")),
                              (LineKind.PERFORMANCE_KWH, Decimal("100.00"))]
    assert october.total_amount == Decimal("0.00")
    cap = october.lines.get(kind=LineKind.CAP_ADJUSTMENT)
    assert cap.description.startswith(f"Season cap $60.00 ({season.name}): earlier $60.00 + this $20.00 exceeds")
    assert f"Season cap $60.00 ({season.name}) applied: -$20.00." in october.explanation
    again = calc(sub, dt.date(2026, 10, 1), dt.date(2026, 11, 1))
    assert (again.pk, lines(again), again.total_amount) == (october.pk, lines(october), Decimal("0.00"))
    # Down to $50 (40 kWh): the season earned $50, under the cap: November nets -$50 and gives back the $40 the two
    # cap lines took, -$10: the season pays $50 in all.
    correct("40", "50.00", 3)
    november = calc(sub, dt.date(2026, 11, 1), dt.date(2026, 12, 1))
    assert lines(november) == [(LineKind.CAP_ADJUSTMENT, Decimal("40.00")),
                               (LineKind.PERFORMANCE_KWH, Decimal("-100.00")),
                               (LineKind.PERFORMANCE_KWH, Decimal("50.00"))]
    assert july.total_amount + october.total_amount + november.total_amount == Decimal("50.00")


def _reopen(es, kwh: str, rounded: str) -> None:
    """A season-end program's correction after approval, as ``event_settle_chunk`` makes it: the event settlement
    re-opened (APPROVED -> DEFERRED, revision + 1) with its recalculated money."""
    es.refresh_from_db()
    EventSettlement.objects.filter(pk=es.pk).update(
        status=EventSettlementStatus.DEFERRED, revision=es.revision + 1, amount=Decimal(rounded),
        components=_kwh_component(kwh, rounded))


def test_a_correction_after_the_season_settlement_is_exported_is_still_capped_by_its_season(admin_user):
    """Season-end program, season cap $60. The July event earned $80 (64 kWh x $1.25): the season settlement pays
    $80 and a cap line of -$20, $60, approved and exported. Corrected up to $100 in October, the October adjustment
    carries the difference, +$20, and the season's cap takes it back (-$20): $0. While that adjustment waits for
    approval, a November adjustment does not carry the correction again. Corrected down to $50 in November: the
    difference -$50 and the cap gives back the $40 it took: -$10, the season paid $50 in all."""
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASON_CAP, amount=Decimal("60"), season=season)
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 8)), subscription=sub)
    es = EventSettlementFactory(participation=part, status=EventSettlementStatus.DEFERRED, amount=Decimal("80.00"),
                                components=_kwh_component("64", "80.00"))
    end = calc(sub, season.start_date, season.end_date + dt.timedelta(days=1), kind=PeriodKind.SEASON_END)
    assert end.total_amount == Decimal("60.00")
    services.customer_settlement_approve(settlement=end, now=NOW, actor=admin_user)
    services.bill_credit_export_create(now=NOW, actor=admin_user)

    _reopen(es, "80", "100.00")
    october = calc(sub, dt.date(2026, 10, 1), dt.date(2026, 11, 1), kind=PeriodKind.ADJUSTMENT)
    assert lines(october) == [(LineKind.CAP_ADJUSTMENT, Decimal("-20.00")),
                              (LineKind.PERFORMANCE_KWH, Decimal("20.00"))]
    assert (october.total_amount, october.season_id) == (Decimal("0.00"), None)
    assert october.lines.get(kind=LineKind.CAP_ADJUSTMENT).description.startswith(
        f"Season cap $60.00 ({season.name}): earlier $60.00 + this $20.00 exceeds")
    november = calc(sub, dt.date(2026, 11, 1), dt.date(2026, 12, 1), kind=PeriodKind.ADJUSTMENT)
    assert (lines(november), november.total_amount) == ([], Decimal("0.00"))
    assert services._accounts_for(program, dt.date(2026, 11, 1), dt.date(2026, 12, 1),
                                  period_kind=PeriodKind.ADJUSTMENT) == []
    services.customer_settlement_approve(settlement=october, now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (EventSettlementStatus.APPROVED, Decimal("100.00"))

    _reopen(es, "40", "50.00")
    assert services._accounts_for(program, dt.date(2026, 11, 1), dt.date(2026, 12, 1),
                                  period_kind=PeriodKind.ADJUSTMENT) == [sub.enrollment.account_id]
    november = calc(sub, dt.date(2026, 11, 1), dt.date(2026, 12, 1), kind=PeriodKind.ADJUSTMENT)
    assert lines(november) == [(LineKind.CAP_ADJUSTMENT, Decimal("40.00")),
                               (LineKind.PERFORMANCE_KWH, Decimal("-50.00"))]
    assert end.total_amount + october.total_amount + november.total_amount == Decimal("50.00")
    services.customer_settlement_approve(settlement=november, now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (EventSettlementStatus.APPROVED, Decimal("50.00"))


def test_a_correction_that_leaves_the_money_unchanged_is_carried_as_zero_and_approved(admin_user):
    """A recalculation after the season settlement changed the event settlement's inputs but not its money ($4):
    the adjustment carries a $0.00 line naming it (no bill line is exported for it) and approving the adjustment
    approves the correction; nothing is left to carry."""
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 1)), subscription=sub)
    es = EventSettlementFactory(participation=part, status=EventSettlementStatus.DEFERRED, amount=Decimal("4.00"),
                                components=_kwh_component("3.2", "4.00"))
    end = calc(sub, season.start_date, season.end_date + dt.timedelta(days=1), kind=PeriodKind.SEASON_END)
    services.customer_settlement_approve(settlement=end, now=NOW, actor=admin_user)
    _reopen(es, "3.2001", "4.00")
    october = calc(sub, dt.date(2026, 10, 1), dt.date(2026, 11, 1), kind=PeriodKind.ADJUSTMENT)
    line = october.lines.get()
    assert (line.kind, line.amount, line.event_settlement_id) == (LineKind.PERFORMANCE_KWH, Decimal("0.00"), es.pk)
    assert line.description.endswith("paid $4.00, now $4.00")
    services.customer_settlement_approve(settlement=october, now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (EventSettlementStatus.APPROVED, Decimal("4.00"))
    export = services.bill_credit_export_create(now=NOW, actor=admin_user)
    assert (export.settlement_count, export.line_count, export.total_amount) == (2, 1, Decimal("4.00"))
    assert services._accounts_for(program, dt.date(2026, 11, 1), dt.date(2026, 12, 1),
                                  period_kind=PeriodKind.ADJUSTMENT) == []


def _leave(sub, day: dt.date) -> None:
    """The enrollment (and its subscription) ended on local ``day`` (exclusive end)."""
    type(sub.enrollment).objects.filter(pk=sub.enrollment_id).update(status=EnrollmentStatus.UNENROLLED, end_date=day)
    type(sub).objects.filter(pk=sub.pk).update(end_date=day)


def test_austin_energy_pays_its_yearly_credit_only_to_thermostats_that_stay_enrolled():
    """Austin Energy Power Partner (real-programs.json: "$25 per year per thermostat ... for each thermostat that
    stays enrolled"; programs/samples.py): one thermostat stays enrolled through the season (June-September 2026),
    another is unenrolled on August 15. Both get the $50 enrollment credit; only the one still enrolled at the
    season's end gets the $25 yearly credit (the one that left was paid $25 too: $75)."""
    from programs.models import Program
    from programs.samples import sample_programs_load

    sample_programs_load(years=(2026,), now=NOW, actor=TEST_ACTOR)
    austin = Program.objects.get(code="austin-energy-power-partner")
    season = austin.seasons.get(name="Summer 2026")
    stays, leaves = active_participant(program=austin), active_participant(program=austin)
    _leave(leaves, dt.date(2026, 8, 15))
    period = (season.start_date, season.end_date + dt.timedelta(days=1))
    stayed, left = calc(stays, *period, kind=PeriodKind.SEASON_END), calc(leaves, *period, kind=PeriodKind.SEASON_END)
    assert lines(stayed) == [(LineKind.ENROLLMENT_BONUS, Decimal("50.00")), (LineKind.SEASONAL, Decimal("25.00"))]
    assert lines(left) == [(LineKind.ENROLLMENT_BONUS, Decimal("50.00"))]
    assert left.total_amount == Decimal("50.00")
    assert ("Summer 2026: Not paid: no longer enrolled from 2026-08-15, before the season's end (2026-09-30); paid "
            "to enrollments still enrolled at the season's end.") in left.explanation


@pytest.mark.parametrize(("season_enrollment", "left_paid", "joined_late_paid"), [
    ("any", Decimal("40.00"), Decimal("40.00")),  # the default: paid as before to both
    ("at_season_end", Decimal("0.00"), Decimal("40.00")),
    ("whole_season", Decimal("0.00"), Decimal("0.00")),
    # $40 x 75 / 122 days = $24.59; $40 x 108 / 122 = $35.41.
    ("prorated", Decimal("24.59"), Decimal("35.41")),
])
def test_a_seasonal_incentive_follows_the_rules_season_enrollment(season_enrollment, left_paid, joined_late_paid):
    """Season June 1 - September 30 2026 (122 days), a $40 seasonal incentive. One enrollment (from May 20) ended on
    August 15: 75 days of the season. Another joined on June 15: 108 days, enrolled at the season's end. One stayed the
    whole season: always $40."""
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, basis=IncentiveBasis.FLAT, amount=Decimal("40"),
                         season_enrollment=season_enrollment)
    whole = active_participant(program=program)
    left = active_participant(program=program, start=dt.date(2026, 5, 20))
    _leave(left, dt.date(2026, 8, 15))
    late = active_participant(program=program, start=dt.date(2026, 6, 15))
    accounts = [s.enrollment.account_id for s in (whole, left, late)]
    out = services.customer_settlements_calculate(
        account_ids=accounts, program=program, period_kind=PeriodKind.SEASON_END, period_start=season.start_date,
        period_end=season.end_date + dt.timedelta(days=1), now=NOW, actor=TEST_ACTOR)
    assert [out[a].total_amount for a in accounts] == [Decimal("40.00"), left_paid, joined_late_paid]
    assert all(cs.lines.filter(kind=LineKind.SEASONAL).count() == (cs.total_amount > 0) for cs in out.values())


def test_two_monthly_rules_give_lines_named_by_their_rule():
    """An EV program pays $10 a month for off-peak charging and $20 for a month without an opt-out: two lines a
    month, each description naming its rule (both read "Monthly incentive 2026-06" before)."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.MONTHLY, amount=Decimal("10"), season=season,
                         description="Off-peak charging reward")
    IncentiveRuleFactory(program=program, kind=IncentiveKind.MONTHLY, amount=Decimal("20"), season=season,
                         requires_no_skipped_event=True, description="No opt-out reward")
    sub = active_participant(program=program, start=dt.date(2026, 5, 20))
    cs = calc(sub, dt.date(2026, 6, 1), dt.date(2026, 7, 1))
    assert sorted(cs.lines.values_list("description", "amount")) == [
        ("Monthly incentive 2026-06: No opt-out reward", Decimal("20.00")),
        ("Monthly incentive 2026-06: Off-peak charging reward", Decimal("10.00"))]


def test_a_season_end_settlement_is_refused_before_the_season_has_ended_or_for_a_period_that_is_not_a_season():
    """A season-end settlement calculated on the season's last evening (Sep 30, 20:00 in Los Angeles; Oct 1 in UTC)
    paid the seasonal incentive of a season still running, and its once-only key then kept the real season-end
    settlement from paying it; a 'season-end' settlement of July alone paid the season's incentive too. Both are
    refused naming period_end, and nothing is written (season_settle already refuses a season not ended)."""
    program = ProgramFactory()
    season = SeasonFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, amount=Decimal("60"),
                         min_participation_share=Decimal("0"))
    sub = active_participant(program=program)
    ParticipationFactory(event=event_on(program, dt.date(2026, 7, 1)), subscription=sub)
    start, end = season.start_date, season.end_date + dt.timedelta(days=1)
    last_evening = dt.datetime(2026, 10, 1, 3, 0, tzinfo=dt.UTC)  # 2026-09-30 20:00 PDT
    with pytest.raises(DomainValidationError) as exc:
        calc(sub, start, end, kind=PeriodKind.SEASON_END, now=last_evening)
    assert "period_end" in exc.value.errors
    assert "Summer 2026 ends on 2026-09-30" in str(exc.value.errors["period_end"])
    with pytest.raises(DomainValidationError) as exc:
        calc(sub, dt.date(2026, 7, 1), dt.date(2026, 8, 1), kind=PeriodKind.SEASON_END)
    assert "period_end" in exc.value.errors
    assert CustomerSettlement.objects.count() == 0
    # After the season, the season-end settlement pays it once.
    paid = calc(sub, start, end, kind=PeriodKind.SEASON_END, now=last_evening + dt.timedelta(hours=8))
    assert lines(paid) == [(LineKind.SEASONAL, Decimal("60.00"))]


def test_a_deferred_event_settlement_approved_on_its_own_reads_the_money_its_season_settlement_holds(admin_user):
    """An analyst approved a deferred $4.00 event settlement while the season settlement (calculated, not yet
    approved) held its line: the settlement read APPROVED with posted_amount $0.00 although its $4.00 line is
    approved money, paid once by the season settlement; it reads $4.00 (and nothing is posted twice)."""
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    season = SeasonFactory(program=program)
    sub = active_participant(program=program)
    part = ParticipationFactory(event=event_on(program, dt.date(2026, 7, 1)), subscription=sub)
    es = EventSettlementFactory(participation=part, status=EventSettlementStatus.DEFERRED, amount=Decimal("4.00"),
                                components=[{"kind": "per_event", "amount": "4", "rounded": "4.00",
                                             "description": "$4 per event", "quantity": "1", "unit": "",
                                             "rate": "4", "rule_id": None}])
    cs = calc(sub, season.start_date, season.end_date + dt.timedelta(days=1), kind=PeriodKind.SEASON_END)
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (EventSettlementStatus.APPROVED, Decimal("4.00"))
    assert list(es.lines.values_list("amount", "customer_settlement_id")) == [(Decimal("4.00"), cs.pk)]
    services.customer_settlement_approve(settlement=cs, now=NOW, actor=admin_user)
    cs.refresh_from_db()
    assert (cs.status, cs.total_amount) == (CS.APPROVED, Decimal("4.00"))
    assert calc(sub, dt.date(2026, 10, 1), dt.date(2026, 11, 1), kind=PeriodKind.ADJUSTMENT).total_amount == 0
