"""An aggregator's webhook secret is a credential, never shown (issue 13: a read-only role must not be able to
touch grid operations).

cpm signs every dispatch message to an aggregator's webhook with the aggregator's secret (``X-CPM-Signature``,
HMAC-SHA256); whoever knows it can send the aggregator's cloud a forged, correctly signed event that it will carry
out on customers' devices. The aggregator's admin page printed the secret to every role that may view aggregators
(CSR, settlement analyst, auditor), and the audit trail stored it in plain text (the aggregator's History page and
the audit trail list showed it). Now the admin shows whether a secret is set, the program administrator types a
new one into a password box (left empty: unchanged), and the trail records "(set)" / "(changed)"."""

import pytest

from cpm.base import roles
from cpm.models import AuditEntry
from devices import services
from devices.models import Aggregator
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import staff_user

pytestmark = pytest.mark.django_db
SECRET = "whsec-9f3c2b7e41d0a6"


@pytest.fixture
def aggregator(now):
    agg, _ = services.aggregator_upsert(code="tesla", values={"name": "Tesla", "webhook_url": "https://t.example/h",
                                                              "webhook_secret": SECRET}, now=now, actor=TEST_ACTOR)
    services.aggregator_upsert(code="tesla", values={"name": "Tesla", "webhook_secret": SECRET + "-2"}, now=now,
                               actor=TEST_ACTOR)
    return agg


def test_the_audit_trail_never_holds_the_secret(aggregator):
    entries = AuditEntry.objects.filter(object_type="devices.aggregator", object_id=str(aggregator.pk))
    assert entries.count() == 2
    assert all(SECRET not in str(e.changes) for e in entries)
    assert sorted(str(e.changes.get("webhook_secret")) for e in entries) == ["(set)", "['(set)', '(changed)']"]


@pytest.mark.parametrize("role", [roles.CSR, roles.SETTLEMENT_ANALYST, roles.AUDITOR, roles.PROGRAM_ADMIN])
def test_no_admin_page_shows_the_secret(client, aggregator, role):
    client.force_login(staff_user(role))
    base = f"/admin/devices/aggregator/{aggregator.pk}"
    pages = [f"{base}/change/", f"{base}/history/", "/admin/devices/aggregator/"]
    if role in (roles.AUDITOR, roles.PROGRAM_ADMIN):
        entry = AuditEntry.objects.filter(object_type="devices.aggregator").first()
        pages += ["/admin/cpm/auditentry/", f"/admin/cpm/auditentry/{entry.pk}/change/"]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert SECRET not in response.content.decode(), page


def test_the_program_administrator_replaces_the_secret_without_seeing_it(client, aggregator):
    client.force_login(staff_user(roles.PROGRAM_ADMIN))
    url = f"/admin/devices/aggregator/{aggregator.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="webhook_secret"' in page and 'type="password"' in page
    form = {"name": "Tesla Energy", "contact_name": "", "contact_email": "", "api_user": "",
            "webhook_url": "https://t.example/h", "webhook_secret": ""}
    assert client.post(url, form).status_code == 302
    agg = Aggregator.objects.get(pk=aggregator.pk)
    assert (agg.name, agg.webhook_secret) == ("Tesla Energy", SECRET + "-2")  # left empty: unchanged
    assert client.post(url, {**form, "webhook_secret": "new-secret-123"}).status_code == 302
    assert Aggregator.objects.get(pk=aggregator.pk).webhook_secret == "new-secret-123"


def test_a_viewer_reads_whether_a_secret_is_set_once(client, aggregator):
    client.force_login(staff_user(roles.AUDITOR))
    page = client.get(f"/admin/devices/aggregator/{aggregator.pk}/change/").content.decode()
    assert page.count("set (not shown)") == 1 and 'name="webhook_secret"' not in page
