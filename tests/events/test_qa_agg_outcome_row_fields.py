"""An outcome row's ``opted_out_at`` with another status (QA, agg): ``participated`` with an ``opted_out_at`` was
recorded and the time silently dropped, so the client never learnt that its report contradicted itself. The time
of an opt-out goes only with ``opted_out``: a 400 naming the row's field, nothing recorded."""

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


@time_machine.travel(JULY_NOW, tick=False)
def test_opted_out_at_with_another_status_is_refused_naming_the_row(api_client, django_user_model, program):
    user = django_user_model.objects.create_user("ecobee-api", password="pw-agg-123456")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    agg = AggregatorFactory(code="ecobee", api_user=user)
    participant(program, aggregator=agg, aggregator_device_id="e-1")
    event = scheduled_event(program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 16))
    services.event_dispatch(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    services.event_activate(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    api_client.force_authenticate(user)
    rows = [{"event": event.pk, "device": "e-1", "revision": 1, "status": "opted_out",
             "opted_out_at": "2026-07-15T15:20:00-07:00"},
            {"event": event.pk, "device": "e-1", "revision": 1, "status": "participated",
             "opted_out_at": "2026-07-15T15:30:00-07:00"}]
    r = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": rows[1:]}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["outcomes[0].opted_out_at"] == [
        "Only an opted_out outcome has an opted_out_at (this row is participated)."]
    assert Participation.objects.get(event=event).status == ParticipationStatus.DISPATCHED
    r = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": rows[:1]}, format="json")
    assert r.status_code == 200 and r.json()["results"][0]["result"] == "recorded"
    # A null opted_out_at is no time: accepted with any status.
    r = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": [{**rows[1], "opted_out_at": None}]},
                        format="json")
    assert r.status_code == 200, r.content
