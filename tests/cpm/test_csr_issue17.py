"""The CSR page of issue 17, point 6: search by first name and city; enrolled programs shown as enrolled; programs
of other utilities under "not offered here"; a confirmation step before opt-out and unenroll; season totals."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cpm.base import roles
from cpm.csr import selectors
from cpm.models import AuditEntry
from enrollments.choices import EnrollmentStatus
from enrollments.models import Enrollment
from events.choices import EventStatus, ParticipationStatus
from events.models import OptOut
from tests.factories.devices import DeviceFactory, DeviceInstallationFactory, ServicePointFactory
from tests.factories.enrollments import (
    AccountFactory,
    CustomerFactory,
    ServiceAgreementFactory,
    active_participant,
)
from tests.factories.events import EventFactory, ParticipationFactory
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory
from tests.plans import assert_index_scans

pytestmark = pytest.mark.django_db


@pytest.fixture
def csr(client, django_user_model):
    user = django_user_model.objects.create_user("csr", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    return client


@pytest.fixture
def customer():
    customer = CustomerFactory(first_name="Marisol", last_name="Okonkwo")
    account = AccountFactory(customer=customer, account_number="ACC-1717")
    sp = ServicePointFactory(service_point_id="SP-1717", rate_code="TOU-D", premise__city="Anaheim",
                             premise__service_territory="SCE", premise__address_line1="9 Orange Grove")
    ServiceAgreementFactory(account=account, service_point=sp)
    DeviceInstallationFactory(device=DeviceFactory(serial_number="SER-1717"), service_point=sp)
    CustomerFactory(first_name="Other", last_name="Person")  # not found by the queries below
    return customer


@pytest.mark.parametrize("query", ["Marisol", "mari", "Anaheim", "anah", "Marisol Okonkwo"])
def test_search_by_first_name_and_by_city(csr, customer, query):
    body = csr.get("/csr/", {"q": query}).content.decode()
    assert f"/csr/customers/{customer.pk}/" in body
    assert "Other Person" not in body


def _state(body: str, code: str) -> str:
    return re.search(rf'data-program="{code}" data-state="([a-z_]+)"', body).group(1)


def test_enrolled_program_shown_as_enrolled_and_other_utilities_under_not_offered_here(csr, customer):
    here = ProgramFactory(code="sce-tstat", name="SCE Thermostats", eligible_territories=["SCE"])
    ProgramFactory(code="anywhere", name="Offered everywhere")
    ProgramFactory(code="ngrid-bat", name="National Grid Batteries", eligible_territories=["NGRID-MA"])
    account = customer.accounts.get()
    sp = account.service_agreements.get().service_point
    body = csr.get(f"/csr/customers/{customer.pk}/").content.decode()
    assert (_state(body, "sce-tstat"), _state(body, "anywhere")) == ("eligible", "eligible")
    offered, not_offered = body.split('id="not-offered"')
    assert "National Grid Batteries" not in offered and "National Grid Batteries" in not_offered
    assert "Not offered here (1)" in not_offered and "Offered in NGRID-MA only." in not_offered

    csr.post(f"/csr/customers/{customer.pk}/enroll/", {"account": account.pk, "program": here.pk,
                                                       "service_point": sp.pk,
                                                       "devices": [sp.installations.get().device_id]})
    assert Enrollment.objects.get(program=here).status == EnrollmentStatus.ACTIVE
    body = csr.get(f"/csr/customers/{customer.pk}/").content.decode()
    assert _state(body, "sce-tstat") == "enrolled"
    row = re.search(r'<tr class="eligibility" data-program="sce-tstat".*?</tr>', body, re.S).group(0)
    assert "Enrolled (Active)" in row and "Not eligible" not in row and "already enrolled" not in row


def test_unenroll_needs_the_confirmation_step(csr, customer):
    program = ProgramFactory(name="Thermostat Rewards")
    sub = active_participant(program=program, account=customer.accounts.get(),
                             service_point=customer.accounts.get().service_agreements.get().service_point)
    enrollment = sub.enrollment
    url = f"/csr/customers/{customer.pk}/enrollments/{enrollment.pk}/unenroll/"
    before = AuditEntry.objects.count()
    response = csr.post(url, {"reason_code": "account_closed"})
    body = response.content.decode()
    assert response.status_code == 200 and "Confirm unenrollment" in body
    assert "Unenroll service point SP-1717 from Thermostat Rewards?" in body
    assert 'name="confirmed" value="yes"' in body and 'name="reason_code" value="account_closed"' in body
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ACTIVE and AuditEntry.objects.count() == before
    response = csr.post(url, {"reason_code": "account_closed", "confirmed": "yes"}, follow=True)
    assert "Unenrolled from Thermostat Rewards." in response.content.decode()
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.reason_code) == (EnrollmentStatus.UNENROLLED, "account_closed")


def test_opt_out_needs_the_confirmation_step(csr):
    program = ProgramFactory()
    ParticipationRuleFactory(program=program, opt_out_cutoff_minutes=None, window_start=None, window_end=None)
    sub = active_participant(program=program)
    start = (timezone.now() + dt.timedelta(days=1)).replace(microsecond=0)
    event = EventFactory(program=program, name="Heat wave", start=start, end=start + dt.timedelta(hours=2),
                         notification_at=start - dt.timedelta(minutes=10), status=EventStatus.SCHEDULED)
    participation = ParticipationFactory(event=event, subscription=sub)
    customer = sub.enrollment.account.customer
    url = f"/csr/customers/{customer.pk}/participations/{participation.pk}/opt-out/"
    response = csr.post(url, {"reason": "Party"})
    body = response.content.decode()
    assert response.status_code == 200 and "Confirm opt-out" in body and "out of Heat wave" in body
    participation.refresh_from_db()
    assert participation.status == ParticipationStatus.RESERVED and not OptOut.objects.exists()
    response = csr.post(url, {"reason": "Party", "confirmed": "yes"}, follow=True)
    assert "Opted out of Heat wave." in response.content.decode()
    participation.refresh_from_db()
    assert participation.status == ParticipationStatus.OPTED_OUT
    assert OptOut.objects.get().reason == "Party"


def _settle(program, sub, *, start: dt.datetime, amount: str, kwh: str, status: str = "calculated"):
    from tests.factories.settlement import EventSettlementFactory

    event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=2),
                         status=EventStatus.COMPLETED)
    participation = ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.PARTICIPATED)
    return EventSettlementFactory(participation=participation, amount=Decimal(amount), kwh_avoided=Decimal(kwh),
                                  status=status)


def test_season_totals_per_program_are_exact(csr, customer):
    from settlement.models import CustomerSettlement

    program = ProgramFactory(name="Smart Energy")
    summer = SeasonFactory(program=program)
    SeasonFactory(program=program, name="Winter 2026", start_date=dt.date(2026, 12, 1),
                  end_date=dt.date(2027, 2, 28))
    account = customer.accounts.get()
    sub = active_participant(program=program, account=account,
                             service_point=account.service_agreements.get().service_point)
    july = dt.datetime(2026, 7, 15, 23, tzinfo=dt.UTC)
    _settle(program, sub, start=july, amount="1.25", kwh="1.0000")
    _settle(program, sub, start=july + dt.timedelta(days=1), amount="2.50", kwh="2.0001")
    _settle(program, sub, start=july + dt.timedelta(days=2), amount="0.33", kwh="0.2640")
    _settle(program, sub, start=july + dt.timedelta(days=3), amount="10.00", kwh="8.0000", status="reversed")
    _settle(program, sub, start=dt.datetime(2026, 12, 10, 23, tzinfo=dt.UTC), amount="0.10", kwh="0.0800")
    at = dt.datetime(2026, 10, 2, tzinfo=dt.UTC)
    CustomerSettlement.objects.create(account=account, program=program, season=summer, period_kind="season_end",
                                      period_start=summer.start_date, period_end=dt.date(2026, 10, 1),
                                      status="calculated", total_amount=Decimal("79.08"), created_at=at,
                                      updated_at=at)
    page = selectors.customer_page(customer_id=customer.pk, now=july)
    totals = {t.season.name: t for t in page.season_totals}
    s = totals["Summer 2026"]
    assert (s.events, s.kwh_avoided, s.event_credits, s.bill_credits) == (
        3, Decimal("3.2641"), Decimal("4.08"), Decimal("79.08"))
    w = totals["Winter 2026"]
    assert (w.events, w.kwh_avoided, w.event_credits, w.bill_credits) == (1, Decimal("0.0800"), Decimal("0.10"),
                                                                          Decimal("0"))
    body = csr.get(f"/csr/customers/{customer.pk}/").content.decode()
    table = body[body.index('id="season-totals"'):]
    table = table[:table.index("</table>")]
    assert "Summer 2026 (2026-06-01 – 2026-09-30)" in table
    assert "3.26 kWh" in table and "$4.08" in table and "$79.08" in table and "$0.10" in table


def _customer_with(n: int):
    customer = CustomerFactory()
    for i in range(n):
        account = AccountFactory(customer=customer)
        program = ProgramFactory(eligible_territories=["SCE"] if i % 2 else ["NGRID-MA"])
        sub = active_participant(program=program, account=account,
                                 service_point=ServicePointFactory(premise__service_territory="SCE"))
        ProgramFactory()  # offered, not enrolled
        _settle(program, sub, start=dt.datetime(2026, 7, 15, 23, tzinfo=dt.UTC), amount="1.00", kwh="1.0")
    return customer


def test_customer_page_queries_stay_constant_with_1_or_5_programs_and_enrollments(csr):
    counts = []
    for n in (1, 5):
        customer = _customer_with(n)
        with CaptureQueriesContext(connection) as ctx:
            assert csr.get(f"/csr/customers/{customer.pk}/").status_code == 200
        counts.append(len(ctx.captured_queries))
    one, five = counts
    # Per account the eligibility engine reads a fixed number of rows (enrollments.selectors.account_eligibility);
    # everything else is constant.
    per_account = (five - one) / 4
    assert five - one == 4 * per_account and per_account <= 9, counts
    ProgramFactory.create_batch(5)
    customer = _customer_with(1)
    with CaptureQueriesContext(connection) as ctx:
        csr.get(f"/csr/customers/{customer.pk}/")
    assert len(ctx.captured_queries) == one, "more programs must not add queries"


@pytest.mark.postgres
def test_first_name_and_city_probes_are_indexed(customer):
    """With sequential scans off, the planner answers the first-name and city probes from the UPPER(...)
    text_pattern_ops indexes (a missing index would leave a Seq Scan)."""
    from devices.models import ServicePoint
    from enrollments.models import Customer

    probes = {
        "customer_first_name_upper_idx": Customer.objects.filter(first_name__istartswith="Mari").values("id"),
        "premise_city_upper_idx": ServicePoint.objects.filter(premise__city__istartswith="Anah").values("id"),
    }
    assert_index_scans(probes)


@pytest.mark.parametrize(("start", "end", "shown"), [
    ((2026, 7, 15, 16), (2026, 7, 15, 19), "2026-07-15 16:00 – 19:00 PDT"),
    ((2026, 12, 7, 22), (2026, 12, 8, 0), "2026-12-07 22:00 PST – 2026-12-08 00:00 PST"),  # crosses midnight
    ((2026, 11, 1, 0), (2026, 11, 1, 3), "2026-11-01 00:00 PDT – 2026-11-01 03:00 PST"),  # clocks go back
])
def test_the_opt_out_confirmation_names_the_window_unambiguously(start, end, shown):
    from zoneinfo import ZoneInfo

    from cpm.csr.views import local_window

    la = ZoneInfo("America/Los_Angeles")
    assert local_window(dt.datetime(*start, tzinfo=la), dt.datetime(*end, tzinfo=la)) == shown


def test_the_upcoming_events_window_names_both_days_when_it_crosses_midnight(client):
    """The upcoming-events table reads "2026-12-07 23:00 PST – 2026-12-08 01:00 PST", not "... – 01:00 PST"."""
    from django.template import Context, Template

    la = "America/Los_Angeles"
    start = dt.datetime(2026, 12, 8, 7, 0, tzinfo=dt.UTC)
    rendered = Template("{% load cpm_tags %}{% local_window s e tz %}|{% local_window s f tz %}").render(
        Context({"s": start, "e": start + dt.timedelta(hours=2), "f": start + dt.timedelta(minutes=30), "tz": la}))
    assert rendered == "2026-12-07 23:00 PST – 2026-12-08 01:00 PST|2026-12-07 23:00 – 23:30 PST"


def test_eligibility_is_decided_on_today_in_the_program_zone_not_utc(customer):
    """At 18:00 PDT on May 15 (01:00 UTC May 16) a program whose enrollment closes on May 15 is still open: the
    page must not show it closed (a CSR would turn the customer away), nor one opening on May 16 as eligible."""
    closing = ProgramFactory(code="closing-today", enrollment_closes_on=dt.date(2026, 5, 15))
    opening = ProgramFactory(code="opening-tomorrow", enrollment_opens_on=dt.date(2026, 5, 16))
    evening = dt.datetime(2026, 5, 16, 1, 0, tzinfo=dt.UTC)
    lines = {line.program.code: line
             for line in selectors.customer_eligibility(accounts=list(customer.accounts.all()), now=evening)}
    assert lines[closing.code].eligible is True
    assert lines[opening.code].eligible is False
    assert [r.code for r in lines[opening.code].reasons] == ["enrollment_not_open_yet"]
