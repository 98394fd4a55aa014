"""A program administrator installs a device at a customer's service point from the admin (issue 17.4: every
workflow finishable in the UI). Before, the device page showed its installations read-only and no page offered
``device_install`` / ``device_remove``: a device registered in the admin could reach a service point (and so the
CSR page's enroll form) only through a CSV import."""

from __future__ import annotations

import datetime as dt

import pytest

from cpm.base import roles
from cpm.models import AuditEntry
from devices.choices import DeviceStatus
from devices.models import Device, DeviceInstallation
from tests.factories.devices import AggregatorFactory, DeviceFactory, DeviceInstallationFactory, ServicePointFactory
from tests.factories.enrollments import ServiceAgreementFactory, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def pa_client(client):
    client.force_login(staff_user(roles.PROGRAM_ADMIN))
    return client


def _add(client, **extra):
    aggregator = AggregatorFactory(code="acme-cloud")
    data = {"device_type": "thermostat", "manufacturer": "Acme", "model": "T-9", "serial_number": "SN-NEW-1",
            "aggregator": aggregator.pk, "aggregator_device_id": "acme-77", "ownership": "customer_owned",
            "capacity_kw": "1.5", "usable_energy_kwh": "", "firmware_version": "",
            "installations-TOTAL_FORMS": "0", "installations-INITIAL_FORMS": "0", **extra}
    return client.post("/admin/devices/device/add/", data)


def test_a_device_added_in_the_admin_is_installed_at_the_service_point_typed(pa_client):
    agreement = ServiceAgreementFactory(service_point=ServicePointFactory(service_point_id="SP-HOME-1"))
    page = pa_client.get("/admin/devices/device/add/").content.decode()
    assert "Install at service point" in page and "Installed on" in page

    r = _add(pa_client, install_service_point="SP-HOME-1", installed_on="2026-07-01")
    assert r.status_code == 302, __import__("re").findall(r"errorlist.*?</ul>", r.content.decode(), __import__("re").S)
    device = Device.objects.get(serial_number="SN-NEW-1")
    installation = DeviceInstallation.objects.get(device=device)
    assert (installation.service_point_id, installation.installed_on, installation.removed_on) == (
        agreement.service_point_id, dt.date(2026, 7, 1), None)
    assert AuditEntry.objects.filter(object_type="devices.deviceinstallation", object_id=str(installation.pk),
                                     action="create").exists()
    # The CSR page now lists the device at the customer's service point (so it can be enrolled).
    csr = pa_client.get(f"/csr/customers/{agreement.account.customer_id}/").content.decode()
    assert "SN-NEW-1" in csr


def test_an_unknown_service_point_is_refused_on_its_field_and_nothing_is_saved(pa_client):
    r = _add(pa_client, install_service_point="SP-NOPE", installed_on="2026-07-01")
    assert r.status_code == 200
    errors = r.context["adminform"].form.errors
    assert errors["install_service_point"] == ["No service point has the id 'SP-NOPE'."]
    assert not Device.objects.filter(serial_number="SN-NEW-1").exists()
    # Without a date the device is installed today (the display zone's date).
    ServicePointFactory(service_point_id="SP-HOME-2")
    r = _add(pa_client, install_service_point="SP-HOME-2", installed_on="")
    assert r.status_code == 302, __import__("re").findall(r"errorlist.*?</ul>", r.content.decode(), __import__("re").S)
    assert DeviceInstallation.objects.get(device__serial_number="SN-NEW-1").installed_on is not None


def test_the_change_page_moves_and_removes_a_device(pa_client):
    old = ServicePointFactory(service_point_id="SP-OLD")
    ServicePointFactory(service_point_id="SP-NEW")
    device = DeviceFactory(status=DeviceStatus.ACTIVE)
    DeviceInstallationFactory(device=device, service_point=old, installed_on=dt.date(2025, 1, 1))
    base = {"device_type": device.device_type, "manufacturer": device.manufacturer, "model": device.model,
            "serial_number": device.serial_number, "ownership": device.ownership, "capacity_kw": "1.5",
            "usable_energy_kwh": "", "firmware_version": "",
            "installations-TOTAL_FORMS": "1", "installations-INITIAL_FORMS": "1"}
    r = pa_client.post(f"/admin/devices/device/{device.pk}/change/",
                       {**base, "install_service_point": "SP-NEW", "installed_on": "2026-07-01"})
    assert r.status_code == 302, __import__("re").findall(r"errorlist.*?</ul>", r.content.decode(), __import__("re").S)
    rows = list(DeviceInstallation.objects.filter(device=device).order_by("installed_on")
                .values_list("service_point__service_point_id", "installed_on", "removed_on"))
    assert rows == [("SP-OLD", dt.date(2025, 1, 1), dt.date(2026, 7, 1)), ("SP-NEW", dt.date(2026, 7, 1), None)]

    r = pa_client.post(f"/admin/devices/device/{device.pk}/change/",
                       {**base, "installations-TOTAL_FORMS": "2", "installations-INITIAL_FORMS": "2",
                        "removed_on": "2026-08-01"})
    assert r.status_code == 302, __import__("re").findall(r"errorlist.*?</ul>", r.content.decode(), __import__("re").S)
    assert DeviceInstallation.objects.get(device=device, service_point__service_point_id="SP-NEW").removed_on == \
        dt.date(2026, 8, 1)


def test_a_removal_before_the_installation_is_refused_in_words(pa_client):
    device = DeviceFactory()
    DeviceInstallationFactory(device=device, service_point=ServicePointFactory(service_point_id="SP-A"),
                              installed_on=dt.date(2026, 7, 1))
    base = {"device_type": device.device_type, "manufacturer": device.manufacturer, "model": device.model,
            "serial_number": device.serial_number, "ownership": device.ownership, "capacity_kw": "1.5",
            "usable_energy_kwh": "", "firmware_version": "",
            "installations-TOTAL_FORMS": "1", "installations-INITIAL_FORMS": "1"}
    r = pa_client.post(f"/admin/devices/device/{device.pk}/change/", {**base, "removed_on": "2026-06-01"},
                       follow=True)
    text = r.content.decode()
    assert "2026-06-01 is before the installation date 2026-07-01" in text
    assert DeviceInstallation.objects.get(device=device).removed_on is None
