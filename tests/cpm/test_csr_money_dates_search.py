"""CSR page defects found by QA (csr2): money and local dates on the customer page."""

from __future__ import annotations

import datetime as dt

from cpm.models import AuditEntry
from enrollments.models import Enrollment
from tests.cpm.test_csr_issue17 import _settle, csr, customer  # noqa: F401  (fixtures)
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory, SeasonFactory


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
    from tests.factories.enrollments import CustomerFactory

    person = CustomerFactory(first_name="Siobhan", last_name="O'Brien")
    for query in ["O’Brien", "o‘brien", "O'Br\x00ien"]:
        body = csr.get("/csr/", {"q": query}).content.decode()
        assert f"/csr/customers/{person.pk}/" in body, query
