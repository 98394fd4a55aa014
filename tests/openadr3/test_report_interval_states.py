"""A VEN reports a device's OPERATING_STATE per interval of the event, as the spec's report descriptors ask
(numIntervals -1: every interval). The states were recorded one after another and the first terminal one stuck: a
device whose first quarter-hour was still RUNNING_NORMAL (the randomized start cpm itself publishes) and which then
curtailed for the rest of the event was recorded non_responsive (paid nothing), and a NORMAL interval before an
opt-out hid the opt-out. A device's outcome is now read from all its intervals: an opt-out (after any curtailment)
wins, else a curtailed interval is participation, else an error is a failure, else it did not respond."""

import datetime as dt

import pytest

from .conftest import tomorrow_la
from .test_api import _dispatched_event

pytestmark = pytest.mark.django_db(transaction=True)


def _resource(name: str, states: list[str]) -> dict:
    start = tomorrow_la(15)
    return {"resourceName": name, "intervals": [
        {"id": i, "intervalPeriod": {"start": (start + dt.timedelta(minutes=15 * i)).isoformat(), "duration": "PT15M"},
         "payloads": [{"type": "OPERATING_STATE", "values": [s]}]} for i, s in enumerate(states)]}


def test_a_device_is_judged_on_all_its_intervals(world):
    from cpm.openadr3.models import Report
    from events.models import OptOut, Participation

    world.register_vens()
    event = _dispatched_event(world)
    body = {"programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a", "resources": [
        _resource("agg-a-t0", ["RUNNING_NORMAL", "RUNNING_CURTAILED", "RUNNING_CURTAILED", "IDLE_CURTAILED"]),
        _resource("agg-a-t1", ["IDLE_NORMAL", "RUNNING_CURTAILED", "IDLE_OPTED_OUT", "IDLE_OPTED_OUT"])]}
    response = world.http("POST", "/reports", world.token("agg-a"), json=body)
    assert response.status_code == 201, response.text
    statuses = dict(Participation.objects.filter(event=event).values_list("device__aggregator_device_id", "status"))
    assert statuses == {"agg-a-t0": "participated", "agg-a-t1": "opted_out", "agg-b-t0": "dispatched",
                        "agg-b-t1": "dispatched"}
    opt_out = OptOut.objects.get(participation__event=event)
    assert opt_out.at == tomorrow_la(15) + dt.timedelta(minutes=30)
    results = Report.objects.get().results
    assert results["errors"] == []
    assert results["outcomes"] == {"agg-a-t0": "recorded", "agg-a-t1": "recorded"}


def test_normal_then_error_is_a_failure_and_only_normal_is_non_responsive(world):
    from events.models import Participation

    world.register_vens()
    event = _dispatched_event(world)
    body = {"programID": str(world.program.pk), "eventID": str(event.pk), "clientName": "ven-agg-a", "resources": [
        _resource("agg-a-t0", ["RUNNING_NORMAL", "ERROR"]), _resource("agg-a-t1", ["NORMAL", "IDLE_NORMAL"])]}
    response = world.http("POST", "/reports", world.token("agg-a"), json=body)
    assert response.status_code == 201, response.text
    statuses = dict(Participation.objects.filter(event=event, device__aggregator__code="agg-a")
                    .values_list("device__aggregator_device_id", "status"))
    assert statuses == {"agg-a-t0": "failed", "agg-a-t1": "non_responsive"}
