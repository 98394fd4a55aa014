"""An OpenADR client moving an event's start (PUT /events/{id}) is told in OpenADR's terms why it cannot: it never
sends cpm's notification_at, so 'notification_at must be at or before start.' named a field it does not have."""

import datetime as dt

import pytest

from events.models import Event

from .conftest import tomorrow_la

pytestmark = pytest.mark.django_db(transaction=True)


def _event(program_id: str, start: str) -> dict:
    return {"programID": program_id, "eventName": "Moved", "intervalPeriod": {"start": start, "duration": "PT2H"},
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]}


def test_moving_an_events_start_into_the_past_names_the_start(world):
    world.register_vens()
    token = world.token("bl")
    program = str(world.program.pk)
    made = world.http("POST", "/events", token, json=_event(program, tomorrow_la(15).isoformat()))
    assert made.status_code == 201, made.text
    response = world.http("PUT", f"/events/{made.json()['id']}", token,
                          json=_event(program, "2020-07-01T15:00:00-07:00"))
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "intervalPeriod.start: The event must start in the future."
    assert Event.objects.get().start == tomorrow_la(15)


def test_moving_an_events_start_before_its_notice_names_the_notice_in_the_programs_zone(world):
    from events import services as event_services
    from tests.actors import TEST_ACTOR

    world.register_vens()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    event = event_services.event_create(program=world.program, name="Noticed", start=tomorrow_la(15),
                                        end=tomorrow_la(17), notification_at=tomorrow_la(13), now=now,
                                        actor=TEST_ACTOR)
    event_services.event_schedule(event=event, now=now, actor=TEST_ACTOR)
    response = world.http("PUT", f"/events/{event.pk}", world.token("bl"),
                          json=_event(str(world.program.pk), tomorrow_la(12).isoformat()))
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("intervalPeriod.start: ") and "notification_at" not in detail, detail
    assert "1:00 PM" in detail or "13:00" in detail, detail
    assert Event.objects.get().start == tomorrow_la(15)
