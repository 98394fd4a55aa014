"""Bill-credit export: one batch per export run, stored bytes, no duplicate credits, negative reversal lines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from settlement import services
from settlement.choices import CustomerSettlementStatus, EventSettlementStatus, ExportStatus, PeriodKind
from settlement.models import BillCreditExport, EventSettlement
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EventFactory, EventSettlementFactory, ParticipationFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 8, 3, 12, 0, tzinfo=dt.UTC)


def component(rounded, kwh):
    return [{"kind": "performance_kwh", "amount": rounded, "rounded": rounded, "quantity": kwh, "unit": "kWh",
             "rate": "1.25", "rule_id": None, "description": f"{kwh} kWh avoided x $1.25/kWh"}]


@pytest.fixture
def approved_july(admin_user):
    program = ProgramFactory(code="sep-thermostat")
    sub = active_participant(program=program)
    part = ParticipationFactory(event=EventFactory(program=program), subscription=sub)
    es = EventSettlementFactory(participation=part, amount=Decimal("5.63"), components=component("5.63", "4.5"))
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    cs = services.customer_settlement_calculate(account=sub.enrollment.account, program=program,
                                                period_kind=PeriodKind.BILLING_PERIOD, period_start=dt.date(2026, 7, 1),
                                                period_end=dt.date(2026, 8, 1), now=NOW, actor=admin_user)
    services.customer_settlement_approve(settlement=cs, now=NOW, actor=admin_user)
    return sub, es, cs


def test_export_is_idempotent_with_the_same_bytes(approved_july, admin_user):
    sub, es, cs = approved_july
    export = services.bill_credit_export_create(now=NOW, actor=admin_user)
    cs.refresh_from_db()
    assert (cs.status, cs.export_batch_id) == (CustomerSettlementStatus.EXPORTED, export.pk)
    agreement = sub.enrollment.account.service_agreements.get().agreement_id
    line = es.lines.get()
    assert export.content == (
        "batch_id,line_id,account_number,service_agreement_id,service_point_id,program_code,period_kind,"
        "period_start,period_end,line_code,amount,customer_settlement_id,event_settlement_id,reverses_line_id,"
        "description\n"
        f"{export.pk},{line.pk},{sub.enrollment.account.account_number},{agreement},"
        f"{sub.enrollment.service_point.service_point_id},sep-thermostat,billing_period,2026-07-01,2026-08-01,DRPK,"
        f"5.63,{cs.pk},{es.pk},,4.5 kWh avoided x $1.25/kWh\n")
    assert (export.line_count, export.settlement_count, export.total_amount) == (1, 1, Decimal("5.63"))
    # Exporting again finds nothing new: no second batch, no duplicate credit.
    assert services.bill_credit_export_create(now=NOW + dt.timedelta(hours=1), actor=admin_user) is None
    assert BillCreditExport.objects.count() == 1
    # Re-rendering the same batch gives the same bytes.
    assert services.bill_credit_export_render(export) == export.content


def test_correction_reversal_is_exported_as_a_negative_line(approved_july, admin_user):
    sub, es, cs = approved_july
    first = services.bill_credit_export_create(now=NOW, actor=admin_user)
    # A correction re-opened the approved settlement with a new amount (as the recalculation does, see
    # test_settlement.test_correction_after_approval_posts_a_reversal_and_the_new_amount).
    EventSettlement.objects.filter(pk=es.pk).update(status=EventSettlementStatus.CALCULATED, revision=2,
                                                    amount=Decimal("4.38"), components=component("4.38", "3.5"))
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    august = services.customer_settlement_calculate(
        account=sub.enrollment.account, program=es.program, period_kind=PeriodKind.BILLING_PERIOD,
        period_start=dt.date(2026, 8, 1), period_end=dt.date(2026, 9, 1), now=NOW, actor=admin_user)
    assert august.total_amount == Decimal("-1.25")
    services.customer_settlement_approve(settlement=august, now=NOW, actor=admin_user)
    second = services.bill_credit_export_create(now=NOW, actor=admin_user)
    rows = [r.split(",") for r in second.content.splitlines()[1:]]
    original = es.lines.order_by("id").first().pk
    assert [(r[9], r[10], r[13]) for r in rows] == [("DRPK", "-5.63", str(original)), ("DRPK", "4.38", "")]
    assert second.total_amount == Decimal("-1.25")
    assert first.content.count("\n") == 2 and str(first.pk) != str(second.pk)


def test_acknowledge_is_idempotent(approved_july, admin_user):
    export = services.bill_credit_export_create(now=NOW, actor=admin_user)
    services.bill_credit_export_acknowledge(export=export, now=NOW, actor=admin_user)
    again = services.bill_credit_export_acknowledge(export=export, now=NOW + dt.timedelta(days=1), actor=admin_user)
    assert (again.status, again.acknowledged_at, again.acknowledged_by_label) == (ExportStatus.ACKNOWLEDGED, NOW,
                                                                                  "admin")


def test_export_credits_command_writes_the_same_bytes_again(approved_july, tmp_path):
    from django.core.management import call_command

    first, again = tmp_path / "a.csv", tmp_path / "b.csv"
    call_command("export_credits", "--out", str(first))
    export = BillCreditExport.objects.get()
    call_command("export_credits", "--batch", str(export.pk), "--out", str(again))
    assert first.read_bytes() == again.read_bytes() == export.content.encode()
    call_command("export_credits", "--out", str(tmp_path / "c.csv"))  # nothing left: no second batch
    assert BillCreditExport.objects.count() == 1 and not (tmp_path / "c.csv").exists()


@pytest.mark.parametrize("where", ["missing-dir/credits.csv", "a-directory"])
def test_export_credits_command_to_an_unwritable_place_exports_nothing(approved_july, tmp_path, where):
    """``--out`` in a folder that does not exist (or naming a folder): an error in words naming ``--out``, no
    traceback, and no batch: the settlements stay approved for the next run (they used to be marked exported in a
    batch whose file was never written)."""
    from django.core.management import CommandError, call_command

    (tmp_path / "a-directory").mkdir()
    _, _, cs = approved_july
    with pytest.raises(CommandError) as exc:
        call_command("export_credits", "--out", str(tmp_path / where))
    assert str(exc.value).startswith(f"--out: cannot write {tmp_path / where}: ")
    assert str(exc.value).endswith("nothing exported.")
    assert BillCreditExport.objects.count() == 0
    cs.refresh_from_db()
    assert (cs.status, cs.export_batch_id) == (CustomerSettlementStatus.APPROVED, None)
    with pytest.raises(CommandError, match="No export batch 0."):  # not a new export
        call_command("export_credits", "--batch", "0", "--out", str(tmp_path / "zero.csv"))
    assert BillCreditExport.objects.count() == 0
    call_command("export_credits", "--out", str(tmp_path / "credits.csv"))  # the next run exports them
    assert BillCreditExport.objects.get().settlement_count == 1


def test_a_late_credit_of_a_customer_who_moved_out_names_the_agreement_it_was_earned_under(admin_user):
    """The customer moved out on 2026-07-20 (agreement ended, enrollment ended); the July 15 event was approved
    after July's billing period, so August's settlement carries it. Its export line named no service agreement
    (the agreement did not overlap August), and billing cannot post a credit to no agreement; it names the
    agreement in effect on the event's day."""
    from enrollments.models import ServiceAgreement

    program = ProgramFactory(code="sep-thermostat")
    sub = active_participant(program=program)
    account = sub.enrollment.account
    ServiceAgreement.objects.filter(account=account).update(end_date=dt.date(2026, 7, 20))
    agreement = ServiceAgreement.objects.get(account=account).agreement_id
    part = ParticipationFactory(event=EventFactory(program=program), subscription=sub)
    es = EventSettlementFactory(participation=part, amount=Decimal("5.63"), components=component("5.63", "4.5"))
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    august = services.customer_settlement_calculate(
        account=account, program=program, period_kind=PeriodKind.BILLING_PERIOD, period_start=dt.date(2026, 8, 1),
        period_end=dt.date(2026, 9, 1), now=NOW, actor=admin_user)
    assert august.total_amount == Decimal("5.63")
    services.customer_settlement_approve(settlement=august, now=NOW, actor=admin_user)
    export = services.bill_credit_export_create(now=NOW, actor=admin_user)
    (row,) = [r.split(",") for r in export.content.splitlines()[1:]]
    assert (row[2], row[3], row[9], row[10]) == (account.account_number, agreement, "DRPK", "5.63")


