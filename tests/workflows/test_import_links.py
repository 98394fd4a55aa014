"""Issue 17.4: the CIS and device-list import pages are linked from the changelists they fill, for users who may
run the import; the others read which capability it needs."""

from html import unescape

import pytest

from cpm.base import roles

pytestmark = pytest.mark.django_db

CIS = ("/admin/enrollments/customer/", "/admin/enrollments/account/", "/admin/devices/premise/",
       "/admin/devices/servicepoint/")


@pytest.mark.parametrize("url", CIS)
def test_cis_import_button_for_customer_maintainers(role_client, url):
    html = role_client(roles.PROGRAM_ADMIN).get(url).content.decode()
    assert '<a href="/admin/enrollments/customer/import/" class="workflow-tool">Import a CIS extract</a>' in html
    assert "not offered to you" not in html


@pytest.mark.parametrize("url", CIS)
def test_cis_import_refused_in_words(role_client, url):
    response = role_client(roles.AUDITOR).get(url)
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "/admin/enrollments/customer/import/" not in html
    assert ("Import a CIS extract: not offered to you; it needs the capability 'Maintain customers, accounts, "
            "premises and service points (CIS)' (customers.import).") in html


def test_device_import_button(role_client):
    html = role_client(roles.PROGRAM_ADMIN).get("/admin/devices/device/").content.decode()
    assert '<a href="/admin/devices/device/import/" class="workflow-tool">Import an aggregator device list</a>' in html


def test_device_import_refused_in_words(role_client):
    html = unescape(role_client(roles.SETTLEMENT_ANALYST).get("/admin/devices/device/").content.decode())
    assert "/admin/devices/device/import/" not in html
    assert "Import an aggregator device list: not offered to you; it needs the capability 'Register, install" in html


def test_import_pages_open_for_the_role_and_refuse_others(role_client, client):
    role_client(roles.PROGRAM_ADMIN)
    assert client.get("/admin/enrollments/customer/import/").status_code == 200
    assert client.get("/admin/devices/device/import/").status_code == 200
    role_client(roles.AUDITOR)
    assert client.get("/admin/enrollments/customer/import/").status_code == 403
    assert client.get("/admin/devices/device/import/").status_code == 403
