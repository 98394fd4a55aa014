"""Enrollments API: status codes, every reason in a 400, 409 naming the conflict, aggregator isolation, queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from cpm.base.errors import DomainValidationError
from enrollments.choices import EnrollmentStatus
from enrollments.models import Enrollment, ProgramSubscription
from tests.factories.devices import AggregatorFactory, DeviceFactory, DeviceInstallationFactory
from tests.factories.enrollments import ProgramSubscriptionFactory, active_participant
from tests.factories.programs import ProgramFactory

from .conftest import make_site

pytestmark = pytest.mark.django_db

URL = "/api/v1/enrollments/"


def body(site, **overrides):
    data = {"account": site.account.pk, "service_point": site.service_point.pk, "program": site.program.code,
            "devices": [site.device.pk], "effective_date": "2026-05-15"}
    data.update(overrides)
    return data


def test_enroll_then_retry_returns_same(admin_api, site):
    r = admin_api.post(URL, body(site, external_transaction_id="csr-1"), format="json")
    assert r.status_code == 201, r.json()
    data = r.json()
    assert data["status"] == "active" and data["source"] == "csr"
    assert [s["device"] for s in data["subscriptions"]] == [site.device.pk]
    again = admin_api.post(URL, body(site, external_transaction_id="csr-1"), format="json")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    assert Enrollment.objects.count() == 1


def test_ineligible_is_400_with_every_reason(admin_api, site):
    site.program.eligible_rate_codes = ["E-1"]
    site.program.excludes_life_support = True
    site.program.save()
    site.account.customer.life_support = True
    site.account.customer.save()
    r = admin_api.post(URL, body(site), format="json")
    assert r.status_code == 400
    data = r.json()
    assert data["code"] == "ineligible"
    assert {x["code"] for x in data["reasons"]} == {"rate_code_not_eligible", "life_support_excluded"}
    assert "service_point" in data and "account" in data
    assert not Enrollment.objects.exists() and not ProgramSubscription.objects.exists()


def test_second_account_same_device_is_409_naming_enrollment(admin_api, site):
    first = admin_api.post(URL, body(site), format="json").json()
    other = make_site(site.program)
    # The device is physically moved next door but still subscribed (stale state): 409, not a second enrollment.
    site.device.installations.update(removed_on=dt.date(2026, 5, 1))
    DeviceInstallationFactory(device=site.device, service_point=other.service_point, installed_on=dt.date(2026, 5, 1))
    r = admin_api.post(URL, body(other, devices=[site.device.pk]), format="json")
    assert r.status_code == 409
    data = r.json()
    assert data["code"] == "device_enrolled_by_other_account"
    assert data["conflicting_enrollment"] == first["id"]
    assert data["conflicting_program"] == site.program.code
    assert f"enrollment {first['id']}" in data["detail"]


@pytest.mark.parametrize("payload", [
    {},
    {"account": "x", "service_point": None, "program": 5, "devices": "all"},
    {"account": 999999, "service_point": 999999, "program": "nope", "devices": [1], "effective_date": "tomorrow"},
    {"answers": [1, 2]},
])
def test_bad_input_is_400_per_field_never_500(admin_api, site, payload):
    r = admin_api.post(URL, payload, format="json")
    assert r.status_code == 400, r.content
    assert set(r.json()) - {"code"}


def test_unknown_device_is_404(admin_api, site):
    r = admin_api.post(URL, body(site, devices=[987654]), format="json")
    assert r.status_code == 404 and r.json()["devices"] == ["Device 987654 not found."]


def test_lifecycle_actions(admin_api, site):
    site.program.requires_approval = True
    site.program.save()
    e = admin_api.post(URL, body(site), format="json").json()
    assert e["status"] == "pending_approval"
    r = admin_api.post(f"{URL}{e['id']}/approve/", {}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert admin_api.post(f"{URL}{e['id']}/approve/", {}, format="json").status_code == 409
    assert admin_api.post(f"{URL}{e['id']}/suspend/", {"reason": "audit"}, format="json").json()["status"] == \
        "suspended"
    assert admin_api.post(f"{URL}{e['id']}/resume/", {}, format="json").json()["status"] == "active"
    new = DeviceFactory()
    DeviceInstallationFactory(device=new, service_point=site.service_point)
    r = admin_api.post(f"{URL}{e['id']}/replace-device/", {"old_device": site.device.pk, "new_device": new.pk,
                                                           "on": "2026-07-01"}, format="json")
    assert r.status_code == 200, r.json()
    subs = {s["device"]: s for s in r.json()["subscriptions"]}
    assert subs[site.device.pk]["end_date"] == "2026-07-01" and subs[new.pk]["end_date"] is None
    r = admin_api.post(f"{URL}{e['id']}/unenroll/", {"effective_date": "2026-08-01", "reason_code": "customer_request",
                                                     "reason_text": "moving"}, format="json")
    assert r.status_code == 200 and r.json()["end_date"] == "2026-08-01" and r.json()["status"] == "unenrolled"
    assert admin_api.post(f"{URL}{e['id']}/unenroll/", {"effective_date": "2026-08-01"},
                          format="json").status_code == 409
    assert admin_api.post(f"{URL}{e['id']}/unenroll/", {}, format="json").status_code == 400
    assert admin_api.post(f"{URL}999999/approve/", {}, format="json").status_code == 404


def test_reject_and_add_device(admin_api):
    program = ProgramFactory(code="ev", eligible_device_types=["ev_charger"], requires_approval=True)
    site = make_site(program, device_type="ev_charger")
    e = admin_api.post(URL, body(site), format="json").json()
    r = admin_api.post(f"{URL}{e['id']}/reject/", {"reason_code": "ineligible_rate", "reason_text": "EV rate only"},
                       format="json")
    assert r.status_code == 200 and r.json()["status"] == "rejected" and r.json()["reason_code"] == "ineligible_rate"
    e = admin_api.post(URL, body(site), format="json").json()
    second = DeviceFactory(device_type="ev_charger")
    DeviceInstallationFactory(device=second, service_point=site.service_point)
    r = admin_api.post(f"{URL}{e['id']}/add-device/", {"device": second.pk}, format="json")
    assert r.status_code == 201
    assert len([s for s in r.json()["subscriptions"] if s["end_date"] is None]) == 2


def test_account_eligibility_endpoint(admin_api, site):
    ProgramFactory(code="ev", eligible_device_types=["ev_charger"])
    r = admin_api.get(f"/api/v1/accounts/{site.account.pk}/eligibility/?date=2026-05-15")
    assert r.status_code == 200
    lines = {line["program_code"]: line for line in r.json()["programs"]}
    assert lines[site.program.code]["eligible"] is True
    assert lines[site.program.code]["eligible_devices"] == [site.device.pk]
    assert lines["ev"]["eligible"] is False and lines["ev"]["reasons"][0]["code"] == "device_required"
    assert admin_api.get(f"/api/v1/accounts/{site.account.pk}/eligibility/?date=nope").status_code == 400


def test_account_close_endpoint(admin_api, site):
    e = admin_api.post(URL, body(site), format="json").json()
    r = admin_api.post(f"/api/v1/accounts/{site.account.pk}/close/", {"closed_on": "2026-06-30"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert Enrollment.objects.get(pk=e["id"]).end_date == dt.date(2026, 6, 30)


def test_filters(admin_api, site):
    admin_api.post(URL, body(site), format="json")
    ev = make_site(ProgramFactory(code="ev", eligible_device_types=["ev_charger"]), device_type="ev_charger")
    admin_api.post(URL, body(ev), format="json")
    assert admin_api.get(f"{URL}?program=ev").json()["count"] == 1
    assert admin_api.get(f"{URL}?device_type=thermostat").json()["count"] == 1
    assert admin_api.get(f"{URL}?status=active").json()["count"] == 2
    assert admin_api.get(f"{URL}?aggregator={site.device.aggregator.code}").json()["count"] == 1
    assert admin_api.get(f"{URL}?territory=NORTH&active_on=2026-05-15").json()["count"] == 2
    assert admin_api.get(f"{URL}?active_on=2026-05-14").json()["count"] == 0
    assert admin_api.get("/api/v1/subscriptions/?program=ev&open=true").json()["count"] == 1
    assert admin_api.get("/api/v1/devices/?device_type=ev_charger").json()["count"] == 1
    assert admin_api.get(f"/api/v1/devices/?service_point={site.service_point.service_point_id}").json()["count"] == 1
    assert admin_api.get(f"{URL}?effective_after=2026-06-01").json()["count"] == 0


@pytest.mark.parametrize("url", [
    "/api/v1/enrollments/", "/api/v1/subscriptions/", "/api/v1/accounts/", "/api/v1/customers/", "/api/v1/devices/",
    "/api/v1/service-points/", "/api/v1/premises/", "/api/v1/aggregators/", "/api/v1/service-agreements/",
])
def test_list_endpoints_constant_queries(admin_api, django_assert_num_queries, url):
    program = ProgramFactory()
    active_participant(program=program)
    admin_api.get(url)  # warm per-process caches (content types)
    with CaptureQueriesContext(connection) as one:
        assert admin_api.get(url).status_code == 200
    for _ in range(6):
        active_participant(program=program)
    with django_assert_num_queries(len(one.captured_queries)):
        r = admin_api.get(url)
    assert r.json()["count"] >= 6


# --- aggregator isolation -----------------------------------------------------------------------------------------

def aggregator_client(code, django_user_model):
    user = django_user_model.objects.create_user(f"{code}-api", password="x-Secret-123")
    user.user_permissions.add(*Permission.objects.filter(codename__in=[
        "view_enrollment", "add_enrollment", "change_enrollment", "view_device", "add_device", "change_device",
        "view_programsubscription", "view_account", "view_customer", "view_servicepoint"]))
    # The capabilities of the Aggregator role (cpm.base.roles): writes are guarded by capability, not model rights.
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="cpm", codename__in=[
        "request_enrollments", "manage_enrollments", "manage_devices", "report_outcomes"]))
    aggregator = AggregatorFactory(code=code, api_user=user)
    client = APIClient()
    client.force_authenticate(user)
    return client, aggregator


def test_aggregator_sees_and_changes_only_its_own(django_user_model):
    client, mine = aggregator_client("ecobee", django_user_model)
    program = ProgramFactory()
    own = active_participant(program=program, device_kwargs={"aggregator": mine})
    theirs = active_participant(program=program)
    assert [e["id"] for e in client.get(URL).json()["results"]] == [own.enrollment_id]
    assert [d["id"] for d in client.get("/api/v1/devices/").json()["results"]] == [own.device_id]
    assert [s["id"] for s in client.get("/api/v1/subscriptions/").json()["results"]] == [own.pk]
    assert [a["id"] for a in client.get("/api/v1/accounts/").json()["results"]] == [own.enrollment.account_id]
    assert client.get(f"{URL}{theirs.enrollment_id}/").status_code == 404
    assert client.get(f"/api/v1/devices/{theirs.device_id}/").status_code == 404
    # Suspending is an approver's capability (enrollment.suspend, Cap.APPROVE_ENROLLMENTS) an aggregator lacks: 403
    # before any lookup (issue 13); a change it may make (unenroll) on another aggregator's enrollment is a 404.
    assert client.post(f"{URL}{theirs.enrollment_id}/suspend/", {}, format="json").status_code == 403
    assert client.post(f"{URL}{theirs.enrollment_id}/unenroll/", {"effective_date": "2026-06-01"},
                       format="json").status_code == 404
    assert Enrollment.objects.get(pk=theirs.enrollment_id).status == EnrollmentStatus.ACTIVE
    # Enrolling someone else's device: 404, nothing written.
    site = make_site(program)
    r = client.post(URL, body(site), format="json")
    assert r.status_code == 404
    assert not Enrollment.objects.filter(account=site.account).exists()
    # Its own device at a new site enrolls, with source forced to aggregator_api.
    device = DeviceFactory(aggregator=mine)
    DeviceInstallationFactory(device=device, service_point=site.service_point)
    r = client.post(URL, body(site, devices=[device.pk], source="csr", external_transaction_id="eco-77"),
                    format="json")
    assert r.status_code == 201 and r.json()["source"] == "aggregator_api"
    # Registering a device for another aggregator is refused; for itself the aggregator is implied.
    other = AggregatorFactory(code="tesla")
    r = client.post("/api/v1/devices/", {"aggregator": other.code, "aggregator_device_id": "x", "device_type":
                                         "battery", "capacity_kw": "5"}, format="json")
    assert r.status_code == 403
    r = client.post("/api/v1/devices/", {"aggregator_device_id": "x", "device_type": "battery", "capacity_kw": "5"},
                    format="json")
    assert r.status_code == 201 and r.json()["aggregator"] == "ecobee"


def test_anonymous_and_unprivileged_are_refused(api_client, django_user_model, site):
    assert api_client.get(URL).status_code in (401, 403)
    user = django_user_model.objects.create_user("nobody", password="x-Secret-123")
    api_client.force_authenticate(user)
    assert api_client.get(URL).status_code == 403
    assert api_client.post(URL, body(site), format="json").status_code == 403


def test_aggregator_cannot_enroll_a_site_without_its_own_device(django_user_model):
    """An aggregator's API client enrolls its own devices only: naming none (e.g. a peak-time rebate, which takes no
    device) is a 403 and writes nothing; otherwise it could enroll any account it knows the number of."""
    client, _ = aggregator_client("ecobee", django_user_model)
    ptr = ProgramFactory(program_type="peak_time_rebate", requires_device=False, eligible_device_types=[])
    site = make_site(ptr)
    r = client.post(URL, {"account": site.account.account_number, "program": ptr.code, "devices": [],
                          "service_point": site.service_point.service_point_id}, format="json")
    assert r.status_code == 403, r.json()
    assert r.json()["code"] == "aggregator_needs_own_device" and r.json()["devices"]
    assert not Enrollment.objects.exists()


def test_account_eligibility_defaults_to_today_in_the_program_zone(admin_api):
    """At 19:00 PDT on May 15 (02:00 UTC May 16) the list answers for May 15, the date an enrollment request made
    now takes: a program whose enrollment closes on May 15 is still eligible, as the request shows."""
    from unittest import mock

    site = make_site(ProgramFactory(enrollment_closes_on=dt.date(2026, 5, 15)))
    evening = dt.datetime(2026, 5, 16, 2, 0, tzinfo=dt.UTC)
    with mock.patch("enrollments.api.views.api_now", return_value=evening):
        r = admin_api.get(f"/api/v1/accounts/{site.account.pk}/eligibility/")
        (line,) = r.json()["programs"]
        assert (line["eligible"], line["reasons"], line["date"]) == (True, [], "2026-05-15")
        enrolled = admin_api.post(URL, {"account": site.account.pk, "service_point": site.service_point.pk,
                                        "program": site.program.code, "devices": [site.device.pk]}, format="json")
    assert enrolled.status_code == 201 and enrolled.json()["effective_date"] == "2026-05-15"


def shared_site(django_user_model):
    """One site enrolled with an ecobee thermostat (the client's aggregator) and another aggregator's battery:
    (ecobee's API client, ecobee, ecobee's subscription)."""
    client, mine = aggregator_client("ecobee", django_user_model)
    own = active_participant(program=ProgramFactory(), device_kwargs={"aggregator": mine})
    other_device = DeviceFactory(aggregator=AggregatorFactory(code="tesla"))
    DeviceInstallationFactory(device=other_device, service_point=own.enrollment.service_point)
    ProgramSubscriptionFactory(enrollment=own.enrollment, device=other_device, start_date=own.start_date)
    return client, mine, own


def test_aggregator_sees_only_its_own_devices_subscriptions_of_a_shared_enrollment(django_user_model):
    # One site enrolled with an ecobee thermostat and another aggregator's battery: ecobee lists the enrollment
    # (its device is in it) but must not see the other aggregator's device and subscription in it.
    client, mine, own = shared_site(django_user_model)
    (row,) = client.get(URL).json()["results"]
    assert [s["device"] for s in row["subscriptions"]] == [own.device_id]
    detail = client.get(f"{URL}{own.enrollment_id}/").json()
    assert [s["device"] for s in detail["subscriptions"]] == [own.device_id]


def test_an_aggregators_write_answers_with_only_its_own_subscriptions(django_user_model):
    # The same shared site: ecobee adds a second thermostat; the enrollment in the answer lists ecobee's two
    # subscriptions, not the other aggregator's battery.
    client, mine, own = shared_site(django_user_model)
    second = DeviceFactory(aggregator=mine)
    DeviceInstallationFactory(device=second, service_point=own.enrollment.service_point)
    response = client.post(f"{URL}{own.enrollment_id}/add-device/", {"device": second.pk}, format="json")
    assert response.status_code == 201, response.json()
    assert sorted(s["device"] for s in response.json()["subscriptions"]) == sorted([own.device_id, second.pk])


def test_unenroll_far_in_the_future_is_a_400_naming_effective_date(admin_api, site):
    enrollment = active_participant(program=site.program).enrollment
    r = admin_api.post(f"{URL}{enrollment.pk}/unenroll/", {"effective_date": "2999-01-01"}, format="json")
    assert r.status_code == 400
    (message,) = r.json()["effective_date"]
    assert message.startswith("2999-01-01 is more than a year ahead: an unenrollment takes effect at most one year "
                              "after today (")
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.end_date) == (EnrollmentStatus.ACTIVE, None)


def test_an_aggregator_cannot_unenroll_a_site_that_also_holds_another_aggregators_device(django_user_model):
    """The shared site: ecobee's unenroll ended the whole enrollment, the other aggregator's battery subscription
    included (which ecobee's API answer does not even show). An aggregator ends an enrollment only when every device
    still in it is its own: here 403, nothing changed, nothing audited (the utility ends it, or ecobee removes its
    own device)."""
    from cpm.models import AuditEntry

    client, mine, own = shared_site(django_user_model)
    audited = AuditEntry.objects.count()
    r = client.post(f"{URL}{own.enrollment_id}/unenroll/", {"effective_date": "2026-08-01"}, format="json")
    assert r.status_code == 403, r.json()
    assert r.json()["code"] == "aggregator_foreign_devices"
    assert "tesla" not in r.json()["detail"]  # the other aggregator is not named to ecobee
    assert Enrollment.objects.get(pk=own.enrollment_id).status == EnrollmentStatus.ACTIVE
    assert list(ProgramSubscription.objects.filter(enrollment=own.enrollment_id).values_list("end_date", flat=True)) \
        == [None, None]
    assert AuditEntry.objects.count() == audited


def test_an_aggregator_whose_device_left_an_enrollment_cannot_end_it(django_user_model):
    """ecobee's thermostat left the enrollment (its subscription ended); the enrollment still lists for ecobee (its
    history), but only the other aggregator's battery is in it: ecobee's unenroll is refused (403), nothing
    changed."""
    client, mine, own = shared_site(django_user_model)
    ProgramSubscription.objects.filter(pk=own.pk).update(end_date=dt.date(2026, 3, 1))
    r = client.post(f"{URL}{own.enrollment_id}/unenroll/", {"effective_date": "2026-08-01"}, format="json")
    assert r.status_code == 403, r.json()
    assert Enrollment.objects.get(pk=own.enrollment_id).status == EnrollmentStatus.ACTIVE
    assert ProgramSubscription.objects.filter(enrollment=own.enrollment_id, end_date__isnull=True).count() == 1


def test_an_aggregator_unenrolls_an_enrollment_of_only_its_own_devices(django_user_model):
    client, mine = aggregator_client("ecobee", django_user_model)
    own = active_participant(program=ProgramFactory(), device_kwargs={"aggregator": mine})
    r = client.post(f"{URL}{own.enrollment_id}/unenroll/", {"effective_date": "2026-08-01"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "unenrolled"
    assert [s["end_date"] for s in r.json()["subscriptions"]] == ["2026-08-01"]


def test_enroll_or_close_far_in_the_future_is_a_400_naming_the_field(admin_api, site):
    r = admin_api.post(URL, body(site, effective_date="2999-01-01"), format="json")
    assert r.status_code == 400
    (message,) = r.json()["effective_date"]
    assert message.startswith("2999-01-01 is more than a year ahead: an enrollment takes effect at most one year "
                              "after today (")
    assert not Enrollment.objects.exists()
    r = admin_api.post(f"/api/v1/accounts/{site.account.pk}/close/", {"closed_on": "2999-01-01"}, format="json")
    assert r.status_code == 400
    (message,) = r.json()["closed_on"]
    assert message.startswith("2999-01-01 is more than a year ahead: an account closes at most one year after "
                              "today (")
    site.account.refresh_from_db()
    assert (site.account.status, site.account.closed_on) == ("open", None)


def test_device_dates_far_in_the_future_are_a_400_naming_the_field(admin_api, site):
    """A device added, replaced or its subscription ended in 2999 (a typo for 2029, or a CIS's "no end"): refused
    like an unenrollment that far ahead, naming the field; nothing changed."""
    from enrollments import services as enrollment_services
    from tests.actors import TEST_ACTOR

    part = active_participant(program=site.program)
    new = DeviceFactory(aggregator=part.device.aggregator)
    DeviceInstallationFactory(device=new, service_point=part.enrollment.service_point)
    r = admin_api.post(f"{URL}{part.enrollment_id}/add-device/", {"device": new.pk, "start_date": "2999-01-01"},
                       format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["start_date"][0].startswith(
        "2999-01-01 is more than a year ahead: a device joins the enrollment at most one year after today (")
    r = admin_api.post(f"{URL}{part.enrollment_id}/replace-device/",
                       {"old_device": part.device_id, "new_device": new.pk, "on": "2999-01-01"}, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["on"][0].startswith(
        "2999-01-01 is more than a year ahead: a device replacement takes effect at most one year after today (")
    with pytest.raises(DomainValidationError) as refused:
        enrollment_services.subscription_end(subscription=part, end_date=dt.date(2999, 1, 1),
                                             now=dt.datetime.now(dt.UTC), actor=TEST_ACTOR)
    assert refused.value.errors["end_date"][0].startswith("2999-01-01 is more than a year ahead: a subscription ends")
    assert list(ProgramSubscription.objects.filter(enrollment=part.enrollment_id).values_list("device_id", "end_date")
                ) == [(part.device_id, None)]


def test_two_aggregators_keep_their_own_external_transaction_ids(django_user_model):
    """QA: every aggregator's request is source ``aggregator_api``, so the idempotency key (source, external
    transaction id) was shared by all aggregators: the second aggregator to send its own transaction '1001' got a
    409 naming the first aggregator's enrollment (another account) and could not enroll at all. An aggregator's
    external transaction ids are its own: each enrolls its own site under '1001', a retry returns its own
    enrollment (200) and writes nothing; the same id for another site of its own is still a 409."""
    program = ProgramFactory()
    eco_client, eco = aggregator_client("ecobee", django_user_model)
    nest_client, nest = aggregator_client("nest", django_user_model)
    eco_site, nest_site = make_site(program), make_site(program)
    for site, aggregator in ((eco_site, eco), (nest_site, nest)):
        site.device.aggregator = aggregator
        site.device.save()
    first = eco_client.post(URL, body(eco_site, external_transaction_id="1001"), format="json")
    assert first.status_code == 201, first.json()
    second = nest_client.post(URL, body(nest_site, external_transaction_id="1001"), format="json")
    assert second.status_code == 201, second.json()
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["account"] == nest_site.account.pk and second.json()["source"] == "aggregator_api"
    again = nest_client.post(URL, body(nest_site, external_transaction_id="1001"), format="json")
    assert again.status_code == 200 and again.json()["id"] == second.json()["id"]
    assert Enrollment.objects.count() == 2
    other_site = make_site(program)
    other_site.device.aggregator = nest
    other_site.device.save()
    reused = nest_client.post(URL, body(other_site, external_transaction_id="1001"), format="json")
    assert reused.status_code == 409 and reused.json()["code"] == "external_transaction_reused"
    assert reused.json()["conflicting_enrollment"] == second.json()["id"]
    assert Enrollment.objects.count() == 2


def test_a_transaction_id_reused_with_other_devices_is_a_409_not_the_first_enrollment(admin_api, site):
    """The same external transaction id with another device at the same site is another request: answering 200 with
    the first enrollment said the second device was enrolled when it was not. A true retry (the same device) still
    answers the first enrollment."""
    first = admin_api.post(URL, body(site, external_transaction_id="crm-77"), format="json")
    assert first.status_code == 201, first.json()
    second_device = DeviceFactory()
    DeviceInstallationFactory(device=second_device, service_point=site.service_point)
    reused = admin_api.post(URL, body(site, external_transaction_id="crm-77", devices=[second_device.pk]),
                            format="json")
    assert reused.status_code == 409, reused.json()
    assert reused.json()["code"] == "external_transaction_reused"
    assert reused.json()["detail"] == (f"External transaction id 'crm-77' was already used for enrollment "
                                       f"{first.json()['id']} with other devices (device {second_device.pk} is not "
                                       "in it).")
    retry = admin_api.post(URL, body(site, external_transaction_id="crm-77"), format="json")
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    assert list(ProgramSubscription.objects.values_list("device_id", flat=True)) == [site.device.pk]
