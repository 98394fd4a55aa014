"""Contact details cannot be found out by searching or filtering for them (issue 13: personal data by capability):
a user without ``view_personal_data`` (settlement analyst, auditor) who searches the customers' API by an e-mail
address, or filters the admin's customer list by one in the URL, learns nothing (an answer that lists the
customer only when the guess is right reveals the address one character at a time)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cpm.base import roles
from tests.factories.enrollments import AccountFactory, CustomerFactory, staff_user

pytestmark = pytest.mark.django_db

EMAIL, PHONE = "pat.jones@example.com", "555-0142"
MASKED = [roles.SETTLEMENT_ANALYST, roles.AUDITOR]
SHOWN = [roles.CSR, roles.PROGRAM_ADMIN]


@pytest.fixture
def customer(db):
    customer = CustomerFactory(first_name="Pat", last_name="Jones", email=EMAIL, phone=PHONE)
    AccountFactory(customer=customer)
    CustomerFactory(first_name="Lee", last_name="Other", email="lee@other.org", phone="555-0199")
    return customer


@pytest.mark.parametrize("role", MASKED + SHOWN)
def test_api_search_by_email_only_with_the_capability(customer, role):
    api = APIClient()
    api.force_authenticate(staff_user(role))
    response = api.get("/api/v1/customers/", {"search": "pat.jones@"})
    assert response.status_code == 200
    names = [row["last_name"] for row in response.json()["results"]]
    assert names == (["Jones"] if role in SHOWN else [])
    # A name is still searched for everybody.
    assert [r["last_name"] for r in api.get("/api/v1/customers/", {"search": "Jones"}).json()["results"]] == ["Jones"]


@pytest.mark.parametrize("role", MASKED + SHOWN)
@pytest.mark.parametrize("lookup", ["email__startswith", "email", "phone__endswith", "email__regex"])
def test_admin_list_filtered_by_contact_in_the_url_only_with_the_capability(client, customer, role, lookup):
    client.force_login(staff_user(role))
    value = {"email__startswith": "pat.j", "email": EMAIL, "phone__endswith": "0142", "email__regex": "^pat"}[lookup]
    response = client.get("/admin/enrollments/customer/", {lookup: value})
    html = response.content.decode()
    if role in SHOWN:
        assert response.status_code == 200 and "Jones" in html and "Other" not in html
    else:  # refused as Django refuses any disallowed lookup, never the filtered list
        assert response.status_code == 400 and "Jones" not in html


@pytest.mark.parametrize("role", [*MASKED, roles.PROGRAM_ADMIN])
def test_audit_trail_list_filtered_by_contact_in_the_url_only_with_the_capability(client, now, role):
    from enrollments.services import customer_upsert
    from tests.actors import TEST_ACTOR

    for person, email in (("PER-1", EMAIL), ("PER-2", "lee@other.org")):
        customer_upsert(cis_person_id=person, values={"last_name": person, "email": email}, now=now,
                        actor=TEST_ACTOR)
    user = staff_user(role)
    if role == roles.SETTLEMENT_ANALYST:  # the auditor and the program administrator read the trail by their role
        from django.contrib.auth.models import Permission

        user.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    client.force_login(user)
    response = client.get("/admin/cpm/auditentry/", {"changes__email__startswith": "pat.j"})
    html = response.content.decode()
    if role in SHOWN:
        assert response.status_code == 200 and "PER-1" in html and "PER-2" not in html
    else:
        assert response.status_code == 400 and "PER-1" not in html


@pytest.mark.parametrize("role", MASKED + SHOWN)
def test_message_list_filtered_by_recipient_in_the_url_only_with_the_capability(client, customer, role, now):
    from cpm.notifications.models import Message
    from programs.models import Program
    from tests.factories.programs import ProgramFactory

    program = Program.objects.first() or ProgramFactory()
    for key, recipient in (("k-1", EMAIL), ("k-2", "lee@other.org")):
        Message.objects.create(key=key, kind="event_notice", channel="email", customer=customer, program=program,
                               recipient=recipient, subject=f"subject {key}", subject_ref="cs:1", due_at=now,
                               created_at=now, updated_at=now)
    client.force_login(staff_user(role))
    response = client.get("/admin/notifications/message/", {"recipient__startswith": "pat.j"})
    html = response.content.decode()
    ids = {m.key: m.pk for m in Message.objects.all()}
    first, second = (f"/admin/notifications/message/{ids[k]}/change/" for k in ("k-1", "k-2"))
    if role in SHOWN:
        assert response.status_code == 200 and first in html and second not in html
    else:
        assert response.status_code == 400 and first not in html
