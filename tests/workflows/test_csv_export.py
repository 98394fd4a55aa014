"""Issue 17.4: "Export selected as CSV" on every list of the domain apps: the list's columns, times in UTC ISO 8601
with offset, money with two decimals, contact details masked without the personal-data capability; offered with view
permission (a read: no use case)."""

import csv
import io
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.base import roles
from tests.factories.enrollments import CustomerFactory, active_participant
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EventFactory, EventSettlementFactory, ParticipationFactory

pytestmark = pytest.mark.django_db
DOMAIN_APPS = ("programs", "devices", "enrollments", "events", "settlement")


def export(client, url, pks):
    response = client.post(url, {"action": "export_csv", "_selected_action": [str(pk) for pk in pks]})
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="')
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_every_domain_admin_has_the_read_only_export():
    admins = [a for m, a in admin.site._registry.items() if m._meta.app_label in DOMAIN_APPS]
    assert len(admins) > 15
    for model_admin in admins:
        names = [a.name for a in model_admin._get_base_actions()]
        assert "export_csv" in names, type(model_admin).__name__
        func = type(model_admin).export_csv
        assert func.read_only is True and getattr(func, "use_case", None) is None
        assert func.allowed_permissions == ["view"]


def test_customers_masked_for_the_auditor_unmasked_for_the_csr(role_client):
    customer = CustomerFactory(cis_person_id="PER-1", first_name="Pat", last_name="Jones",
                               email="pat.jones@example.com", life_support=True)
    rows = export(role_client(roles.AUDITOR), "/admin/enrollments/customer/", [customer.pk])
    assert rows == [["cis person id", "last name", "first name", "email", "life support"],
                    ["PER-1", "Jones", "Pat", "p********@example.com", "true"]]
    rows = export(role_client(roles.CSR), "/admin/enrollments/customer/", [customer.pk])
    assert rows == [["cis person id", "last name", "first name", "email", "life support"],
                    ["PER-1", "Jones", "Pat", "pat.jones@example.com", "true"]]


def test_event_settlements_money_and_utc_times(role_client):
    program = ProgramFactory()
    sub = active_participant(program=program)
    event = EventFactory(program=program)
    es = EventSettlementFactory(participation=ParticipationFactory(event=event, subscription=sub),
                                amount=Decimal("5.5"), posted_amount=Decimal("0"), kwh_avoided=Decimal("1.2500"))
    client = role_client(roles.AUDITOR)
    rows = export(client, "/admin/settlement/eventsettlement/", [es.pk])
    assert rows == [["ID", "event", "event day", "account", "service point", "status", "measurement status",
                     "kwh avoided", "kw drop avg", "participation fraction", "amount", "posted amount", "revision"],
                    [str(es.pk), str(event), "2026-07-15", es.account.account_number,
                     es.service_point.service_point_id, es.status, es.measurement_status, "1.2500", "0.0000",
                     "1.000000", "5.50", "0.00", "1"]]
    events = export(client, "/admin/events/event/", [event.pk])
    values = dict(zip(*events, strict=True))
    assert (values["start"], values["end"]) == ("2026-07-15T23:00:00+00:00", "2026-07-16T02:00:00+00:00")
    assert (values["name"], values["program"], values["status"]) == (event.name, str(program), "completed")


def test_export_costs_a_constant_number_of_queries(role_client):
    client = role_client(roles.AUDITOR)
    program = ProgramFactory()
    subs = [active_participant(program=program) for _ in range(2)]
    event = EventFactory(program=program)
    one = [EventSettlementFactory(participation=ParticipationFactory(event=event, subscription=subs[0])).pk]
    two = one + [EventSettlementFactory(participation=ParticipationFactory(event=event, subscription=subs[1])).pk]
    url = "/admin/settlement/eventsettlement/"
    export(client, url, one)
    with CaptureQueriesContext(connection) as few:
        export(client, url, one)
    with CaptureQueriesContext(connection) as more:
        export(client, url, two)
    assert len(more) == len(few)


def test_a_role_without_view_permission_cannot_export(role_client):
    customer = CustomerFactory(email="pat.jones@example.com")
    client = role_client(roles.BILLING_INTEGRATION)
    response = client.post("/admin/enrollments/customer/", {"action": "export_csv",
                                                            "_selected_action": [customer.pk]})
    assert response.status_code == 403


def test_cells_are_machine_readable_and_never_formulas():
    import datetime as dt
    from zoneinfo import ZoneInfo

    from django.utils.safestring import mark_safe

    from cpm.base.csv_export import cell

    pdt = dt.datetime(2026, 7, 15, 16, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert cell(None, pdt) == "2026-07-15T23:00:00+00:00"
    assert cell(None, None) == "" and cell(None, False) == "false" and cell(None, Decimal("-1.5")) == "-1.5"
    assert cell(None, "=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert cell(None, mark_safe('<a href="/x">job #3</a>: done &amp; dusted')) == "job #3: done & dusted"