def test_the_approval_of_a_negative_or_large_customer_settlement_reads_as_money_in_the_audit_trail(approved_july,
                                                                                                 admin_user):
    """The audit trail read '$-1.25' for a settlement that takes $1.25 back (and '$12345.67' without separators);
    it reads '-$1.25', as every other amount people read."""
    from cpm.models import AuditEntry
    from settlement.models import CustomerSettlement

    sub, es, cs = approved_july
    EventSettlement.objects.filter(pk=es.pk).update(status=EventSettlementStatus.CALCULATED, revision=2,
                                                    amount=Decimal("4.38"), components=component("4.38", "3.5"))
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    august = services.customer_settlement_calculate(
        account=sub.enrollment.account, program=es.program, period_kind=PeriodKind.BILLING_PERIOD,
        period_start=dt.date(2026, 8, 1), period_end=dt.date(2026, 9, 1), now=NOW, actor=admin_user)
    services.customer_settlement_approve(settlement=august, now=NOW, actor=admin_user)
    entry = AuditEntry.objects.get(code="customer_settlement.approved", object_id=str(august.pk))
    assert entry.reason == "-$1.25"
    big = services.customer_settlement_calculate(
        account=sub.enrollment.account, program=es.program, period_kind=PeriodKind.BILLING_PERIOD,
        period_start=dt.date(2026, 9, 1), period_end=dt.date(2026, 10, 1), now=NOW, actor=admin_user)
    CustomerSettlement.objects.filter(pk=big.pk).update(total_amount=Decimal("12345.67"))
    services.customer_settlement_approve(settlement=big, now=NOW, actor=admin_user)
    assert AuditEntry.objects.get(code="customer_settlement.approved", object_id=str(big.pk)).reason == "$12,345.67"


