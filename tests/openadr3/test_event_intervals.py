"""Business logic sends an OpenADR event of several intervals (POST /events): cpm keeps an event as one window
[start, end) with one kW target, so intervals with a gap between them (15:00-16:00 and 17:00-18:00) were read as
15:00-18:00, and per-interval kW targets (-5 then -10) as the last one (10 kW): participants were dispatched through
the gap and asked for a kW nobody sent for the whole window. Both are now a 400 problem naming the interval, and
nothing is created; consecutive intervals with one target are still one event."""

import pytest

from events.models import Event

from .conftest import tomorrow_la

pytestmark = pytest.mark.django_db(transaction=True)


def _interval(i: int, hour: int | None, kw: float | None = None) -> dict:
    payloads = [{"type": "SIMPLE", "values": [1]}]
    if kw is not None:
        payloads.append({"type": "DISPATCH_SETPOINT_RELATIVE", "values": [kw]})
    interval = {"id": i, "payloads": payloads}
    if hour is not None:
        interval["intervalPeriod"] = {"start": tomorrow_la(hour).isoformat(), "duration": "PT1H"}
    return interval


def _event(program_id: str, intervals: list[dict]) -> dict:
    return {"programID": program_id, "eventName": "Two parts",
            "intervalPeriod": {"start": tomorrow_la(15).isoformat(), "duration": "PT1H"}, "intervals": intervals}


@pytest.mark.parametrize("base", ["", "/3.1"])
def test_intervals_with_a_gap_are_a_400_naming_the_interval(world, base):
    world.register_vens()
    body = _event(str(world.program.pk), [_interval(0, 15), _interval(1, 17)])
    response = world.http("POST", f"{base}/events", world.token("bl"), json=body)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert detail.startswith("intervals[1].intervalPeriod.start: "), detail
    assert "16:00" in detail and "17:00" in detail, detail
    assert Event.objects.count() == 0


def test_intervals_with_different_kw_targets_are_a_400_naming_the_payload(world):
    world.register_vens()
    body = _event(str(world.program.pk), [_interval(0, None, -5), _interval(1, None, -10)])
    response = world.http("POST", "/events", world.token("bl"), json=body)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("intervals[1].payloads[1].values: "), detail
    assert "5" in detail and "10" in detail, detail
    assert Event.objects.count() == 0


def test_a_put_with_a_gap_is_refused_and_the_event_is_unchanged(world):
    world.register_vens()
    event = world.scheduled_event()
    before = (event.start, event.end)
    body = _event(str(world.program.pk), [_interval(0, 15), _interval(1, 17)])
    response = world.http("PUT", f"/events/{event.pk}", world.token("bl"), json=body)
    assert response.status_code == 400, response.text
    event.refresh_from_db()
    assert (event.start, event.end) == before


def test_consecutive_intervals_with_one_target_are_one_event(world):
    world.register_vens()
    body = _event(str(world.program.pk), [_interval(0, None, -5), _interval(1, None, -5), _interval(2, 17, -5)])
    response = world.http("POST", "/events", world.token("bl"), json=body)
    assert response.status_code == 201, response.text
    event = Event.objects.get()
    assert (event.start, event.end) == (tomorrow_la(15), tomorrow_la(18))
    assert str(event.target_kw) == "5.000"
