"""Natural keys in the API (issue 17, point 5): a client names rows by what it knows (account number, service point
id, device serial or aggregator device id, program code); ids are still accepted; an unknown key is a 400 naming
the field. And the safe default of point 3: a new program excludes life-support customers."""

from __future__ import annotations

import datetime as dt

import pytest

from enrollments.models import Enrollment
from programs import services as program_services
from programs.models import MutualExclusion, Program
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, ServicePointFactory
from tests.factories.programs import ProgramFactory, SeasonFactory

from .conftest import make_site

pytestmark = pytest.mark.django_db

URL = "/api/v1/enrollments/"


def test_enroll_by_account_number_service_point_id_program_code_and_device_serial(admin_api):
    site = make_site()
    site.account.account_number = "DEMO-XX-0053"
    site.account.save()
    r = admin_api.post(URL, {"account": "DEMO-XX-0053", "service_point": site.service_point.service_point_id,
                             "program": site.program.code, "devices": [site.device.serial_number],
                             "effective_date": "2026-05-15"}, format="json")
    assert r.status_code == 201, r.json()
    data = r.json()
    assert (data["account"], data["service_point"], data["program"]) == (
        site.account.pk, site.service_point.pk, site.program.pk)
    assert [s["device"] for s in data["subscriptions"]] == [site.device.pk]


def test_ids_are_still_accepted_and_a_device_by_aggregator_device_id(admin_api):
    site = make_site()
    r = admin_api.post(URL, {"account": site.account.pk, "service_point": str(site.service_point.pk),
                             "program": site.program.pk, "devices": [site.device.aggregator_device_id],
                             "effective_date": "2026-05-15"}, format="json")
    assert r.status_code == 201, r.json()
    assert Enrollment.objects.get().account_id == site.account.pk


@pytest.mark.parametrize(("field", "value", "message"), [
    ("account", "NO-SUCH-ACCOUNT", "No account has account number or id 'NO-SUCH-ACCOUNT'."),
    ("account", 999999, "No account has id 999999."),
    ("service_point", "SP-NOWHERE", "No service point has service point id or id 'SP-NOWHERE'."),
    ("program", "no-such-program", "No program has code or id 'no-such-program'."),
])
def test_unknown_key_is_400_naming_the_field(admin_api, field, value, message):
    site = make_site()
    body = {"account": site.account.account_number, "service_point": site.service_point.service_point_id,
            "program": site.program.code, "devices": [site.device.pk], "effective_date": "2026-05-15", field: value}
    r = admin_api.post(URL, body, format="json")
    assert r.status_code == 400
    assert r.json()[field] == [message]
    assert not Enrollment.objects.exists()


def test_unknown_device_key_is_404_naming_the_field_and_a_shared_serial_asks_for_the_id(admin_api):
    site = make_site()
    body = {"account": site.account.account_number, "service_point": site.service_point.service_point_id,
            "program": site.program.code, "effective_date": "2026-05-15"}
    r = admin_api.post(URL, {**body, "devices": ["NO-SERIAL"]}, format="json")
    assert r.status_code == 404 and r.json()["devices"] == ["Device 'NO-SERIAL' not found."], r.json()
    DeviceFactory(serial_number=site.device.serial_number)
    r = admin_api.post(URL, {**body, "devices": [site.device.serial_number]}, format="json")
    assert r.status_code == 400 and "name it by its id" in r.json()["devices"][0]
    assert not Enrollment.objects.exists()


def test_event_program_code_or_id_and_target_devices_by_serial(admin_api):
    program = ProgramFactory(code="smart-ac")
    SeasonFactory(program=program)
    device = DeviceFactory(serial_number="SER-EV-1")
    body = {"program": program.pk, "name": "Heat wave", "start": "2026-07-15T15:00:00",
            "end": "2026-07-15T18:00:00", "target_device_ids": ["SER-EV-1", device.pk]}
    r = admin_api.post("/api/v1/events/", body, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["program"] == "smart-ac"
    r = admin_api.post("/api/v1/events/", {**body, "program": "smart-ac", "target_device_ids": ["SER-NONE"]},
                       format="json")
    assert r.status_code == 400
    assert r.json()["target_device_ids"] == ["No device has serial number, aggregator device id or id 'SER-NONE'."]


def test_mutual_exclusion_by_program_codes_and_install_by_service_point_id_or_id(admin_api):
    a, b = ProgramFactory(code="alpha"), ProgramFactory(code="beta")
    r = admin_api.post("/api/v1/mutual-exclusions/", {"program_a": "alpha", "program_b": b.pk}, format="json")
    assert r.status_code == 201, r.content
    assert MutualExclusion.objects.count() == 1
    assert admin_api.post("/api/v1/mutual-exclusions/", {"program_a": "alpha", "program_b": "gamma"},
                          format="json").json()["program_b"] == ["No program has code or id 'gamma'."]
    assert {a.pk, b.pk} == set(MutualExclusion.objects.values_list("program_a", "program_b").get())
    device, sp = DeviceFactory(), ServicePointFactory(service_point_id="SP-77")
    r = admin_api.post(f"/api/v1/devices/{device.pk}/install/", {"service_point": sp.pk,
                                                                 "installed_on": "2026-05-01"}, format="json")
    assert r.status_code == 200 and r.json()["installation"]["service_point"] == "SP-77"


def test_a_new_program_excludes_life_support_and_the_api_then_refuses_a_life_support_customer(admin_api):
    program = program_services.program_create(
        data={"code": "safe", "name": "Safe by default", "program_type": "thermostat_dr",
              "time_zone": "America/Los_Angeles", "eligible_device_types": ["thermostat"]},
        seasons=[{"name": "Summer 2026", "start_date": "2026-06-01", "end_date": "2026-09-30"}],
        participation_rules=[{"effective_from": "2026-01-01"}],
        incentive_rules=[{"kind": "performance_kwh", "basis": "per_kwh", "amount": "1.25"}],
        now=dt.datetime(2026, 5, 1, tzinfo=dt.UTC), actor=TEST_ACTOR)
    assert program.excludes_life_support is True
    Program.objects.filter(pk=program.pk).update(status="active")  # test set-up: activation is not the subject
    site = make_site(program)
    site.account.customer.life_support = True
    site.account.customer.save()
    r = admin_api.post(URL, {"account": site.account.account_number,
                             "service_point": site.service_point.service_point_id, "program": "safe",
                             "devices": [site.device.serial_number], "effective_date": "2026-05-15"}, format="json")
    assert r.status_code == 400, r.json()
    assert [x["code"] for x in r.json()["reasons"]] == ["life_support_excluded"]
    assert not Enrollment.objects.exists()
