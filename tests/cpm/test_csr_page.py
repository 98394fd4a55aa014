import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.models import AuditEntry
from tests.factories.devices import DeviceFactory, DeviceInstallationFactory, ServicePointFactory
from tests.factories.enrollments import AccountFactory, CustomerFactory, ServiceAgreementFactory

pytestmark = pytest.mark.django_db


def user_with_role(django_user_model, role, username="u"):
    user = django_user_model.objects.create_user(username, password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def customer_with_device():
    customer = CustomerFactory(first_name="Dana", last_name="Quimby", email="dana.quimby@example.com",
                               phone="555-0142")
    account = AccountFactory(customer=customer, account_number="ACC-777")
    sp = ServicePointFactory(service_point_id="SP-9001", meter_number="MTR-42",
                            premise__address_line1="100 Main Street")
    ServiceAgreementFactory(account=account, service_point=sp)
    device = DeviceFactory(serial_number="SER-123")
    DeviceInstallationFactory(device=device, service_point=sp)
    return customer


@pytest.mark.parametrize("query", ["Quimby", "Dana Quimby", "ACC-777", "SP-9001", "MTR-42", "SER-123", "100 Main"])
def test_search_finds_customer_by_every_key(client, django_user_model, customer_with_device, query):
    client.force_login(user_with_role(django_user_model, roles.CSR))
    response = client.get("/csr/", {"q": query})
    assert response.status_code == 200
    assert f"/csr/customers/{customer_with_device.pk}/" in response.content.decode()


def test_customer_page_shows_pii_to_csr_and_audits_the_view(client, django_user_model, customer_with_device):
    csr = user_with_role(django_user_model, roles.CSR)
    client.force_login(csr)
    body = client.get(f"/csr/customers/{customer_with_device.pk}/").content.decode()
    assert "dana.quimby@example.com" in body
    assert "SP-9001" in body and "SER-123" in body
    entry = AuditEntry.objects.get(action="view_personal_data")
    assert entry.actor == csr and entry.object_id == str(customer_with_device.pk)
    assert entry.changes == {"unmasked": True, "page": "csr_customer"}


def test_customer_page_masks_contact_without_pii_permission(client, django_user_model, customer_with_device):
    user = user_with_role(django_user_model, roles.AUDITOR)
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="use_csr_page"))
    client.force_login(user)
    body = client.get(f"/csr/customers/{customer_with_device.pk}/").content.decode()
    assert "dana.quimby@example.com" not in body
    assert "d**********@example.com" in body and "***-**42" in body


def test_user_without_csr_role_is_refused(client, django_user_model, customer_with_device):
    client.force_login(user_with_role(django_user_model, roles.SETTLEMENT_ANALYST))
    assert client.get("/csr/").status_code == 403
    assert client.get(f"/csr/customers/{customer_with_device.pk}/").status_code == 403


def test_anonymous_is_sent_to_login(client):
    response = client.get("/csr/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_eligibility_reasons_enroll_and_unenroll_through_services(client, django_user_model, customer_with_device):
    from enrollments.choices import EnrollmentStatus
    from enrollments.models import Enrollment
    from tests.factories.programs import ProgramFactory

    ok = ProgramFactory(code="tstat", name="Thermostat Rewards", eligible_rate_codes=["TOU-D"])
    ProgramFactory(code="cpp", name="Critical Peak Business", eligible_rate_codes=["TOU-GS-1"])
    csr = user_with_role(django_user_model, roles.CSR)
    client.force_login(csr)
    body = client.get(f"/csr/customers/{customer_with_device.pk}/").content.decode()
    assert "Thermostat Rewards" in body and "Critical Peak Business" in body
    assert "TOU-D" in body and "not eligible" in body.lower()  # the rate-code reason in plain words

    account = customer_with_device.accounts.get()
    sp = account.service_agreements.get().service_point
    device = sp.installations.get().device
    response = client.post(f"/csr/customers/{customer_with_device.pk}/enroll/",
                           {"account": account.pk, "program": ok.pk, "service_point": sp.pk, "devices": [device.pk]},
                           follow=True)
    assert "Enrolled in Thermostat Rewards (Active)." in response.content.decode()
    enrollment = Enrollment.objects.get(program=ok)
    assert enrollment.status == EnrollmentStatus.ACTIVE and enrollment.source == "csr"
    assert list(enrollment.subscriptions.values_list("device_id", flat=True)) == [device.pk]

    again = client.post(f"/csr/customers/{customer_with_device.pk}/enroll/",
                        {"account": account.pk, "program": ok.pk, "service_point": sp.pk, "devices": [device.pk]},
                        follow=True).content.decode()
    assert "Not enrolled in Thermostat Rewards" in again
    assert Enrollment.objects.filter(program=ok).count() == 1

    response = client.post(f"/csr/customers/{customer_with_device.pk}/enrollments/{enrollment.pk}/unenroll/",
                           {"reason_code": "customer_request", "confirmed": "yes"}, follow=True)
    assert "Unenrolled from Thermostat Rewards." in response.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.UNENROLLED and enrollment.reason_code == "customer_request"


def test_auditor_cannot_enroll(client, django_user_model, customer_with_device):
    from django.contrib.auth.models import Permission

    user = user_with_role(django_user_model, roles.AUDITOR)
    user.user_permissions.add(Permission.objects.get(codename="use_csr_page"))
    client.force_login(user)
    response = client.post(f"/csr/customers/{customer_with_device.pk}/enroll/", {})
    assert response.status_code == 403


def test_a_number_answer_with_an_underscore_is_refused_not_read_as_fifteen(client, django_user_model,
                                                                           customer_with_device):
    """The CSR's answer 1_5 to "How many thermostats?" was read as 15 (Python's digit grouping) and qualified."""
    from enrollments.models import Enrollment
    from programs.models import QualificationQuestion
    from tests.factories.programs import ProgramFactory

    program = ProgramFactory(code="tstat", name="Thermostat Rewards", eligible_rate_codes=["TOU-D"])
    QualificationQuestion.objects.create(program=program, code="units", text="How many thermostats?",
                                         answer_type="number", qualifying_answers={"min": 10, "max": 20})
    client.force_login(user_with_role(django_user_model, roles.CSR))
    account = customer_with_device.accounts.get()
    sp = account.service_agreements.get().service_point
    body = client.post(f"/csr/customers/{customer_with_device.pk}/enroll/",
                       {"account": account.pk, "program": program.pk, "service_point": sp.pk,
                        "devices": [sp.installations.get().device_id], "q_units": "1_5"}, follow=True).content.decode()
    assert "Not enrolled in Thermostat Rewards" in body and "must be a number, got &#x27;1_5&#x27;" in body
    assert not Enrollment.objects.exists()
