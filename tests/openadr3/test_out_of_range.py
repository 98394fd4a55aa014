"""Numbers and instants beyond what a datetime, a float or cpm's kW column holds are the client's error (a 400
problem naming the field, or the resource's error in a report's results), never an HTTP 500 or a 409."""

import pytest

from cpm.openadr3.models import Report
from events.models import Event
from settlement.models import IntervalDay

from .conftest import tomorrow_la

pytestmark = pytest.mark.django_db(transaction=True)

HUGE_INT = "1" + "0" * 400


def _post_raw(world, path: str, token: str, text: str):
    return world.http("POST", path, token, data=text, headers={"Content-Type": "application/json"})


def _event_text(program_id: str, *, start: str, duration: str = "PT2H", kw: str | None = None) -> str:
    payloads = f'[{{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [{kw}]}}]' if kw is not None else "[]"
    return (f'{{"programID": "{program_id}", "eventName": "Edge", "intervalPeriod": {{"start": "{start}", '
            f'"duration": "{duration}"}}, "intervals": [{{"id": 0, "payloads": {payloads}}}]}}')


def _problem(response, field: str) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert detail.startswith(field), detail
    return detail


@pytest.mark.parametrize("kw", [HUGE_INT, "-" + HUGE_INT, "1e12"])
def test_a_kw_target_no_event_can_hold_is_a_400(world, kw):
    response = _post_raw(world, "/events", world.token("bl"),
                         _event_text(str(world.program.pk), start=tomorrow_la(15).isoformat(), kw=kw))
    detail = _problem(response, "intervals[0].payloads[0].values")
    assert "999,999,999.999 kW" in detail
    assert Event.objects.count() == 0


@pytest.mark.parametrize("start,duration", [("9999-12-31T23:00:00Z", "PT2H"), (None, "P99999999D")])
def test_an_event_ending_beyond_year_9999_is_a_400(world, start, duration):
    response = _post_raw(world, "/events", world.token("bl"), _event_text(
        str(world.program.pk), start=start or tomorrow_la(15).isoformat(), duration=duration))
    assert "beyond year 9999" in _problem(response, "intervals[0].intervalPeriod")
    assert Event.objects.count() == 0


def _report_text(world, event, *, start: str, duration: str = "PT1H", usage: str = "1") -> str:
    return (f'{{"programID": "{world.program.pk}", "eventID": "{event.pk}", "clientName": "ven-agg-a", '
            f'"resources": [{{"resourceName": "agg-a-t0", "intervals": [{{"id": 0, "intervalPeriod": '
            f'{{"start": "{start}", "duration": "{duration}"}}, "payloads": [{{"type": "USAGE", '
            f'"values": [{usage}]}}]}}]}}]}}')


@pytest.mark.parametrize("start,duration", [("9999-12-31T23:00:00Z", "PT1H"), (None, "P999999999D")])
def test_a_report_interval_ending_beyond_year_9999_is_a_400_and_stores_nothing(world, start, duration):
    world.register_vens()
    event = world.scheduled_event()
    response = _post_raw(world, "/reports", world.token("agg-a"), _report_text(
        world, event, start=start or tomorrow_la(15).isoformat(), duration=duration))
    assert "beyond year 9999" in _problem(response, "resources[0].intervals[0].intervalPeriod")
    assert Report.objects.count() == 0


@pytest.mark.parametrize("usage", ["1e400", "-1e400"])
def test_a_number_read_as_infinity_is_a_400_naming_its_place_and_stores_nothing(world, usage):
    """``1e400`` is read as an infinite float, which no JSON column stores (it was a 409 'conflicts with existing
    data' from the database)."""
    world.register_vens()
    event = world.scheduled_event()
    response = _post_raw(world, "/reports", world.token("agg-a"), _report_text(
        world, event, start=tomorrow_la(15).isoformat(), usage=usage))
    _problem(response, "resources[0].intervals[0].payloads[0].values[0]")
    assert Report.objects.count() == 0
    ven = world.http("GET", "/vens", world.token("agg-a")).json()[0]
    response = world.http("PUT", f"/vens/{ven['id']}", world.token("agg-a"), data=(
        f'{{"venName": "ven-agg-a", "attributes": [{{"type": "SIZE", "values": [{usage}]}}]}}'),
        headers={"Content-Type": "application/json"})
    _problem(response, "attributes[0].values[0]")


@pytest.mark.parametrize("usage", [HUGE_INT, "-" + HUGE_INT])
def test_a_usage_no_float_holds_is_the_resources_error_not_a_500(world, usage):
    world.register_vens()
    event = world.scheduled_event()
    response = _post_raw(world, "/reports", world.token("agg-a"), _report_text(
        world, event, start=tomorrow_la(15).isoformat(), usage=usage))
    assert response.status_code == 201, (response.status_code, response.text[:300])
    report = Report.objects.get()
    assert [e["resource"] for e in report.results["errors"]] == ["agg-a-t0"]
    assert "is not a number of kWh" in report.results["errors"][0]["detail"]
    assert "meter_data_load" not in report.results
    assert IntervalDay.objects.count() == 0
