"""Times without a UTC offset on the events API's writes (QA guard): a naive time is never silently taken as UTC.

``POST /events/`` reads an offset-less time as the program's wall clock; the other write fields (an opt-out's
``at``, an outcome's ``opted_out_at``, an unavailability's ``start``/``end``) have no such rule, and reading
``2026-07-15T15:30:00`` as UTC puts a Los Angeles opt-out seven hours early: they refuse it, naming the field.
"""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group

from cpm.base import roles
from events import services
from events.models import OptOut, Participation, Unavailability
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, la

pytestmark = pytest.mark.django_db
JULY_NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(JULY_NOW, tick=False):
        yield


def _event(program, **device):
    sub = active_participant(program=program, device_kwargs={"last_seen_at": JULY_NOW, **device})
    event = EventFactory(program=program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 17))
    services.event_schedule(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    services.event_reserve(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    return sub, event


def test_opt_out_at_without_offset_is_refused_naming_the_field(admin_api, program):
    sub, event = _event(program)
    pa = Participation.objects.get(subscription=sub, event=event)
    r = admin_api.post(f"/api/v1/participations/{pa.pk}/opt-out/", {"at": "2026-07-15T15:30:00"}, format="json")
    assert r.status_code == 400, r.content
    assert "at" in r.json() and "offset" in " ".join(r.json()["at"])
    assert not OptOut.objects.exists()
    ok = admin_api.post(f"/api/v1/participations/{pa.pk}/opt-out/", {"at": "2026-07-15T15:30:00-07:00"},
                        format="json")
    assert ok.status_code == 201, ok.content


def test_outcome_opted_out_at_without_offset_is_refused(api_client, django_user_model, program):
    user = django_user_model.objects.create_user("ecobee-api")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    agg = AggregatorFactory(code="ecobee", api_user=user)
    _sub, event = _event(program, aggregator=agg, aggregator_device_id="e-1")
    services.event_dispatch(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    api_client.force_authenticate(user)
    row = {"event": event.pk, "device": "e-1", "revision": 1, "status": "opted_out",
           "opted_out_at": "2026-07-15T15:30:00"}
    r = api_client.post("/api/v1/aggregator/outcomes/", {"outcomes": [row]}, format="json")
    assert r.status_code == 400, r.content
    assert "offset" in str(r.json())
    assert not OptOut.objects.exists()


def test_unavailability_without_offset_is_refused(admin_api, program):
    sub = active_participant(program=program)
    body = {"enrollment": sub.enrollment_id, "device": sub.device_id, "start": "2026-07-15T00:00:00",
            "end": "2026-07-16T00:00:00", "reason": "Away"}
    r = admin_api.post("/api/v1/unavailabilities/", body, format="json")
    assert r.status_code == 400, r.content
    assert {"start", "end"} <= set(r.json())
    assert not Unavailability.objects.exists()