def test_billing_rejects_a_batch_and_its_credits_are_exported_again_once(approved_july, admin_user):
    """Billing could only acknowledge a batch: a batch it could not load (an unknown account, a file it refused)
    left its settlements EXPORTED for ever, their credits never on a bill and never exported again. Billing now
    rejects the batch with a reason: the batch reads REJECTED (its file kept), its settlements are APPROVED again
    (each audited) and the next export sends them once, in a new batch; an acknowledged batch cannot be rejected,
    nor a rejected one acknowledged."""
    from cpm.base.errors import DomainValidationError, TransitionNotAllowed
    from cpm.models import AuditEntry

    sub, es, cs = approved_july
    first = services.bill_credit_export_create(now=NOW, actor=admin_user)
    with pytest.raises(DomainValidationError) as exc:
        services.bill_credit_export_reject(export=first, reason=" ", now=NOW, actor=admin_user)
    assert "reason" in exc.value.errors
    rejected = services.bill_credit_export_reject(export=first, reason="account unknown to billing", now=NOW,
                                                  actor=admin_user)
    assert rejected.status == ExportStatus.REJECTED
    cs.refresh_from_db()
    assert (cs.status, cs.export_batch_id, cs.exported_at) == (CustomerSettlementStatus.APPROVED, None, None)
    entry = AuditEntry.objects.get(object_type="settlement.customersettlement", object_id=str(cs.pk),
                                   code="customer_settlement.export_rejected")
    assert (entry.from_status, entry.to_status) == (CustomerSettlementStatus.EXPORTED,
                                                    CustomerSettlementStatus.APPROVED)
    assert first.file_name in entry.reason and "account unknown to billing" in entry.reason
    assert AuditEntry.objects.filter(object_type="settlement.billcreditexport", object_id=str(first.pk),
                                     to_status=ExportStatus.REJECTED).count() == 1
    # Rejecting again changes nothing; acknowledging a rejected batch is refused.
    again = services.bill_credit_export_reject(export=first, reason="again", now=NOW, actor=admin_user)
    assert again.status == ExportStatus.REJECTED
    with pytest.raises(TransitionNotAllowed):
        services.bill_credit_export_acknowledge(export=first, now=NOW, actor=admin_user)
    second = services.bill_credit_export_create(now=NOW + dt.timedelta(hours=1), actor=admin_user)
    assert second.pk != first.pk
    assert (second.settlement_count, second.line_count, second.total_amount) == (1, 1, Decimal("5.63"))
    assert services.bill_credit_export_create(now=NOW + dt.timedelta(hours=2), actor=admin_user) is None
    first.refresh_from_db()
    assert first.content.count("\n") == 2  # the rejected file is kept as it was sent
    services.bill_credit_export_acknowledge(export=second, now=NOW, actor=admin_user)
    with pytest.raises(TransitionNotAllowed):
        services.bill_credit_export_reject(export=second, reason="too late", now=NOW, actor=admin_user)


def test_billing_rejects_a_batch_through_the_api(approved_july, admin_api):
    created = admin_api.post("/api/v1/bill-credit-exports/", {}, format="json").json()
    r = admin_api.post(f"/api/v1/bill-credit-exports/{created['id']}/reject/", {}, format="json")
    assert r.status_code == 400 and "reason" in r.json()
    r = admin_api.post(f"/api/v1/bill-credit-exports/{created['id']}/reject/", {"reason": "file refused"},
                       format="json")
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert admin_api.get("/api/v1/bill-credit-exports/", {"status": "rejected"}).json()["count"] == 1
    r = admin_api.post(f"/api/v1/bill-credit-exports/{created['id']}/acknowledge/")
    assert r.status_code == 409
    again = admin_api.post("/api/v1/bill-credit-exports/", {}, format="json")
    assert again.status_code == 201 and again.json()["settlement_count"] == 1 and again.json()["total_amount"] == "5.63"


