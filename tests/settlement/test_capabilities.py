"""Settlement's write path checks capabilities whichever door is used (issue 13).

- Services refuse ``actor=None``, a bare string and users whose role lacks the capability (CSR, auditor, program
  administrator, billing integration): ``PermissionDenied`` and nothing changes (statuses, line counts).
- A bulk approval writes one audit entry per settlement, with the actor, the reason and the code.
- The admin offers approve / reverse / recalculate / export only to roles that may run them; a POST of the action by
  any other role changes nothing. The settlement analyst can.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.base.errors import PermissionDenied
from cpm.models import AuditEntry
from settlement import services
from settlement.choices import CustomerSettlementStatus, EventSettlementStatus, PeriodKind
from settlement.models import BillCreditExport, CustomerSettlement, EventSettlement, SettlementLine
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
REFUSED_ROLES = [roles.CSR, roles.AUDITOR, roles.PROGRAM_ADMIN, roles.BILLING_INTEGRATION]


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False


def _user(django_user_model, role: str):
    user = django_user_model.objects.create_user(f"u-{role}".replace(" ", "-").lower(), password="pw-123-long-enough",
                                                 is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def settled():
    """A completed event with three calculated event settlements, and one calculated customer settlement."""
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, amount=Decimal("1.25"))
    event = EventFactory(program=program)
    subs = []
    for _ in range(3):
        sub = active_participant(program=program)
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), overrides={h: 0.5 for h in event_hours()})
        ParticipationFactory(event=event, subscription=sub)
        subs.append(sub)
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    cs = services.customer_settlement_calculate(
        account=subs[0].enrollment.account, program=program, period_kind=PeriodKind.BILLING_PERIOD,
        period_start=dt.date(2026, 7, 1), period_end=dt.date(2026, 8, 1), now=NOW, actor=TEST_ACTOR)
    return {"event": event, "program": program, "customer_settlement": cs}


def _state():
    """What a refused write must leave as it was."""
    return (sorted(EventSettlement.objects.values_list("pk", "status", "posted_amount")),
            sorted(CustomerSettlement.objects.values_list("pk", "status", "export_batch_id")),
            SettlementLine.objects.count(), BillCreditExport.objects.count(), AuditEntry.objects.count())


def _writes(ctx):
    es = EventSettlement.objects.order_by("pk").first()
    cs = ctx["customer_settlement"]
    return {
        "approve event settlement": lambda actor: services.event_settlement_approve(settlement=es, now=NOW,
                                                                                    actor=actor),
        "approve event settlements": lambda actor: services.event_settlements_approve(
            settlements=list(EventSettlement.objects.all()), now=NOW, actor=actor),
        "approve customer settlement": lambda actor: services.customer_settlement_approve(settlement=cs, now=NOW,
                                                                                          actor=actor),
        "export bill credits": lambda actor: services.bill_credit_export_create(now=NOW, actor=actor),
        "settle event again": lambda actor: services.event_settle(event=ctx["event"], now=NOW, actor=actor,
                                                                  recalculate=True),
    }


@pytest.mark.parametrize("actor", [None, "settlement", "admin"])
def test_services_refuse_a_missing_or_unnamed_actor(settled, actor):
    before = _state()
    for name, write in _writes(settled).items():
        with pytest.raises(PermissionDenied):
            write(actor)
        assert _state() == before, name


@pytest.mark.parametrize("role", REFUSED_ROLES)
def test_services_refuse_roles_without_the_capability(django_user_model, settled, role):
    user = _user(django_user_model, role)
    before = _state()
    for name, write in _writes(settled).items():
        with pytest.raises(PermissionDenied) as refused:
            write(user)
        assert refused.value.code == "capability_required", name
        assert _state() == before, name


def test_the_settlement_analyst_may_approve_and_export(django_user_model, settled):
    analyst = _user(django_user_model, roles.SETTLEMENT_ANALYST)
    services.customer_settlement_approve(settlement=settled["customer_settlement"], now=NOW, actor=analyst)
    export = services.bill_credit_export_create(now=NOW, actor=analyst)
    assert export is not None and export.settlement_count == 1
    entry = AuditEntry.objects.get(object_type="settlement.customersettlement", code="customer_settlement.exported",
                                   object_id=str(settled["customer_settlement"].pk))
    assert (entry.actor, entry.reason) == (analyst, f"exported in {export.file_name}")
    assert AuditEntry.objects.filter(code="bill_credits.exported", actor=analyst).count() == 1


def test_bulk_approval_writes_one_audit_entry_per_settlement(django_user_model, settled):
    analyst = _user(django_user_model, roles.SETTLEMENT_ANALYST)
    ids = sorted(EventSettlement.objects.filter(status=EventSettlementStatus.CALCULATED).values_list("pk", flat=True))
    assert len(ids) == 3
    done = services.event_settlements_approve(settlements=list(EventSettlement.objects.filter(pk__in=ids)), now=NOW,
                                              actor=analyst)
    assert done == 3
    entries = AuditEntry.objects.filter(object_type="settlement.eventsettlement", code="event_settlement.approved")
    assert sorted(int(e.object_id) for e in entries) == ids
    for e in entries:
        assert (e.actor, e.actor_label, e.from_status, e.to_status) == (
            analyst, analyst.username, EventSettlementStatus.CALCULATED, EventSettlementStatus.APPROVED)
        assert e.reason == "approved revision 1"


def test_a_chunk_records_its_task_system_actor(settled):
    """Batch bookkeeping is audited under the Celery task's named system actor, never a bare string."""
    labels = set(AuditEntry.objects.filter(object_type="settlement.settlementbatch").values_list("actor_label",
                                                                                                flat=True))
    assert labels == {"system:tests", "system:celery:settlement.settle_event_chunk"}
    recalculated = AuditEntry.objects.filter(code="customer_settlement.calculated").get()
    assert recalculated.actor_label == "system:tests"


