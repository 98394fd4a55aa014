import pytest
from django.contrib.auth.models import Group

from cpm.base import roles

pytestmark = pytest.mark.django_db


def test_csp_and_security_headers_on_pages(client, django_user_model):
    user = django_user_model.objects.create_user("csr1", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    response = client.get("/csr/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_login_throttled_after_five_failures(client, django_user_model, settings, login_url):
    settings.AXES_ENABLED = True
    django_user_model.objects.create_user("victim", password="right-password-123", is_staff=True)
    for _ in range(5):
        response = client.post(login_url, {"username": "victim", "password": "wrong"})
        assert response.status_code in (200, 429)
    locked = client.post(login_url, {"username": "victim", "password": "right-password-123"})
    assert locked.status_code == 429


def test_login_form_requires_csrf(django_user_model):
    from django.test import Client

    django_user_model.objects.create_user("someone", password="right-password-123")
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/accounts/login/", {"username": "someone", "password": "right-password-123"})
    assert response.status_code == 403


def test_roles_exist_with_least_privilege():
    perms = {g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.select_related("content_type")}
             for g in Group.objects.prefetch_related("permissions")}
    assert set(roles.ROLES) <= set(perms)
    assert "cpm.use_csr_page" in perms[roles.CSR]
    assert "cpm.approve_settlements" not in perms[roles.CSR]
    assert "cpm.export_credits" not in perms[roles.CSR]
    assert "cpm.approve_settlements" in perms[roles.SETTLEMENT_ANALYST]
    assert all(p.split(".")[1].startswith("view_") for p in perms[roles.AUDITOR])


def test_api_writes_are_rate_limited_reads_are_not(admin_api, monkeypatch):
    from django.core.cache import cache

    from cpm.base.api import WriteThrottle

    cache.clear()
    monkeypatch.setattr(WriteThrottle, "THROTTLE_RATES", {"writes": "2/minute"})
    statuses = [admin_api.post("/api/v1/programs/", {}, format="json").status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    assert all(admin_api.get("/api/v1/programs/").status_code == 200 for _ in range(4))
    cache.clear()


def test_no_personal_data_in_logs(client, django_user_model, caplog):
    """A CSR viewing a customer logs nothing with the customer's name, e-mail or phone."""
    import logging

    from tests.factories.enrollments import CustomerFactory

    customer = CustomerFactory(first_name="Zelda", last_name="Quarrington", email="zq@example.com", phone="555-0199")
    user = django_user_model.objects.create_user("csr-logs", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    with caplog.at_level(logging.DEBUG):
        assert client.get(f"/csr/customers/{customer.pk}/").status_code == 200
        client.get("/csr/", {"q": "Quarrington"})
    text = caplog.text
    assert "Quarrington" not in text and "zq@example.com" not in text and "555-0199" not in text