def test_a_description_with_a_line_break_stays_on_its_line_and_the_batch_counts_its_lines(admin_user):
    """A monthly rule described 'Off-peak\\nreward' (a line break typed in the admin or sent by the API) split its
    credit line in two in the billing file and the batch read line_count 2 for 1 line; the file has one line per
    credit (the break read as a space) and line_count counts credits."""
    from programs.choices import IncentiveKind
    from tests.factories.programs import IncentiveRuleFactory

    program = ProgramFactory(code="sep-thermostat")
    IncentiveRuleFactory(program=program, kind=IncentiveKind.MONTHLY, amount=Decimal("10"),
                         description="Off-peak\r\nreward")
    sub = active_participant(program=program, start=dt.date(2026, 7, 1))
    cs = services.customer_settlement_calculate(account=sub.enrollment.account, program=program,
                                                period_kind=PeriodKind.BILLING_PERIOD, period_start=dt.date(2026, 7, 1),
                                                period_end=dt.date(2026, 8, 1), now=NOW, actor=admin_user)
    assert cs.total_amount == Decimal("10.00")
    services.customer_settlement_approve(settlement=cs, now=NOW, actor=admin_user)
    export = services.bill_credit_export_create(now=NOW, actor=admin_user)
    rows = export.content.splitlines()
    assert len(rows) == 2 and export.line_count == 1
    assert rows[1].endswith(",DRMO,10.00," + f"{cs.pk},,,Monthly incentive 2026-07: Off-peak reward")


def test_a_settlement_reversed_before_its_customer_settlement_is_approved_is_not_billed(admin_user):
    """July's customer settlement (calculated, not yet approved) held the $5.63 of an event settlement that the
    analyst then reversed (settled in error): the customer settlement still read $5.63, was approved and exported,
    and the -$5.63 came a month later (a credit on July's bill taken back on August's). The reversal now reaches the
    customer settlement that holds the line while it is not approved: it reads $0.00 and exports nothing to bill."""
    program = ProgramFactory(code="sep-thermostat")
    sub = active_participant(program=program)
    part = ParticipationFactory(event=EventFactory(program=program), subscription=sub)
    es = EventSettlementFactory(participation=part, amount=Decimal("5.63"), components=component("5.63", "4.5"))
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    cs = services.customer_settlement_calculate(account=sub.enrollment.account, program=program,
                                                period_kind=PeriodKind.BILLING_PERIOD, period_start=dt.date(2026, 7, 1),
                                                period_end=dt.date(2026, 8, 1), now=NOW, actor=admin_user)
    assert cs.total_amount == Decimal("5.63")
    services.event_settlement_reverse(settlement=es, reason="not enrolled that day", now=NOW, actor=admin_user)
    cs.refresh_from_db()
    assert (cs.status, cs.total_amount) == (CustomerSettlementStatus.CALCULATED, Decimal("0.00"))
    assert sorted(cs.lines.values_list("amount", flat=True)) == [Decimal("-5.63"), Decimal("5.63")]
    services.customer_settlement_approve(settlement=cs, now=NOW, actor=admin_user)
    export = services.bill_credit_export_create(now=NOW, actor=admin_user)
    assert export.total_amount == Decimal("0.00")
    august = services.customer_settlement_calculate(
        account=sub.enrollment.account, program=program, period_kind=PeriodKind.BILLING_PERIOD,
        period_start=dt.date(2026, 8, 1), period_end=dt.date(2026, 9, 1), now=NOW, actor=admin_user)
    assert august.total_amount == Decimal("0.00") and not august.lines.exists()



def test_billing_rejects_a_batch_in_the_admin_with_a_reason(approved_july, admin_user, client, settings):
    settings.SECURE_SSL_REDIRECT = False
    _, _, cs = approved_july
    export = services.bill_credit_export_create(now=NOW, actor=admin_user)
    client.force_login(admin_user)
    selected = {"action": "reject", "_selected_action": [export.pk]}
    page = client.post("/admin/settlement/billcreditexport/", selected)
    assert page.status_code == 200 and 'name="reason"' in page.content.decode()
    r = client.post("/admin/settlement/billcreditexport/", {**selected, "apply": "yes", "reason": "file refused"},
                    follow=True)
    assert "1 export(s) rejected." in r.content.decode()
    export.refresh_from_db()
    cs.refresh_from_db()
    assert (export.status, cs.status) == (ExportStatus.REJECTED, CustomerSettlementStatus.APPROVED)
