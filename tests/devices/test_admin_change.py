"""The device change page saves through ``device_update`` (QA guard): the form had already put the new values on
the instance the admin hands to the service, which compared the device with itself, found nothing changed, saved
nothing and audited nothing, while the admin said "changed successfully"."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.forms.models import model_to_dict

from cpm.models import AuditEntry
from devices.models import Device
from tests.factories.devices import DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def form_data(device: Device, **changes) -> dict:
    data = {k: ("" if v is None else v) for k, v in model_to_dict(device).items()}
    data.update({"installations-TOTAL_FORMS": "0", "installations-INITIAL_FORMS": "0", **changes})
    return data


def test_changing_a_device_in_the_admin_saves_and_audits_it(client, admin_user):
    device = DeviceFactory(capacity_kw=Decimal("3.000"), firmware_version="1.0")
    client.force_login(admin_user)
    r = client.post(f"/admin/devices/device/{device.pk}/change/",
                    form_data(device, capacity_kw="4.5", firmware_version="2.0"))
    assert r.status_code == 302, r.content.decode()[:3000]
    device.refresh_from_db()
    assert (device.capacity_kw, device.firmware_version) == (Decimal("4.500"), "2.0")
    entry = AuditEntry.objects.get(object_type="devices.device", object_id=str(device.pk), action="update")
    assert entry.changes["capacity_kw"] == ["3.000", "4.5"]
    assert entry.changes["firmware_version"] == ["1.0", "2.0"]
