"""A service's refusal on an admin add or change page (``GuardedModelAdmin.changeform_view``): nothing is saved and
the page comes back with what was typed still in the boxes, the refusal at the field it names (labelled as on
screen) or above the form."""

from __future__ import annotations

import pytest
from django.urls import reverse

from devices.models import Device
from programs.models import ParticipationRule
from tests.factories.devices import AggregatorFactory
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db


def test_a_refused_device_keeps_what_was_typed_and_shows_the_error_at_its_box(admin_client):
    agg = AggregatorFactory(code="tesla")
    response = admin_client.post("/admin/devices/device/add/", {
        "aggregator": agg.pk, "aggregator_device_id": "pw-typed-77", "device_type": "battery", "capacity_kw": "5000",
        "ownership": "customer_owned", "firmware_version": "24.1", "installations-TOTAL_FORMS": "0",
        "installations-INITIAL_FORMS": "0"})
    assert response.status_code == 200  # the form again, not a redirect to an empty one
    form = response.context["adminform"].form
    assert form.errors["capacity_kw"] == [
        "Capacity kW 5000 is above the plausible maximum of 1,000 kW (CPM_MAX_DEVICE_KW)."]
    page = response.content.decode()
    assert 'value="pw-typed-77"' in page and 'value="24.1"' in page and 'value="5000"' in page
    assert not Device.objects.exists()
    # and a correct value then saves
    response = admin_client.post("/admin/devices/device/add/", {
        "aggregator": agg.pk, "aggregator_device_id": "pw-typed-77", "device_type": "battery", "capacity_kw": "5",
        "ownership": "customer_owned", "firmware_version": "24.1", "installations-TOTAL_FORMS": "0",
        "installations-INITIAL_FORMS": "0"})
    assert response.status_code == 302
    assert Device.objects.get().aggregator_device_id == "pw-typed-77"


def test_a_refusal_naming_no_field_is_shown_above_the_form_with_the_input_kept(admin_client):
    from tests.programs.test_admin import _rule_values

    closed = ProgramFactory(code="gone", status="closed")
    response = admin_client.post(reverse("admin:programs_participationrule_add"),
                                 {"program": closed.pk, **_rule_values(max_events_per_season="17"), "_save": "Save"})
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors() == ["Program gone is closed; its definition can no longer change."]
    assert 'value="17"' in response.content.decode()
    assert not ParticipationRule.objects.exists()
