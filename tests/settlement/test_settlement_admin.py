"""Settlement admin: pages render (batch list with progress, event settlement with its chart), lists run constant
queries, actions call services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.timeutils import format_local
from settlement.choices import EventSettlementStatus
from settlement.models import EventSettlement, SettlementBatch
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def settled():
    from settlement import services

    program = ProgramFactory()
    IncentiveRuleFactory(program=program, amount=Decimal("1.25"))
    event = EventFactory(program=program)
    for _ in range(2):
        sub = active_participant(program=program)
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), overrides={h: 0.5 for h in event_hours()})
        ParticipationFactory(event=event, subscription=sub)
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    return event


def test_batch_list_shows_progress(client, admin_user, settled, django_assert_max_num_queries):
    client.force_login(admin_user)
    with django_assert_max_num_queries(20):
        r = client.get("/admin/settlement/settlementbatch/")
    assert r.status_code == 200
    assert '<progress max="100" value="100"></progress> 1 / 1 chunks (100%)' in r.content.decode()
    # The batch's event is named in its program's zone (the list said "... (2026-07-15 23:00 UTC)": the selector's
    # own select_related replaced the admin's list_select_related, so the event's program was not loaded).
    assert f"{settled.name} ({format_local(settled.start, settled.program.time_zone)})" in r.content.decode()
    assert " UTC)" not in r.content.decode()


def test_event_settlement_change_page_has_the_chart_and_explanation(client, admin_user, settled):
    client.force_login(admin_user)
    es = EventSettlement.objects.first()
    r = client.get(f"/admin/settlement/eventsettlement/{es.pk}/change/")
    html = r.content.decode()
    assert r.status_code == 200
    assert '<div class="settlement-chart"><svg' in html
    assert "Adjusted baseline" in html and "4.50 kWh avoided" in html


def test_event_settlement_list_constant_queries_and_approve_action(client, admin_user, settled,
                                                                   django_assert_max_num_queries):
    client.force_login(admin_user)
    with django_assert_max_num_queries(20):
        assert client.get("/admin/settlement/eventsettlement/").status_code == 200
    ids = list(EventSettlement.objects.values_list("pk", flat=True))
    r = client.post("/admin/settlement/eventsettlement/", {"action": "approve", "_selected_action": ids},
                    follow=True)
    assert "2 settlement(s) approved." in r.content.decode()
    assert set(EventSettlement.objects.values_list("status", flat=True)) == {EventSettlementStatus.APPROVED}
    selected = {"action": "reverse", "_selected_action": ids[:1]}
    page = client.post("/admin/settlement/eventsettlement/", selected)
    assert page.status_code == 200 and "Reverse event settlements" in page.content.decode()
    r = client.post("/admin/settlement/eventsettlement/", {**selected, "apply": "yes", "reason": "meter swapped"},
                    follow=True)
    assert "1 settlement(s) reversed." in r.content.decode()
    for url in ("/admin/settlement/customersettlement/", "/admin/settlement/settlementline/",
                "/admin/settlement/billcreditexport/"):
        assert client.get(url).status_code == 200, url
    assert SettlementBatch.objects.count() == 1


def test_reverse_action_asks_for_the_reason_and_records_it(client, admin_user, settled):
    from cpm.models import AuditEntry
    from settlement.models import SettlementLine

    client.force_login(admin_user)
    ids = list(EventSettlement.objects.values_list("pk", flat=True))
    client.post("/admin/settlement/eventsettlement/", {"action": "approve", "_selected_action": ids})
    selected = {"action": "reverse", "_selected_action": ids}
    page = client.post("/admin/settlement/eventsettlement/", selected)
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="reason"' in html and all(f'name="_selected_action" value="{pk}"' in html for pk in ids)
    assert set(EventSettlement.objects.values_list("status", flat=True)) == {EventSettlementStatus.APPROVED}
    blank = client.post("/admin/settlement/eventsettlement/", {**selected, "apply": "yes", "reason": ""})
    assert blank.status_code == 200 and "This field is required." in blank.content.decode()
    assert set(EventSettlement.objects.values_list("status", flat=True)) == {EventSettlementStatus.APPROVED}
    r = client.post("/admin/settlement/eventsettlement/",
                    {**selected, "apply": "yes", "reason": "Customer not enrolled that day"}, follow=True)
    assert "2 settlement(s) reversed." in r.content.decode()
    assert set(EventSettlement.objects.values_list("status", flat=True)) == {EventSettlementStatus.REVERSED}
    negatives = SettlementLine.objects.filter(reverses__isnull=False)
    assert negatives.exists()
    assert all(line.description.endswith(": Customer not enrolled that day") for line in negatives)
    assert set(AuditEntry.objects.filter(to_status="reversed").values_list("reason", flat=True)) == {
        "Customer not enrolled that day"}


def test_batch_page_links_its_job_with_progress_and_lists_the_errors(client, admin_user, settled):
    batch = SettlementBatch.objects.get(event=settled)
    SettlementBatch.objects.filter(pk=batch.pk).update(errors=[
        {"service_point_id": 7, "participation_id": 9, "error": "implausible meter data: <1e+299>"},
        {"error": "Chunk 0 failed: ValueError: x"}])
    client.force_login(admin_user)
    html = client.get(f"/admin/settlement/settlementbatch/{batch.pk}/change/").content.decode()
    assert f'<a href="/admin/cpm/job/{batch.job_id}/change/">job #{batch.job_id}</a>: Completed, 1/1 chunks' in html
    assert "<li>service_point 7, participation 9: implausible meter data: &lt;1e+299&gt;</li>" in html
    assert "<li>Chunk 0 failed: ValueError: x</li>" in html
    r = client.get(f"/admin/cpm/job/{batch.job_id}/change/")
    assert r.status_code == 200 and "settlement.settle_event_chunk" in r.content.decode()


def test_export_download_needs_view_permission_and_a_missing_one_is_404(client, django_user_model):
    """The admin's bill-credit file download (account numbers and amounts) checked only that the user is staff:
    a staff user refused the exports list downloaded the file; an unknown export id was an HTTP 500 (QA guard)."""
    from django.contrib.auth.models import Group

    from cpm.base import roles
    from settlement.models import BillCreditExport

    export = BillCreditExport.objects.create(file_name="bill-credits-000001.csv", content="batch_id,amount\n1,2.00\n",
                                             sha256="0" * 64, created_at=NOW)
    url = f"/admin/settlement/billcreditexport/{export.pk}/download/"
    client.force_login(django_user_model.objects.create_user("staff-only", is_staff=True))
    assert client.get("/admin/settlement/billcreditexport/").status_code == 403
    assert client.get(url).status_code == 403
    analyst = django_user_model.objects.create_user("analyst", is_staff=True)
    analyst.groups.add(Group.objects.get(name=roles.SETTLEMENT_ANALYST))
    client.force_login(analyst)
    r = client.get(url)
    assert r.status_code == 200 and r.content == b"batch_id,amount\n1,2.00\n"
    assert client.get("/admin/settlement/billcreditexport/999999/download/").status_code == 404


@pytest.mark.parametrize("role", ["Settlement analyst", "Program administrator", "Auditor"])
def test_a_staff_role_follows_the_batch_page_to_its_job_and_its_chunks(client, settled, role):
    """The batch page links its job ("job #N: Completed, 1/1 chunks"), but the Jobs page was the superuser's only:
    a settlement analyst, program administrator or auditor following the link (to see why a batch is stuck or
    failed) got 403 "This page is not part of your role", and the admin index listed no Jobs (QA guard)."""
    from tests.events.helpers import role_user

    batch = SettlementBatch.objects.get(event=settled)
    client.force_login(role_user(role))
    if role == "Settlement analyst":
        html = client.get(f"/admin/settlement/settlementbatch/{batch.pk}/change/").content.decode()
        assert f'<a href="/admin/cpm/job/{batch.job_id}/change/">job #{batch.job_id}</a>' in html
    r = client.get(f"/admin/cpm/job/{batch.job_id}/change/")
    assert r.status_code == 200
    html = r.content.decode()
    assert "settlement.settle_event_chunk" in html and "Completed" in html
    assert 'name="_save"' not in html  # still read only
    listing = client.get("/admin/cpm/job/?status__exact=failed")
    assert listing.status_code == 200 and "0 jobs" in listing.content.decode()
    assert client.post(f"/admin/cpm/job/{batch.job_id}/delete/", {"post": "yes"}).status_code == 403


def test_job_page_links_its_subject(client, settled):
    """A job's page named its subject only as text frozen when the job started ("Settle an event #1", a load
    "(running)" long after it completed) and linked nowhere: from a failed job a program administrator could not
    reach the event, batch or load to act on it. The page and the list now link the subject's admin page, the page
    under the subject's current name (QA guard)."""
    from cpm.base import jobs
    from tests.events.helpers import role_user

    batch = SettlementBatch.objects.get(event=settled)
    client.force_login(role_user("Program administrator"))
    html = client.get(f"/admin/cpm/job/{batch.job_id}/change/").content.decode()
    assert f'<a href="/admin/settlement/settlementbatch/{batch.pk}/change/">{batch}</a>' in html
    reservation = jobs.job_create(kind="reservation", subject=settled, chunks=[], now=NOW, actor=TEST_ACTOR)
    html = client.get(f"/admin/cpm/job/{reservation.pk}/change/").content.decode()
    event = type(settled).objects.select_related("program").get(pk=settled.pk)
    assert f'<a href="/admin/events/event/{settled.pk}/change/">{event}</a>' in html
    assert "PDT)</a>" in html  # the event's start in its program's zone, not UTC
    listing = client.get("/admin/cpm/job/").content.decode()
    assert f'<a href="/admin/events/event/{settled.pk}/change/">' in listing
    # a subject that is gone: its recorded name, no link
    from cpm.models import Job

    Job.objects.filter(pk=reservation.pk).update(subject_id="999999", subject_repr="Gone event")
    html = client.get(f"/admin/cpm/job/{reservation.pk}/change/").content.decode()
    assert "Gone event (no longer exists)" in html and "/admin/events/event/999999/" not in html


def test_job_list_progress_of_a_single_step_job_is_not_its_status_again(admin_client):
    """A job without chunks (a meter-data load, a reservation in one transaction) read 'Completed completed' in the
    Jobs list: its progress column repeated the status. It now reads 'single step' (QA guard)."""
    from cpm.base import jobs

    job = jobs.job_create(kind="reservation", subject=None, chunks=[], now=NOW, actor=TEST_ACTOR)
    html = admin_client.get("/admin/cpm/job/").content.decode()
    row = html[html.index(f'/admin/cpm/job/{job.pk}/change/'):].split("</tr>")[0]
    assert '<td class="field-progress">single step</td>' in row, row
