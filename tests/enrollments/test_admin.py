"""Admin: every list page in constant queries, actions call services, uploads import all or nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices.models import Device
from enrollments.choices import EnrollmentStatus
from enrollments.models import Customer, Enrollment
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory

from .test_imports import COMBINED, DEVICES

pytestmark = pytest.mark.django_db

PAGES = ["/admin/devices/premise/", "/admin/devices/servicepoint/", "/admin/devices/aggregator/",
         "/admin/devices/device/", "/admin/devices/deviceinstallation/", "/admin/enrollments/customer/",
         "/admin/enrollments/account/", "/admin/enrollments/serviceagreement/", "/admin/enrollments/enrollment/",
         "/admin/enrollments/programsubscription/"]


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize("url", PAGES)
def test_changelists_constant_queries(admin_client_, url):
    program = ProgramFactory()
    active_participant(program=program)
    admin_client_.get(url)
    with CaptureQueriesContext(connection) as one:
        assert admin_client_.get(url).status_code == 200
    for _ in range(5):
        active_participant(program=program)
    with CaptureQueriesContext(connection) as many:
        assert admin_client_.get(url).status_code == 200
    assert len(many.captured_queries) == len(one.captured_queries)


def test_change_pages_render(admin_client_):
    sub = active_participant(program=ProgramFactory())
    for url in (f"/admin/enrollments/enrollment/{sub.enrollment_id}/change/",
                f"/admin/devices/device/{sub.device_id}/change/",
                f"/admin/enrollments/enrollment/{sub.enrollment_id}/history/"):
        assert admin_client_.get(url).status_code == 200


def test_actions_call_services_and_report_refusals(admin_client_):
    sub = active_participant(program=ProgramFactory())
    r = admin_client_.post("/admin/enrollments/enrollment/", {"action": "suspend",
                                                              "_selected_action": [sub.enrollment_id]}, follow=True)
    assert r.status_code == 200
    assert Enrollment.objects.get().status == EnrollmentStatus.SUSPENDED
    r = admin_client_.post("/admin/enrollments/enrollment/", {"action": "approve",
                                                              "_selected_action": [sub.enrollment_id]}, follow=True)
    assert "only a pending request can be approved" in r.content.decode()
    assert Enrollment.objects.get().status == EnrollmentStatus.SUSPENDED
    admin_client_.post("/admin/devices/device/", {"action": "retire", "_selected_action": [sub.device_id]})
    assert Device.objects.get().status == "retired"


def test_admin_uploads(admin_client_):
    r = admin_client_.post("/admin/enrollments/customer/import/", {
        "kind": "combined", "file": SimpleUploadedFile("cis.csv", COMBINED.encode())})
    assert r.status_code == 200 and "3 rows" in r.content.decode()
    assert Customer.objects.count() == 2
    agg = AggregatorFactory(code="tesla")
    bad = DEVICES + "ut-1,water_heater,4.5,,Rheem,R1,utility_owned,,,\n"
    r = admin_client_.post("/admin/devices/device/import/", {
        "aggregator": agg.pk, "file": SimpleUploadedFile("d.csv", bad.encode())})
    assert "line 4: ownership: Utility-owned" in r.content.decode()
    assert not Device.objects.exists()
