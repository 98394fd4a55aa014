"""Devices API: registration (utility-owned refused), actions, filters."""

from __future__ import annotations

import pytest

from devices.models import Device
from tests.factories.devices import AggregatorFactory, DeviceFactory, ServicePointFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/devices/"


def test_register_install_status_heartbeat(admin_api):
    AggregatorFactory(code="tesla")
    r = admin_api.post(URL, {"aggregator": "tesla", "aggregator_device_id": "pw-1", "device_type": "battery",
                             "capacity_kw": "5.000", "usable_energy_kwh": "13.500"}, format="json")
    assert r.status_code == 201, r.json()
    device = r.json()
    assert (device["status"], device["capacity_kw"], device["installation"]) == ("registered", "5.000", None)
    sp = ServicePointFactory()
    r = admin_api.post(f"{URL}{device['id']}/install/", {"service_point": sp.service_point_id,
                                                        "installed_on": "2026-05-01"}, format="json")
    assert r.status_code == 200 and r.json()["installation"]["service_point"] == sp.service_point_id
    r = admin_api.post(f"{URL}{device['id']}/set-status/", {"status": "active"}, format="json")
    assert r.json()["status"] == "active"
    assert admin_api.post(f"{URL}{device['id']}/set-status/", {"status": "registered"},
                          format="json").status_code == 409
    r = admin_api.post(f"{URL}{device['id']}/heartbeat/", {"seen_at": "2020-01-01T00:00:00Z"}, format="json")
    assert r.json()["last_seen_at"] == "2020-01-01T00:00:00Z"
    r = admin_api.patch(f"{URL}{device['id']}/", {"firmware_version": "24.1"}, format="json")
    assert r.status_code == 200 and r.json()["firmware_version"] == "24.1"
    r = admin_api.post(f"{URL}{device['id']}/remove/", {"removed_on": "2026-06-01"}, format="json")
    assert r.status_code == 200 and r.json()["installation"] is None


def test_utility_owned_refused_with_clear_error(admin_api):
    AggregatorFactory(code="tesla")
    r = admin_api.post(URL, {"aggregator": "tesla", "aggregator_device_id": "pw-1", "device_type": "battery",
                             "capacity_kw": "5", "ownership": "utility_owned"}, format="json")
    assert r.status_code == 400
    assert r.json()["code"] == "utility_owned_device"
    assert "customer-owned" in r.json()["ownership"][0]
    assert not Device.objects.exists()


def test_duplicate_is_409_and_bad_input_is_400(admin_api):
    agg = AggregatorFactory(code="tesla")
    DeviceFactory(aggregator=agg, aggregator_device_id="pw-1")
    r = admin_api.post(URL, {"aggregator": "tesla", "aggregator_device_id": "pw-1", "device_type": "battery",
                             "capacity_kw": "5"}, format="json")
    assert r.status_code == 409
    r = admin_api.post(URL, {"aggregator": "nope", "device_type": "toaster", "capacity_kw": "-3"}, format="json")
    assert r.status_code == 400
    assert {"aggregator", "device_type", "capacity_kw", "aggregator_device_id"} <= set(r.json())


def test_heartbeat_without_utc_offset_is_refused_naming_the_field(admin_api):
    """``seen_at`` is an instant: a time without an offset is not silently read as UTC (QA guard)."""
    device = DeviceFactory(last_seen_at=None)
    r = admin_api.post(f"{URL}{device.pk}/heartbeat/", {"seen_at": "2026-07-15T09:00:00"}, format="json")
    assert r.status_code == 400 and "offset" in " ".join(r.json()["seen_at"])
    device.refresh_from_db()
    assert device.last_seen_at is None
