"""Aggregator outcomes in bulk (QA, issue 15): an event id beyond a bigint (2**63, 2**70) in one row answered
HTTP 500 (``OverflowError`` on SQLite) and recorded none of the report; it is that row's error, the other rows are
recorded."""

from __future__ import annotations

import pytest
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


def test_an_event_id_beyond_a_bigint_is_that_rows_error(api_client, django_user_model, program):
    user = django_user_model.objects.create_user("ecobee-api", password="pw-agg-123456")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    agg = AggregatorFactory(code="ecobee", api_user=user)
    participant(program, aggregator=agg, aggregator_device_id="e-1")
    event = scheduled_event(program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 16))
    services.event_dispatch(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    api_client.force_authenticate(user)
    rows = [{"event": 2**63, "device": "e-1", "revision": 1, "status": "participated"},
            {"event": event.pk, "device": "e-1", "revision": 1, "status": "participated"},
            {"event": 2**70, "device": "e-1", "revision": 1, "status": "participated"}]
    response = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": rows}, format="json")
    assert response.status_code == 200, response.content
    assert [(r["result"], r["detail"]) for r in response.json()["results"]] == [
        ("error", "This device is not reserved for this event."), ("recorded", ""),
        ("error", "This device is not reserved for this event.")]
    assert Participation.objects.get(event=event).status == ParticipationStatus.PARTICIPATED
