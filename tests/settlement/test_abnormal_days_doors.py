"""Abnormal days through the API and the admin: create, list, delete, CSV import with row errors; refused (403)
without the capability (``Cap.RUN_SETTLEMENT``)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cpm.models import AuditEntry
from settlement.models import AbnormalDay
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False


def test_api_create_list_delete_and_permissions(admin_api, api_client, django_user_model):
    program = ProgramFactory()
    r = admin_api.post("/api/v1/abnormal-days/", {"day": "2026-07-13", "scope": "feeder", "network_id": "F-12",
                                                   "reason": "storm"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["target"], body["kind"], body["reason"]) == ("feeder F-12", "outage", "storm")
    r = admin_api.post("/api/v1/abnormal-days/", {"day": "2026-07-13", "scope": "program", "program": program.pk,
                                                   "network_id": "F-1", "reason": "x"}, format="json")
    assert r.status_code == 400 and "network_id" in r.json()
    assert [d["day"] for d in admin_api.get("/api/v1/abnormal-days/?scope=feeder").json()["results"]] == [
        "2026-07-13"]
    r = admin_api.delete(f"/api/v1/abnormal-days/{body['id']}/?reason=typo")
    assert r.status_code == 204 and not AbnormalDay.objects.exists()
    assert AuditEntry.objects.filter(code="abnormal_day.deleted", reason="typo").exists()
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-123")
    api_client.force_authenticate(clerk)
    r = api_client.post("/api/v1/abnormal-days/", {"day": "2026-07-13", "scope": "feeder", "network_id": "F",
                                                    "reason": "x"}, format="json")
    assert r.status_code == 403 and not AbnormalDay.objects.exists()


def test_api_import_reports_row_errors_and_imports_nothing(admin_api):
    sp = active_participant(program=ProgramFactory()).enrollment.service_point
    text = (f"day,scope,target,reason\n2026-07-13,service_point,{sp.service_point_id},meter fault\n"
            "2026-13-01,feeder,F,x\n")
    r = admin_api.post("/api/v1/abnormal-days/import/",
                       {"file": SimpleUploadedFile("days.csv", text.encode(), content_type="text/csv")},
                       format="multipart")
    assert r.status_code == 400
    assert r.json()["errors"] == ["line 3: day: '2026-13-01' is not a date (YYYY-MM-DD)."]
    assert not AbnormalDay.objects.exists()
    good = text.splitlines()[0] + "\n" + text.splitlines()[1] + "\n"
    r = admin_api.post("/api/v1/abnormal-days/import/",
                       {"file": SimpleUploadedFile("days.csv", good.encode(), content_type="text/csv")},
                       format="multipart")
    assert r.status_code == 200 and r.json()["counts"]["abnormal_day"]["new"] == 1
    assert AbnormalDay.objects.get().target_label == f"service point {sp.service_point_id}"


def test_admin_add_through_the_service_and_import_page(client, admin_user):
    client.force_login(admin_user)
    r = client.post("/admin/settlement/abnormalday/add/", {"day": "2026-07-13", "scope": "substation",
                                                           "network_id": "SUB-3", "kind": "abnormal",
                                                           "reason": "switching"})
    assert r.status_code == 302, r.content.decode()[:2000]
    record = AbnormalDay.objects.get()
    assert record.target_label == "substation SUB-3"
    assert AuditEntry.objects.filter(code="abnormal_day.created", object_id=str(record.pk)).exists()
    assert "Import CSV" in client.get("/admin/settlement/abnormalday/").content.decode()
    page = client.post("/admin/settlement/abnormalday/import/",
                       {"file": SimpleUploadedFile("d.csv", b"day,scope,target,reason\n2026-07-14,territory,N,x\n")})
    assert page.status_code == 200 and AbnormalDay.objects.count() == 2


def test_the_same_abnormal_day_posted_again_answers_200_with_the_first_record(admin_api):
    """A retry of the same day, target and reason: 200 with the existing record (it answered 201 as if it had made
    another), one record; another reason for that day and target is a 409."""
    data = {"day": "2026-07-13", "scope": "feeder", "network_id": "F-12", "reason": "storm"}
    first = admin_api.post("/api/v1/abnormal-days/", data, format="json")
    again = admin_api.post("/api/v1/abnormal-days/", data, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and AbnormalDay.objects.count() == 1
    other = admin_api.post("/api/v1/abnormal-days/", {**data, "reason": "heat wave"}, format="json")
    assert other.status_code == 409 and other.json()["code"] == "abnormal_day_exists"
