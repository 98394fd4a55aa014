"""Settlement API: lists with constant queries, filters, actions through services, export pull and acknowledge."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from settlement import services
from settlement.choices import CustomerSettlementStatus, EventSettlementStatus, PeriodKind
from settlement.models import SettlementBatch
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EventFactory, EventSettlementFactory, ParticipationFactory, run_on_commit

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 8, 3, 12, 0, tzinfo=dt.UTC)
COMPONENTS = [{"kind": "performance_kwh", "amount": "5.625", "rounded": "5.63", "quantity": "4.5", "unit": "kWh",
               "rate": "1.25", "rule_id": None, "description": "4.5 kWh avoided x $1.25/kWh"}]


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP


def make_settlements(program, n, event=None):
    event = event or EventFactory(program=program)
    out = []
    for _ in range(n):
        sub = active_participant(program=program)
        part = ParticipationFactory(event=event, subscription=sub)
        out.append(EventSettlementFactory(participation=part, amount=Decimal("5.63"), components=COMPONENTS))
    return out


@pytest.mark.parametrize("url", ["/api/v1/event-settlements/", "/api/v1/customer-settlements/",
                                 "/api/v1/settlement-batches/", "/api/v1/bill-credit-exports/"])
def test_list_endpoints_run_constant_queries(admin_api, django_assert_max_num_queries, url, admin_user):
    program = ProgramFactory()

    def grow(n):
        for es in make_settlements(program, n):
            services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
            cs = services.customer_settlement_calculate(
                account=es.account, program=program, period_kind=PeriodKind.BILLING_PERIOD,
                period_start=dt.date(2026, 7, 1), period_end=dt.date(2026, 8, 1), now=NOW, actor=TEST_ACTOR)
            services.customer_settlement_approve(settlement=cs, now=NOW, actor=TEST_ACTOR)
        services.bill_credit_export_create(now=NOW, actor=TEST_ACTOR)
        SettlementBatch.objects.create(kind="event_recalc", event=es.event, program=program, created_at=NOW)

    grow(1)
    with django_assert_max_num_queries(8) as one:
        assert admin_api.get(url).status_code == 200
    grow(5)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = admin_api.get(url)
    assert response.status_code == 200 and response.json()["count"] >= 2


def test_event_settlement_filters_and_approve_and_reverse(admin_api):
    program, other = ProgramFactory(), ProgramFactory()
    a, b = make_settlements(program, 2)
    make_settlements(other, 1)
    r = admin_api.get("/api/v1/event-settlements/", {"program": program.pk, "status": "calculated"})
    assert sorted(x["id"] for x in r.json()["results"]) == sorted([a.pk, b.pk])
    r = admin_api.get("/api/v1/event-settlements/", {"account": a.account_id})
    assert [x["id"] for x in r.json()["results"]] == [a.pk]
    r = admin_api.get("/api/v1/event-settlements/", {"period_after": "2026-07-16"})
    assert r.json()["count"] == 0
    r = admin_api.get("/api/v1/event-settlements/", {"period_after": "2026-07-15", "period_before": "2026-07-15",
                                                     "event": a.event_id})
    assert r.json()["count"] == 2

    r = admin_api.post(f"/api/v1/event-settlements/{a.pk}/approve/")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["posted_amount"]) == (EventSettlementStatus.APPROVED, "5.63")
    assert [x["amount"] for x in r.json()["lines"]] == ["5.63"]
    r = admin_api.post(f"/api/v1/event-settlements/{a.pk}/reverse/", {"reason": ""}, format="json")
    assert r.status_code == 400 and "reason" in r.json()
    r = admin_api.post(f"/api/v1/event-settlements/{b.pk}/reverse/", {"reason": "wrong"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "transition_not_allowed"
    r = admin_api.post(f"/api/v1/event-settlements/{a.pk}/reverse/", {"reason": "not enrolled"}, format="json")
    assert r.json()["status"] == "reversed" and r.json()["posted_amount"] == "0.00"


def test_customer_settlement_calculate_approve_and_export_pull(admin_api):
    program = ProgramFactory()
    (es,) = make_settlements(program, 1)
    admin_api.post(f"/api/v1/event-settlements/{es.pk}/approve/")
    r = admin_api.post("/api/v1/customer-settlements/calculate/", {
        "account": es.account_id, "program": program.pk, "period_kind": "billing_period",
        "period_start": "2026-07-01", "period_end": "2026-08-01"}, format="json")
    assert r.status_code == 200, r.json()
    cs = r.json()
    assert (cs["status"], cs["total_amount"], len(cs["lines"])) == (CustomerSettlementStatus.CALCULATED, "5.63", 1)
    r = admin_api.post("/api/v1/customer-settlements/calculate/", {
        "account": es.account_id, "program": program.pk, "period_kind": "billing_period",
        "period_start": "2026-08-01", "period_end": "2026-07-01"}, format="json")
    assert r.status_code == 400 and "period_end" in r.json()
    assert admin_api.post(f"/api/v1/customer-settlements/{cs['id']}/approve/").json()["status"] == "approved"
    r = admin_api.get("/api/v1/customer-settlements/", {"status": "approved", "period_after": "2026-07-15"})
    assert [x["id"] for x in r.json()["results"]] == [cs["id"]]

    created = admin_api.post("/api/v1/bill-credit-exports/", {}, format="json")
    assert created.status_code == 201 and created.json()["settlement_count"] == 1
    assert admin_api.post("/api/v1/bill-credit-exports/", {}, format="json").status_code == 204
    export_id = created.json()["id"]
    first = admin_api.get(f"/api/v1/bill-credit-exports/{export_id}/download/")
    second = admin_api.get(f"/api/v1/bill-credit-exports/{export_id}/download/")
    assert first["Content-Type"] == "text/csv" and first.content == second.content
    assert b",DRPK,5.63," in first.content
    ack = admin_api.post(f"/api/v1/bill-credit-exports/{export_id}/acknowledge/")
    assert ack.json()["status"] == "acknowledged"
    assert admin_api.get("/api/v1/bill-credit-exports/", {"status": "acknowledged"}).json()["count"] == 1


def test_settle_event_job_endpoint_and_permissions(admin_api, api_client, django_user_model):
    program = ProgramFactory()
    event = EventFactory(program=program)
    with run_on_commit():
        r = admin_api.post("/api/v1/settlement-batches/settle-event/", {"event": event.pk}, format="json")
    assert r.status_code == 202 and r.json()["kind"] == "event" and r.json()["status"] == "completed"
    again = admin_api.post("/api/v1/settlement-batches/settle-event/", {"event": event.pk}, format="json")
    assert again.json()["id"] == r.json()["id"]
    scheduled = EventFactory(program=program, status="scheduled")
    r = admin_api.post("/api/v1/settlement-batches/settle-event/", {"event": scheduled.pk}, format="json")
    assert r.status_code == 409 and "only completed events" in r.json()["detail"]
    user = django_user_model.objects.create_user("clerk", password="pw-clerk-123")
    api_client.force_authenticate(user)
    assert api_client.get("/api/v1/event-settlements/").status_code == 403


def test_customer_settlement_calculate_refuses_an_account_never_enrolled_and_a_period_of_centuries(admin_api):
    """A billing system calculated a $0 settlement for an account that never took part in the program, and one for
    0001-01-01 to 9999-12-31; both are 400 naming the field, and nothing is written."""
    from enrollments.models import Account
    from settlement.models import CustomerSettlement

    program = ProgramFactory(code="pge-sbp")
    (es,) = make_settlements(program, 1)
    other = Account.objects.exclude(pk=es.account_id).first() or make_settlements(ProgramFactory(), 1)[0].account
    r = admin_api.post("/api/v1/customer-settlements/calculate/", {
        "account": other.pk, "program": program.pk, "period_kind": "billing_period",
        "period_start": "2026-07-01", "period_end": "2026-08-01"}, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["account"] == [f"Account {other.account_number} has never been enrolled in program pge-sbp: "
                                   "there is nothing to settle."]
    r = admin_api.post("/api/v1/customer-settlements/calculate/", {
        "account": es.account_id, "program": program.pk, "period_kind": "billing_period",
        "period_start": "0001-01-01", "period_end": "9999-12-31"}, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["period_end"][0].startswith("The period 0001-01-01 to 9999-12-31 is 3652058 days; a customer "
                                                "settlement covers at most 366 days")
    assert not CustomerSettlement.objects.exists()


def test_export_batches_filter_by_the_program_whose_credits_they_hold_and_by_creation_time(admin_api, admin_user):
    """A billing integrator listing program B's batches (?program=B) got none: the batch exported for every program
    held B's credits but names no program. A batch is listed for each program whose credits it holds; and
    created_after / created_before (instants) list the batches since the last pull (they were silently ignored:
    every batch came back)."""
    a, b = ProgramFactory(code="prog-a"), ProgramFactory(code="prog-b")

    def approved(program):
        (es,) = make_settlements(program, 1)
        services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
        cs = services.customer_settlement_calculate(
            account=es.account, program=program, period_kind=PeriodKind.BILLING_PERIOD,
            period_start=dt.date(2026, 7, 1), period_end=dt.date(2026, 8, 1), now=NOW, actor=TEST_ACTOR)
        services.customer_settlement_approve(settlement=cs, now=NOW, actor=TEST_ACTOR)

    approved(a)
    approved(b)
    every = services.bill_credit_export_create(now=NOW, actor=TEST_ACTOR)
    approved(a)
    only_a = services.bill_credit_export_create(now=NOW + dt.timedelta(days=1), actor=TEST_ACTOR, program=a)

    def ids(**params):
        r = admin_api.get("/api/v1/bill-credit-exports/", params)
        assert r.status_code == 200, r.json()
        return [x["id"] for x in r.json()["results"]]

    assert ids(program=b.pk) == [every.pk]
    assert ids(program=a.pk) == [only_a.pk, every.pk]
    assert ids(created_after="2026-08-04T00:00:00Z") == [only_a.pk]
    assert ids(created_before="2026-08-04T00:00:00Z") == [every.pk]
    assert ids(created_after="2026-08-03T05:00:00-07:00") == [only_a.pk, every.pk]
    r = admin_api.get("/api/v1/bill-credit-exports/", {"created_after": "yesterday"})
    assert r.status_code == 400 and "created_after" in r.json()
    # An instant without its UTC offset is ambiguous (as every date-time filter of the API): refused, named.
    r = admin_api.get("/api/v1/bill-credit-exports/", {"created_before": "2026-08-04T00:00"})
    assert r.status_code == 400 and "UTC offset" in str(r.json()["created_before"])


def test_settlement_inputs_accept_natural_keys(admin_api):
    """Settling a season, calculating a customer settlement, exporting credits and recording an abnormal day took
    the program, account and service point only as integer ids ('Incorrect type. Expected pk value, received str.'
    for a program code or an account number); they now take the code, account number or the utility's service point
    id as well (or the id), an unknown one a 400 naming the field (QA guard)."""
    from tests.factories.programs import SeasonFactory

    program = ProgramFactory(code="sep-keys")
    season = SeasonFactory(program=program)
    sub = active_participant(program=program)
    sp, account = sub.enrollment.service_point, sub.enrollment.account
    day = admin_api.post("/api/v1/abnormal-days/", {"day": "2026-07-01", "scope": "program", "program": "sep-keys",
                                                    "reason": "Heat storm"}, format="json")
    assert (day.status_code, day.json()["program_code"]) == (201, "sep-keys"), day.content
    day = admin_api.post("/api/v1/abnormal-days/", {"day": "2026-07-02", "scope": "service_point",
                                                    "service_point": sp.service_point_id, "reason": "Outage"},
                         format="json")
    assert (day.status_code, day.json()["service_point_id"]) == (201, sp.service_point_id), day.content
    calc = admin_api.post("/api/v1/customer-settlements/calculate/", {
        "account": account.account_number, "program": "sep-keys", "period_kind": "billing_period",
        "period_start": "2026-07-01", "period_end": "2026-08-01"}, format="json")
    assert calc.status_code in (200, 201), calc.content
    unknown = admin_api.post("/api/v1/customer-settlements/calculate/", {
        "account": "NO-SUCH", "program": "sep-keys", "period_kind": "billing_period",
        "period_start": "2026-07-01", "period_end": "2026-08-01"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["account"] == [
        "No account has account number or id 'NO-SUCH'."]
    season_run = admin_api.post("/api/v1/settlement-batches/settle-season/", {"program": "nope", "season": season.pk},
                                format="json")
    assert season_run.status_code == 400 and season_run.json()["program"] == ["No program has code or id 'nope'."]
    export = admin_api.post("/api/v1/bill-credit-exports/", {"program": "nope"}, format="json")
    assert export.status_code == 400 and export.json()["program"] == ["No program has code or id 'nope'."]
