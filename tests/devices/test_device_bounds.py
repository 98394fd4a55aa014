"""Device capacity and energy bounds in ``validate_device_fields``: every door (service, API, admin) refuses 1e308,
NaN, infinities, negatives and values beyond CPM_MAX_DEVICE_KW / CPM_MAX_DEVICE_KWH, naming the field."""

from __future__ import annotations

import pytest

from cpm.base.errors import DomainValidationError
from devices import services
from devices.models import Device
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory, DeviceFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"capacity_kw": "1e308"}, "capacity_kw",
     "capacity_kw 1e308 is above the plausible maximum of 1,000 kW (CPM_MAX_DEVICE_KW)."),
    ({"capacity_kw": 1e308}, "capacity_kw",
     "capacity_kw 1e+308 is above the plausible maximum of 1,000 kW (CPM_MAX_DEVICE_KW)."),
    ({"capacity_kw": "NaN"}, "capacity_kw", "capacity_kw must be a finite number, got 'NaN'."),
    ({"capacity_kw": float("inf")}, "capacity_kw", "capacity_kw must be a finite number, got 'inf'."),
    ({"capacity_kw": "-0.5"}, "capacity_kw", "capacity_kw must be zero or more, got '-0.5'."),
    ({"capacity_kw": "1000.001"}, "capacity_kw",
     "capacity_kw 1000.001 is above the plausible maximum of 1,000 kW (CPM_MAX_DEVICE_KW)."),
    ({"capacity_kw": "5", "usable_energy_kwh": "10000.5"}, "usable_energy_kwh",
     "usable_energy_kwh 10000.5 is above the plausible maximum of 10,000 kWh (CPM_MAX_DEVICE_KWH)."),
    ({"capacity_kw": "5", "model": "M" * 101}, "model", "model has 101 characters; at most 100 allowed."),
    ({"capacity_kw": "5", "serial_number": "A\x00B"}, "serial_number", "serial_number contains a NUL character."),
])
def test_validate_device_fields_refuses_implausible_values(data, field, message):
    with pytest.raises(DomainValidationError) as exc:
        services.validate_device_fields({"device_type": "battery", **data})
    assert exc.value.errors == {field: [message]}


def test_bounds_are_settings_and_never_exceed_the_column(settings):
    settings.CPM_MAX_DEVICE_KW = 5
    with pytest.raises(DomainValidationError) as exc:
        services.validate_device_fields({"device_type": "battery", "capacity_kw": "5.5"})
    assert exc.value.errors == {"capacity_kw": [
        "capacity_kw 5.5 is above the plausible maximum of 5 kW (CPM_MAX_DEVICE_KW)."]}
    settings.CPM_MAX_DEVICE_KW = 10**9  # a looser bound still stops below numeric(9, 3)'s 1,000,000
    with pytest.raises(DomainValidationError) as exc:
        services.validate_device_fields({"device_type": "battery", "capacity_kw": "1000000"})
    assert exc.value.errors == {"capacity_kw": [
        "capacity_kw 1000000 is above the plausible maximum of 999,999.999 kW (CPM_MAX_DEVICE_KW)."]}
    assert services.validate_device_fields({"device_type": "battery", "capacity_kw": "999999.999"})[
        "capacity_kw"] == services.Decimal("999999.999")


def test_register_and_update_refuse_overflow(now):
    agg = AggregatorFactory()
    with pytest.raises(DomainValidationError) as exc:
        services.device_register(aggregator=agg, aggregator_device_id="pw-1", device_type="battery",
                                 capacity_kw="1e308", now=now, actor=TEST_ACTOR)
    assert list(exc.value.errors) == ["capacity_kw"]
    with pytest.raises(DomainValidationError) as exc:
        services.device_register(aggregator=agg, aggregator_device_id="x" * 129, device_type="battery",
                                 capacity_kw="5", now=now, actor=TEST_ACTOR)
    assert exc.value.errors == {"aggregator_device_id": [
        "aggregator_device_id has 129 characters; at most 128 allowed."]}
    device = DeviceFactory(aggregator=agg)
    with pytest.raises(DomainValidationError) as exc:
        services.device_update(device=device, data={"capacity_kw": "1e308"}, now=now, actor=TEST_ACTOR)
    assert list(exc.value.errors) == ["capacity_kw"]


def test_api_create_with_capacity_1e308_is_400_naming_the_field(admin_api):
    AggregatorFactory(code="tesla")
    for value in ("1e308", 1e308, "NaN", "-Infinity"):
        r = admin_api.post("/api/v1/devices/", {"aggregator": "tesla", "aggregator_device_id": "pw-1",
                                                "device_type": "battery", "capacity_kw": value}, format="json")
        assert r.status_code == 400, (value, r.content)
        assert "capacity_kw" in r.json()
    assert not Device.objects.exists()


def test_admin_device_form_refuses_overflow_and_implausible_capacity(client, admin_user):
    agg = AggregatorFactory(code="tesla")
    client.force_login(admin_user)

    def add(capacity):
        return client.post("/admin/devices/device/add/", {
            "aggregator": agg.pk, "aggregator_device_id": "pw-1", "device_type": "battery", "capacity_kw": capacity,
            "ownership": "customer_owned", "installations-TOTAL_FORMS": "0",
            "installations-INITIAL_FORMS": "0"}, follow=True)

    r = add("1e308")  # the form's own digit limit: a form error on the page
    assert r.status_code == 200
    assert "Ensure that there are no more than 9 digits in total." in r.content.decode()
    r = add("5000")  # fits the column, refused by the service's plausibility bound: shown on the same page
    assert r.status_code == 200
    assert ("apacity_kw: capacity_kw 5000 is above the plausible maximum of 1,000 kW (CPM_MAX_DEVICE_KW)."
            in r.content.decode())
    assert not Device.objects.exists()

