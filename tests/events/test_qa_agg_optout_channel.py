"""An aggregator's opt-out request (QA, agg): ``POST /participations/{id}/opt-out/`` by an aggregator's API client
was recorded with the default channel ``csr`` (or whatever channel the client claimed, ``portal``), so the opt-out
read as made by the utility's CSR or the customer's portal. It is the aggregator API's request (``aggregator_api``),
as an aggregator's enrollment requests are ``aggregator_api`` whatever source they name."""

from __future__ import annotations

import pytest
import time_machine
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.models import AuditEntry
from events.models import OptOut, Participation
from tests.events.test_api import JULY_NOW, participant, scheduled_event
from tests.factories.devices import AggregatorFactory
from tests.factories.events import la

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(JULY_NOW, tick=False):
        yield


def test_an_aggregators_opt_out_request_is_recorded_as_the_aggregator_apis(api_client, admin_user, django_user_model,
                                                                             program):
    user = django_user_model.objects.create_user("ecobee-api", password="pw-agg-123456")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    agg = AggregatorFactory(code="ecobee", api_user=user)
    for n in (1, 2, 3):
        participant(program, aggregator=agg, aggregator_device_id=f"e-{n}")
    event = scheduled_event(program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 16))
    ps = {p.device.aggregator_device_id: p
          for p in Participation.objects.filter(event=event).select_related("device")}
    api_client.force_authenticate(user)
    r = api_client.post(f"/api/v1/participations/{ps['e-1'].pk}/opt-out/", {"reason": "customer app"},
                        format="json")
    assert r.status_code == 201, r.content
    assert (r.json()["status"], r.json()["opt_out"]["channel"]) == ("opted_out", "aggregator_api")
    r = api_client.post(f"/api/v1/participations/{ps['e-2'].pk}/opt-out/", {"channel": "portal"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["opt_out"]["channel"] == "aggregator_api"
    assert sorted(OptOut.objects.values_list("participation__device__aggregator_device_id", "channel")) == [
        ("e-1", "aggregator_api"), ("e-2", "aggregator_api")]
    reasons = set(AuditEntry.objects.filter(to_status="opted_out").values_list("reason", flat=True))
    assert reasons == {"opt-out via aggregator_api: customer app", "opt-out via aggregator_api"}
    # The utility's users keep the channel they name (a CSR, a portal).
    api_client.force_authenticate(admin_user)
    r = api_client.post(f"/api/v1/participations/{ps['e-3'].pk}/opt-out/", {"channel": "portal"}, format="json")
    assert r.status_code == 201 and r.json()["opt_out"]["channel"] == "portal"
