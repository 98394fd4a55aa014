"""CSR page defects found by QA (csr2, small): money and local dates on the customer page; what the search finds."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.csr.selectors import SEARCH_LIMIT
from cpm.models import AuditEntry
from devices.models import ServicePoint
from enrollments.models import Account, Enrollment
from tests.cpm.test_csr_issue17 import _settle, csr, customer  # noqa: F401  (fixtures)
from tests.factories.devices import ServicePointFactory
from tests.factories.enrollments import AccountFactory, CustomerFactory, ServiceAgreementFactory, active_participant
from tests.factories.programs import ProgramFactory, SeasonFactory
from tests.plans import assert_index_scans


def _season_table(body: str) -> str:
    table = body[body.index('id="season-totals"'):]
    return table[:table.index("</table>")]


def test_season_totals_show_money_with_sign_before_currency_and_thousands(csr, customer):  # noqa: F811
    program = ProgramFactory(name="Smart Energy")
    SeasonFactory(program=program)
    account = customer.accounts.get()
    sub = active_participant(program=program, account=account,
                             service_point=account.service_agreements.get().service_point)
    july = dt.datetime(2026, 7, 15, 23, tzinfo=dt.UTC)
    _settle(program, sub, start=july, amount="1234.50", kwh="1.0")
    _settle(program, sub, start=july + dt.timedelta(days=1), amount="-2000.00", kwh="1.0")
    table = _season_table(csr.get(f"/csr/customers/{customer.pk}/").content.decode())
    assert "-$765.50" in table and "$-" not in table
    _settle(program, sub, start=july + dt.timedelta(days=2), amount="2000.00", kwh="1.0")
    table = _season_table(csr.get(f"/csr/customers/{customer.pk}/").content.decode())
    assert "$1,234.50" in table


def test_enrollment_history_dates_are_the_programs_local_dates_not_utc(csr, customer):  # noqa: F811
    program = ProgramFactory(name="Smart Energy", time_zone="America/Los_Angeles")
    account = customer.accounts.get()
    active_participant(program=program, account=account,
                       service_point=account.service_agreements.get().service_point)
    enrollment = Enrollment.objects.get(program=program)
    # 2026-07-15 20:00 PDT is 2026-07-16 03:00 UTC: the CSR's (and customer's) day is the 15th.
    AuditEntry.objects.filter(object_type="enrollments.enrollment", object_id=str(enrollment.pk)).delete()
    AuditEntry.objects.create(object_type="enrollments.enrollment", object_id=str(enrollment.pk),
                              action="status_change", from_status="requested", to_status="active",
                              at=dt.datetime(2026, 7, 16, 3, tzinfo=dt.UTC))
    body = csr.get(f"/csr/customers/{customer.pk}/").content.decode()
    section = body[body.index('id="enrollments"'):body.index('id="upcoming"')]
    assert "2026-07-15 requested→active" in section
    assert "2026-07-16" not in section


def test_search_matches_a_typographic_apostrophe_and_ignores_nul(csr):  # noqa: F811
    person = CustomerFactory(first_name="Siobhan", last_name="O'Brien")
    for query in ["O’Brien", "o‘brien", "O'Br\x00ien"]:
        body = csr.get("/csr/", {"q": query}).content.decode()
        assert f"/csr/customers/{person.pk}/" in body, query


def _numbered_customer(account_number: str, meter_number: str):
    person = CustomerFactory()
    account = AccountFactory(customer=person, account_number=account_number)
    ServiceAgreementFactory(account=account, service_point=ServicePointFactory(meter_number=meter_number))
    return person


@pytest.mark.parametrize("query", ["ACC-1717", "ACC-17", "acc-17", "MTR-4242", "MTR-42", "mtr-4"])
def test_search_finds_the_start_of_an_account_or_meter_number(csr, query):  # noqa: F811
    """Account and meter numbers matched only in full (ACC-17 found nothing); now their first characters do, in
    either case. The middle of a number does not."""
    person = _numbered_customer("ACC-1717", "MTR-4242")
    other = _numbered_customer("XACC-1717", "XMTR-4242")
    body = csr.get("/csr/", {"q": query}).content.decode()
    assert f"/csr/customers/{person.pk}/" in body
    assert f"/csr/customers/{other.pk}/" not in body


def test_search_queries_stay_constant_with_one_or_many_prefix_matches(csr):  # noqa: F811
    def probe(query):
        with CaptureQueriesContext(connection) as ctx:
            response = csr.get("/csr/", {"q": query})
        return len(ctx.captured_queries), len(response.context["results"])

    _numbered_customer("ACC-1", "MTR-1")
    one = [probe("ACC-"), probe("MTR-")]
    for i in range(2, SEARCH_LIMIT + 10):
        _numbered_customer(f"ACC-{i}", f"MTR-{i}")
    many = [probe("ACC-"), probe("MTR-")]
    assert [n for n, _ in one] == [n for n, _ in many] and [found for _, found in one + many] == [1, 1, 50, 50]


def test_search_box_says_what_it_searches_and_how(csr):  # noqa: F811
    body = csr.get("/csr/").content.decode()
    assert 'placeholder="Name, account or meter number (or its first characters), service point id, device serial, ' \
           'address or city"' in body
    help_ = body[body.index('id="search-help"'):]
    help_ = help_[:help_.index("</p>")]
    assert "account number or a meter number: in full or its first characters" in help_
    assert "service point id or a device serial: in full" in help_


@pytest.mark.postgres
@pytest.mark.django_db
def test_account_and_meter_number_prefix_probes_are_indexed():
    """With sequential scans off, the planner answers the prefix probes from the UPPER(...) text_pattern_ops
    indexes (a missing index would leave a Seq Scan)."""
    probes = {
        "account_number_upper_idx": Account.objects.filter(account_number__istartswith="acc-17").values("id"),
        "servicepoint_meter_number_upper_idx": ServicePoint.objects.filter(meter_number__istartswith="mtr-4")
        .values("id"),
    }
    assert_index_scans(probes)