# ------------------------------------------------------------------------------------------------------ admin

ADMIN_ACTIONS = {
    "/admin/settlement/eventsettlement/": ["approve", "reverse", "recalculate_event"],
    "/admin/settlement/customersettlement/": ["approve", "export"],
    "/admin/settlement/billcreditexport/": ["acknowledge"],
}


def _offered(client, url) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200, url
    form = response.context["action_form"] if response.context and "action_form" in response.context else None
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


@pytest.mark.parametrize("role", [*REFUSED_ROLES])
def test_admin_offers_no_settlement_action_to_roles_without_the_capability(client, django_user_model, settled, role):
    client.force_login(_user(django_user_model, role))
    for url, actions in ADMIN_ACTIONS.items():
        offered = _offered(client, url)
        expected = {"acknowledge"} if role == roles.BILLING_INTEGRATION and url.endswith("billcreditexport/") \
            else set()
        assert offered & set(actions) == expected, (role, url, offered)


@pytest.mark.parametrize("role", [*REFUSED_ROLES])
def test_admin_post_of_a_settlement_action_by_another_role_changes_nothing(client, django_user_model, settled, role):
    client.force_login(_user(django_user_model, role))
    es_ids = list(EventSettlement.objects.values_list("pk", flat=True))
    cs_ids = list(CustomerSettlement.objects.values_list("pk", flat=True))
    before = _state()
    posts = [("/admin/settlement/eventsettlement/", {"action": "approve", "_selected_action": es_ids}),
             ("/admin/settlement/eventsettlement/", {"action": "reverse", "_selected_action": es_ids, "apply": "yes",
                                                     "reason": "no"}),
             ("/admin/settlement/eventsettlement/", {"action": "recalculate_event", "_selected_action": es_ids}),
             ("/admin/settlement/customersettlement/", {"action": "approve", "_selected_action": cs_ids}),
             ("/admin/settlement/customersettlement/", {"action": "export", "_selected_action": cs_ids})]
    for url, data in posts:
        client.post(url, data)
        assert _state() == before, (role, data["action"])


def test_admin_settlement_analyst_approves_and_exports(client, django_user_model, settled):
    client.force_login(_user(django_user_model, roles.SETTLEMENT_ANALYST))
    for url, actions in ADMIN_ACTIONS.items():
        assert set(actions) <= _offered(client, url), url
    cs = settled["customer_settlement"]
    r = client.post("/admin/settlement/customersettlement/", {"action": "approve", "_selected_action": [cs.pk]},
                    follow=True)
    assert "1 customer settlement(s) approved." in r.content.decode()
    r = client.post("/admin/settlement/customersettlement/", {"action": "export", "_selected_action": [cs.pk]},
                    follow=True)
    cs.refresh_from_db()
    assert cs.status == CustomerSettlementStatus.EXPORTED and "Exported bill-credits-" in r.content.decode()
    es_ids = list(EventSettlement.objects.values_list("pk", flat=True))
    r = client.post("/admin/settlement/eventsettlement/", {"action": "approve", "_selected_action": es_ids},
                    follow=True)
    assert set(EventSettlement.objects.values_list("status", flat=True)) == {EventSettlementStatus.APPROVED}


def test_admin_settlement_models_are_read_only(client, django_user_model, settled):
    client.force_login(_user(django_user_model, roles.SETTLEMENT_ANALYST))
    es = EventSettlement.objects.first()
    assert client.get("/admin/settlement/eventsettlement/add/").status_code == 403
    assert client.get(f"/admin/settlement/eventsettlement/{es.pk}/delete/").status_code == 403
    before = _state()
    client.post(f"/admin/settlement/eventsettlement/{es.pk}/change/", {"status": "approved"})
    assert _state() == before
