"""An aggregator changes only its own devices, whichever door calls the device services (issue 13: permission checks
in services, not only in the API's querysets).

The API hides another aggregator's device (404), but ``device_update``, ``device_set_status``, ``device_install``,
``device_remove``, ``device_heartbeat`` and ``device_register`` themselves let an aggregator's user change or
register another aggregator's device: a capacity edited from 1.5 kW to 9 kW, a device retired, moved or uninstalled
by a competitor. Each now refuses (``PermissionDenied``, 403, code ``aggregator_foreign_device``) and nothing
changes; the aggregator's own devices and the utility's staff are unaffected.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.base.errors import PermissionDenied
from cpm.models import AuditEntry
from devices import services
from devices.choices import DeviceStatus
from devices.models import Device, DeviceInstallation
from tests.factories.devices import AggregatorFactory, DeviceFactory, ServicePointFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 5, 15, 16, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 5, 15)


def _user(django_user_model, name: str, role: str):
    user = django_user_model.objects.create_user(name, password="x" * 12)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def world(django_user_model):
    ecobee_user = _user(django_user_model, "ecobee-api", roles.AGGREGATOR)
    ecobee = AggregatorFactory(code="ecobee", api_user=ecobee_user)
    tesla = AggregatorFactory(code="tesla", api_user=_user(django_user_model, "tesla-api", roles.AGGREGATOR))
    theirs = DeviceFactory(aggregator=tesla, aggregator_device_id="pw-1", capacity_kw=Decimal("1.500"))
    mine = DeviceFactory(aggregator=ecobee, aggregator_device_id="e-1", capacity_kw=Decimal("1.500"))
    sp = ServicePointFactory()
    DeviceInstallation.objects.create(device=theirs, service_point=sp, installed_on=dt.date(2026, 1, 1))
    DeviceInstallation.objects.create(device=mine, service_point=sp, installed_on=dt.date(2026, 1, 1))
    return {"user": ecobee_user, "ecobee": ecobee, "tesla": tesla, "theirs": theirs, "mine": mine,
            "other_sp": ServicePointFactory()}


def _calls(w, device):
    return {
        "device.update": lambda actor: services.device_update(device=device, data={"capacity_kw": "9"}, now=NOW,
                                                              actor=actor),
        "device.set_status": lambda actor: services.device_set_status(device=device, status=DeviceStatus.RETIRED,
                                                                      now=NOW, actor=actor, reason="gone"),
        "device.install": lambda actor: services.device_install(device=device, service_point=w["other_sp"],
                                                                installed_on=TODAY, now=NOW, actor=actor),
        "device.remove": lambda actor: services.device_remove(device=device, removed_on=TODAY, now=NOW,
                                                              actor=actor),
        "device.heartbeat": lambda actor: services.device_heartbeat(device=device, seen_at=NOW, now=NOW,
                                                                    actor=actor),
    }


def _state():
    return (sorted(Device.objects.values_list("pk", "capacity_kw", "status", "last_seen_at")),
            sorted(DeviceInstallation.objects.values_list("pk", "device_id", "service_point_id", "removed_on")),
            AuditEntry.objects.count())


@pytest.mark.parametrize("use_case", ["device.update", "device.set_status", "device.install", "device.remove",
                                      "device.heartbeat"])
def test_an_aggregator_cannot_change_another_aggregators_device(world, use_case):
    before = _state()
    with pytest.raises(PermissionDenied) as refused:
        _calls(world, world["theirs"])[use_case](world["user"])
    assert refused.value.code == "aggregator_foreign_device"
    assert refused.value.status_code == 403
    assert "ecobee" in refused.value.message and "pw-1" not in refused.value.message
    assert _state() == before


def test_an_aggregator_cannot_register_a_device_for_another_aggregator(world):
    before = _state()
    with pytest.raises(PermissionDenied) as refused:
        services.device_register(aggregator=world["tesla"], aggregator_device_id="pw-2", device_type="battery",
                                 capacity_kw="5", now=NOW, actor=world["user"])
    assert refused.value.code == "aggregator_foreign_device"
    assert _state() == before


@pytest.mark.parametrize("use_case", ["device.update", "device.heartbeat", "device.install", "device.remove",
                                      "device.set_status"])
def test_an_aggregator_changes_its_own_device(world, use_case):
    _calls(world, world["mine"])[use_case](world["user"])
    mine = Device.objects.get(pk=world["mine"].pk)
    if use_case == "device.update":
        assert mine.capacity_kw == Decimal("9.000")
    elif use_case == "device.set_status":
        assert mine.status == DeviceStatus.RETIRED


def test_the_utility_changes_any_device(world, django_user_model):
    admin = _user(django_user_model, "pa", roles.PROGRAM_ADMIN)
    services.device_update(device=world["theirs"], data={"capacity_kw": "2"}, now=NOW, actor=admin)
    assert Device.objects.get(pk=world["theirs"].pk).capacity_kw == Decimal("2.000")
