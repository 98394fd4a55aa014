"""Admin and API by role (issue 13): enrollment approvals only with the capability; customers' e-mail and phone
masked for users without ``view_personal_data`` (settlement analyst, auditor), shown to a CSR and a program
administrator."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cpm.base import roles
from cpm.models import AuditEntry
from enrollments.choices import EnrollmentStatus
from enrollments.models import Enrollment
from tests.factories.enrollments import AccountFactory, CustomerFactory, EnrollmentFactory, staff_user
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/enrollments/enrollment/"
EMAIL, PHONE = "pat.jones@example.com", "555-0142"


@pytest.fixture
def pending(db):
    program = ProgramFactory(status="active", requires_approval=True)
    return EnrollmentFactory(program=program, status=EnrollmentStatus.PENDING_APPROVAL)


def test_csr_cannot_approve_enrollments_in_the_admin(client, pending):
    client.force_login(staff_user(roles.CSR))
    body = client.get(CHANGELIST).content.decode()
    assert 'value="approve"' not in body and 'value="reject"' not in body
    assert 'value="unenroll_today"' in body  # a CSR may unenroll (Cap.MANAGE_ENROLLMENTS)
    client.post(CHANGELIST, {"action": "approve", "_selected_action": [pending.pk]})
    assert Enrollment.objects.get(pk=pending.pk).status == EnrollmentStatus.PENDING_APPROVAL
    assert not AuditEntry.objects.filter(object_type="enrollments.enrollment").exists()
    # The change page is read-only: no status input, no save.
    page = client.get(f"{CHANGELIST}{pending.pk}/change/").content.decode()
    assert 'name="status"' not in page and 'name="_save"' not in page


def test_program_administrator_approves_enrollments_in_the_admin(client, pending):
    admin = staff_user(roles.PROGRAM_ADMIN)
    client.force_login(admin)
    assert 'value="approve"' in client.get(CHANGELIST).content.decode()
    response = client.post(CHANGELIST, {"action": "approve", "_selected_action": [pending.pk]}, follow=True)
    assert "Approved: 1." in [str(m) for m in response.context["messages"]]
    assert Enrollment.objects.get(pk=pending.pk).status == EnrollmentStatus.ACTIVE
    entry = AuditEntry.objects.get(object_type="enrollments.enrollment", object_id=str(pending.pk))
    assert (entry.actor, entry.code) == (admin, "enrollment.active")


def test_enrollments_and_subscriptions_cannot_be_added_changed_or_deleted_in_the_admin(admin_client, pending):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{CHANGELIST}{pending.pk}/delete/").status_code == 403
    page = admin_client.get(f"{CHANGELIST}{pending.pk}/change/").content.decode()
    assert 'name="status"' not in page and 'name="_save"' not in page
    assert admin_client.get("/admin/enrollments/programsubscription/add/").status_code == 403


def test_import_pages_need_the_import_capability(client):
    client.force_login(staff_user(roles.CSR))
    assert client.get("/admin/enrollments/customer/import/").status_code == 403
    assert client.get("/admin/devices/device/import/").status_code == 403
    client.force_login(staff_user(roles.PROGRAM_ADMIN))
    assert client.get("/admin/enrollments/customer/import/").status_code == 200
    assert client.get("/admin/devices/device/import/").status_code == 200


# --- personal data --------------------------------------------------------------------------------------------------

@pytest.fixture
def customer(db):
    customer = CustomerFactory(first_name="Pat", last_name="Jones", email=EMAIL, phone=PHONE)
    AccountFactory(customer=customer)
    return customer


MASKED = [roles.SETTLEMENT_ANALYST, roles.AUDITOR]
SHOWN = [roles.CSR, roles.PROGRAM_ADMIN]


@pytest.mark.parametrize("role", MASKED + SHOWN)
def test_customers_api_masks_contact_without_the_capability(customer, role):
    api = APIClient()
    api.force_authenticate(staff_user(role))
    listed = api.get("/api/v1/customers/")
    detail = api.get(f"/api/v1/customers/{customer.pk}/")
    assert listed.status_code == detail.status_code == 200
    (row,) = listed.json()["results"]
    for body in (row, detail.json()):
        if role in MASKED:
            assert (body["email"], body["phone"]) == ("p********@example.com", "***-**42")
        else:
            assert (body["email"], body["phone"]) == (EMAIL, PHONE)
    raw = listed.content.decode() + detail.content.decode()
    assert (EMAIL in raw) is (role in SHOWN) and (PHONE in raw) is (role in SHOWN)


@pytest.mark.parametrize("role", MASKED + SHOWN)
def test_admin_customer_pages_mask_contact_without_the_capability(client, customer, role):
    client.force_login(staff_user(role))
    pages = {"list": client.get("/admin/enrollments/customer/"),
             "change": client.get(f"/admin/enrollments/customer/{customer.pk}/change/"),
             "history": client.get(f"/admin/enrollments/customer/{customer.pk}/history/")}
    for name, response in pages.items():
        assert response.status_code == 200, name
    for name in ("list", "change"):
        html = pages[name].content.decode()
        assert (EMAIL in html) is (role in SHOWN), name
        if role in MASKED:
            assert "p********@example.com" in html and PHONE not in html, name
    change = pages["change"].content.decode()
    assert (PHONE in change) is (role in SHOWN)
    if role in MASKED:
        assert 'name="email"' not in change and 'name="phone"' not in change
    # Searching by e-mail would reveal it: without the capability the search ignores contact fields.
    found = client.get("/admin/enrollments/customer/", {"q": EMAIL}).content.decode()
    assert ("Jones" in found) is (role in SHOWN)


def test_customer_history_masks_contact_in_the_audit_trail(client, now):
    from enrollments.services import customer_upsert
    from tests.actors import TEST_ACTOR

    customer, _ = customer_upsert(cis_person_id="PER-77", values={"last_name": "Jones", "email": EMAIL,
                                                                 "phone": PHONE}, now=now, actor=TEST_ACTOR)
    client.force_login(staff_user(roles.AUDITOR))
    html = client.get(f"/admin/enrollments/customer/{customer.pk}/history/").content.decode()
    assert "customer.created" in html or "Jones" in html
    assert EMAIL not in html and PHONE not in html
    client.force_login(staff_user(roles.PROGRAM_ADMIN))
    assert EMAIL in client.get(f"/admin/enrollments/customer/{customer.pk}/history/").content.decode()
