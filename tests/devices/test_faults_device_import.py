"""Device list imports found by QA (issue 15): a capacity with more decimals than the column keeps (3) was stored
rounded and reported "updated" (with an audit entry) on every re-import of the same file."""

from __future__ import annotations

import pytest

from cpm.base.errors import DomainValidationError
from cpm.models import AuditEntry
from devices import services
from devices.imports import ImportFailed, import_devices
from devices.models import Device
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory

pytestmark = pytest.mark.django_db
HEAD = "aggregator_device_id,device_type,capacity_kw,usable_energy_kwh\n"


def test_more_decimals_than_kept_is_refused_naming_line_and_field(now):
    agg = AggregatorFactory(code="tesla")
    with pytest.raises(ImportFailed) as exc:
        import_devices(HEAD + "t-1,thermostat,1.5,\nb-1,battery,5.2345,13.5\nb-2,battery,5,13.50001\n",
                       aggregator=agg, now=now, actor=TEST_ACTOR)
    assert exc.value.report.error_lines() == [
        "line 3: capacity_kw: capacity_kw 5.2345 has more than 3 decimal places (kept to the watt).",
        "line 4: usable_energy_kwh: usable_energy_kwh 13.50001 has more than 3 decimal places (kept to the "
        "watt-hour)."]
    assert not Device.objects.exists()
    with pytest.raises(DomainValidationError) as exc:
        services.validate_device_fields({"device_type": "battery", "capacity_kw": "0.0001"})
    assert exc.value.errors == {"capacity_kw": ["capacity_kw 0.0001 has more than 3 decimal places (kept to the "
                                                "watt)."]}


def test_trailing_zeros_are_no_extra_decimals_and_a_reimport_changes_nothing(now):
    agg = AggregatorFactory(code="tesla")
    content = HEAD + "b-1,battery,5.2000,13.50000\n"
    assert import_devices(content, aggregator=agg, now=now, actor=TEST_ACTOR).counts == {
        "devices": {"new": 1, "updated": 0, "unchanged": 0}}
    entries = AuditEntry.objects.count()
    assert import_devices(content, aggregator=agg, now=now, actor=TEST_ACTOR).counts == {
        "devices": {"new": 0, "updated": 0, "unchanged": 1}}
    assert AuditEntry.objects.count() == entries
    device = Device.objects.get()
    assert (str(device.capacity_kw), str(device.usable_energy_kwh)) == ("5.200", "13.500")


def test_installed_on_without_a_service_point_is_refused_not_ignored(now):
    """A row giving ``installed_on`` but no ``service_point_id`` was imported with the date silently dropped (and an
    unreadable date there never checked): which installation it dates cannot be known, so the row is refused."""
    agg = AggregatorFactory(code="tesla")
    head = "aggregator_device_id,device_type,capacity_kw,service_point_id,installed_on\n"
    with pytest.raises(ImportFailed) as exc:
        import_devices(head + "t-1,thermostat,1.5,,2026-01-10\nt-2,thermostat,1.5,,\n", aggregator=agg, now=now,
                       actor=TEST_ACTOR)
    assert exc.value.report.error_lines() == [
        "line 2: installed_on: 2026-01-10 is given without a service_point_id: name the service point the device "
        "is installed at, or leave installed_on empty."]
    assert not Device.objects.exists()
