"""A user in the Aggregator role who is not (or no longer) an aggregator's API client sees and changes nothing
(issue 13: an aggregator user is scoped to its own devices, enrollments, participations and events).

The scope was read from ``Aggregator.api_user`` alone, and a user linked to no aggregator was treated as utility
staff: the old API user of an aggregator whose client was replaced (the role group stays), or an aggregator's user
created before the link was set, listed every aggregator's devices, enrollments and events and could change any
device (a competitor's battery set to 9 kW, retired) and register devices for any aggregator. Such a user is now
scoped to no aggregator: empty lists, 404 for a device, 403 for a write naming the missing link."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from cpm.base import roles
from cpm.base.errors import PermissionDenied
from cpm.models import AuditEntry
from devices import services
from devices.models import Device
from tests.factories.devices import AggregatorFactory, DeviceFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 5, 15, 16, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(django_user_model):
    old = django_user_model.objects.create_user("tesla-api-old", password="x" * 12)
    old.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    new = django_user_model.objects.create_user("tesla-api", password="x" * 12)
    new.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    tesla = AggregatorFactory(code="tesla", api_user=new)  # the client was replaced: "tesla-api-old" is unlinked
    ecobee = AggregatorFactory(code="ecobee")
    device = DeviceFactory(aggregator=ecobee, aggregator_device_id="e-1", capacity_kw=Decimal("1.500"))
    return {"old": django_user_model.objects.get(pk=old.pk), "tesla": tesla, "ecobee": ecobee, "device": device}


def test_an_unlinked_aggregator_user_sees_no_device_enrollment_or_event(world):
    api = APIClient()
    api.force_authenticate(world["old"])
    for url in ("/api/v1/devices/", "/api/v1/enrollments/", "/api/v1/events/", "/api/v1/participations/",
                "/api/v1/aggregators/"):
        response = api.get(url)
        assert response.status_code == 200, url
        assert response.json()["results"] == [], url
    assert api.get(f"/api/v1/devices/{world['device'].pk}/").status_code == 404


def test_an_unlinked_aggregator_user_changes_and_registers_nothing(world):
    api = APIClient()
    api.force_authenticate(world["old"])
    before = (sorted(Device.objects.values_list("pk", "capacity_kw", "aggregator_id")), AuditEntry.objects.count())
    response = api.patch(f"/api/v1/devices/{world['device'].pk}/", {"capacity_kw": "9"}, format="json")
    assert response.status_code == 404
    response = api.post("/api/v1/devices/", {"aggregator": "ecobee", "aggregator_device_id": "x-9",
                                             "device_type": "battery", "capacity_kw": "5"}, format="json")
    assert response.status_code == 403
    assert "not the API client of an aggregator" in response.json()["detail"]
    with pytest.raises(PermissionDenied):
        services.device_update(device=world["device"], data={"capacity_kw": "9"}, now=NOW, actor=world["old"])
    assert (sorted(Device.objects.values_list("pk", "capacity_kw", "aggregator_id")),
            AuditEntry.objects.count()) == before


def test_an_unlinked_aggregator_user_is_no_openadr_client_and_reports_no_outcome(world):
    from cpm.openadr3.scopes import client_kind, scopes_for

    assert client_kind(world["old"]) is None and scopes_for(world["old"]) == []
    api = APIClient()
    api.force_authenticate(world["old"])
    response = api.post("/api/v1/aggregator/outcomes/", {"outcomes": []}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "aggregator_unlinked"
    linked = APIClient()
    linked.force_authenticate(world["tesla"].api_user)
    assert [d["aggregator"] for d in linked.get("/api/v1/devices/").json()["results"]] == []
    assert [a["code"] for a in linked.get("/api/v1/aggregators/").json()["results"]] == ["tesla"]
