"""An opt-out reported after the event ended (QA, agg): the outcome row's error named the field ``at`` (the opt-out
endpoint's), not the row's ``opted_out_at``, and gave the end in UTC; it names ``opted_out_at`` and gives the end in
the program's zone, as the opt-out endpoint now does too."""

from __future__ import annotations

import pytest
import time_machine
from django.contrib.auth.models import Group

from cpm.base import roles
from events import services
from events.choices import ParticipationStatus
from events.models import Participation
from tests.actors import TEST_ACTOR
from tests.events.test_api import JULY_NOW, participant, scheduled_event
from tests.factories.devices import AggregatorFactory
from tests.factories.events import la

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(JULY_NOW, tick=False):
        yield


def test_an_opt_out_after_the_end_names_opted_out_at_and_the_local_end(api_client, admin_user, django_user_model,
                                                                        program):
    user = django_user_model.objects.create_user("ecobee-api", password="pw-agg-123456")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    agg = AggregatorFactory(code="ecobee", api_user=user)
    participant(program, aggregator=agg, aggregator_device_id="e-1")
    participant(program, aggregator=agg, aggregator_device_id="e-2")
    event = scheduled_event(program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 16))
    services.event_dispatch(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    api_client.force_authenticate(user)
    row = {"event": event.pk, "device": "e-1", "revision": 1, "status": "opted_out",
           "opted_out_at": "2026-07-15T16:30:00-07:00"}
    r = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": [row]}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["results"][0]["result"] == "error"
    assert r.json()["results"][0]["detail"] == (
        "opted_out_at: The event ended at 2026-07-15T16:00:00-07:00; an opt-out must be before the end.")
    p2 = Participation.objects.get(event=event, device__aggregator_device_id="e-2")
    api_client.force_authenticate(admin_user)
    r = api_client.post(f"/api/v1/participations/{p2.pk}/opt-out/", {"at": "2026-07-15T23:30:00Z"}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["at"] == ["The event ended at 2026-07-15T16:00:00-07:00; an opt-out must be before the end."]
    assert set(Participation.objects.filter(event=event).values_list("status", flat=True)) == {
        ParticipationStatus.DISPATCHED}
