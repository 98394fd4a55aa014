"""Device registration, status transitions, heartbeats and installation history."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.errors import ConflictError, DomainValidationError, TransitionNotAllowed
from cpm.models import AuditEntry
from devices import services as svc
from devices.choices import DeviceStatus
from devices.models import Device, DeviceInstallation
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory, DeviceFactory, ServicePointFactory

pytestmark = pytest.mark.django_db


def register(**kw):
    args = {"aggregator": AggregatorFactory(code="ecobee"), "aggregator_device_id": "eco-1",
            "device_type": "battery", "capacity_kw": "5.0", "usable_energy_kwh": "13.5", "serial_number": "PW-1"}
    args.update(kw)
    return svc.device_register(**args, now=dt.datetime(2026, 5, 15, 16, tzinfo=dt.UTC), actor=TEST_ACTOR)


def test_register_device(now):
    device = register()
    assert (device.status, device.capacity_kw, device.usable_energy_kwh) == (DeviceStatus.REGISTERED, Decimal("5.0"),
                                                                             Decimal("13.5"))
    assert AuditEntry.objects.filter(object_type="devices.device", action="create").count() == 1


def test_utility_owned_device_refused(now):
    with pytest.raises(DomainValidationError) as exc:
        register(ownership="utility_owned")
    assert exc.value.code == "utility_owned_device"
    assert "customer-owned" in exc.value.errors["ownership"][0]
    assert not Device.objects.exists()


def test_duplicate_aggregator_device_id_is_conflict(now):
    first = register()
    with pytest.raises(ConflictError) as exc:
        register()
    assert exc.value.extra["device"] == first.pk
    # The same id at another aggregator is another device.
    register(aggregator=AggregatorFactory(code="tesla"))
    assert Device.objects.count() == 2


def test_bad_fields_all_reported(now):
    with pytest.raises(DomainValidationError) as exc:
        register(device_type="toaster", capacity_kw="-1")
    assert set(exc.value.errors) == {"device_type", "capacity_kw"}


def test_status_transitions(now):
    device = register()
    svc.device_set_status(device=device, status=DeviceStatus.ACTIVE, now=now, actor=TEST_ACTOR)
    svc.device_set_status(device=device, status=DeviceStatus.INACTIVE, now=now, reason="offline", actor=TEST_ACTOR)
    svc.device_set_status(device=device, status=DeviceStatus.RETIRED, now=now, actor=TEST_ACTOR)
    with pytest.raises(TransitionNotAllowed):
        svc.device_set_status(device=device, status=DeviceStatus.ACTIVE, now=now, actor=TEST_ACTOR)
    assert list(AuditEntry.objects.filter(action="status_change").order_by("id").values_list("to_status", flat=True)) \
        == ["active", "inactive", "retired"]


def test_heartbeat_only_moves_forward(now):
    device = DeviceFactory(last_seen_at=None)
    svc.device_heartbeat(device=device, seen_at=now - dt.timedelta(minutes=5), now=now, actor=TEST_ACTOR)
    svc.device_heartbeat(device=device, seen_at=now - dt.timedelta(hours=2), now=now, actor=TEST_ACTOR)
    assert device.last_seen_at == now - dt.timedelta(minutes=5)
    with pytest.raises(DomainValidationError):
        svc.device_heartbeat(device=device, seen_at=now + dt.timedelta(hours=1), now=now, actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError):
        svc.device_heartbeat(device=device, seen_at=dt.datetime(2026, 5, 15, 12), now=now, actor=TEST_ACTOR)


def test_install_move_and_remove_keep_history(now):
    device = DeviceFactory()
    a, b = ServicePointFactory(), ServicePointFactory()
    svc.device_install(device=device, service_point=a, installed_on=dt.date(2026, 1, 1), now=now, actor=TEST_ACTOR)
    # Installing where it already is changes nothing.
    svc.device_install(device=device, service_point=a, installed_on=dt.date(2026, 2, 1), now=now, actor=TEST_ACTOR)
    svc.device_install(device=device, service_point=b, installed_on=dt.date(2026, 3, 1), now=now, actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError):
        svc.device_install(device=device, service_point=a, installed_on=dt.date(2026, 2, 1), now=now, actor=TEST_ACTOR)
    svc.device_remove(device=device, removed_on=dt.date(2026, 4, 1), now=now, actor=TEST_ACTOR)
    history = list(DeviceInstallation.objects.filter(device=device).order_by("installed_on").values_list(
        "service_point_id", "installed_on", "removed_on"))
    assert history == [(a.pk, dt.date(2026, 1, 1), dt.date(2026, 3, 1)),
                       (b.pk, dt.date(2026, 3, 1), dt.date(2026, 4, 1))]
    with pytest.raises(DomainValidationError):
        svc.device_remove(device=device, removed_on=dt.date(2026, 5, 1), now=now, actor=TEST_ACTOR)


def test_retired_device_cannot_be_installed(now):
    device = DeviceFactory(status=DeviceStatus.RETIRED)
    with pytest.raises(DomainValidationError):
        svc.device_install(device=device, service_point=ServicePointFactory(), installed_on=dt.date(2026, 1, 1),
                           now=now, actor=TEST_ACTOR)


def test_update_audits_only_changes(now):
    device = DeviceFactory(firmware_version="1.0")
    svc.device_update(device=device, data={"firmware_version": "1.0"}, now=now, actor=TEST_ACTOR)
    assert not AuditEntry.objects.exists()
    svc.device_update(device=device, data={"firmware_version": "2.1"}, now=now, actor=TEST_ACTOR)
    assert AuditEntry.objects.get().changes == {"firmware_version": ["1.0", "2.1"]}
    with pytest.raises(DomainValidationError):
        svc.device_update(device=device, data={"ownership": "utility_owned"}, now=now, actor=TEST_ACTOR)
