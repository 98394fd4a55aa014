"""What a VEN reports in the spec's own vocabulary: the OpenADR 3 ``OPERATING_STATE`` enumerations (CTA-2045 states:
curtailed, opted out, error, normal) become participation outcomes, not per-resource "unknown" errors."""

from __future__ import annotations

import pytest

from .conftest import real_now, tomorrow_la

pytestmark = pytest.mark.django_db(transaction=True)


def _dispatched(world):
    from events import services as event_services
    from tests.actors import TEST_ACTOR

    event = world.scheduled_event()
    return event_services.event_dispatch(event=event, now=real_now(), actor=TEST_ACTOR)


def _state_report(world, event, states: dict[str, str], *, code="agg-a", start=None):
    start = start or tomorrow_la(15)
    return world.http("POST", "/reports", world.token(code), json={
        "programID": str(world.program.pk), "eventID": str(event.pk), "clientName": f"ven-{code}",
        "resources": [{"resourceName": name, "intervals": [{
            "id": 0, "intervalPeriod": {"start": start.isoformat(), "duration": "PT1H"},
            "payloads": [{"type": "OPERATING_STATE", "values": [state]}]}]} for name, state in states.items()]})


def test_the_specs_operating_states_become_participation_outcomes(world):
    from cpm.openadr3.models import Report
    from events.models import OptOut, Participation

    world.register_vens()
    event = _dispatched(world)
    response = _state_report(world, event, {"agg-a-t0": "RUNNING_CURTAILED", "agg-a-t1": "SGD_ERROR_CONDITION"})
    assert response.status_code == 201, response.text
    response = _state_report(world, event, {"agg-b-t0": "IDLE_OPTED_OUT", "agg-b-t1": "RUNNING_NORMAL"},
                             code="agg-b", start=tomorrow_la(16))
    assert response.status_code == 201, response.text
    statuses = dict(Participation.objects.filter(event=event).values_list("device__aggregator_device_id", "status"))
    assert statuses == {"agg-a-t0": "participated", "agg-a-t1": "failed", "agg-b-t0": "opted_out",
                        "agg-b-t1": "non_responsive"}
    assert OptOut.objects.get(participation__event=event).at == tomorrow_la(16)
    assert [r.results["errors"] for r in Report.objects.order_by("pk")] == [[], []]
    assert Report.objects.order_by("pk").first().results["outcomes"] == {"agg-a-t0": "recorded",
                                                                         "agg-a-t1": "recorded"}


@pytest.mark.parametrize("state,status", [("IDLE_CURTAILED", "participated"), ("RUNNING_HEIGHTENED", "participated"),
                                          ("IDLE_HEIGHTENED", "participated"), ("RUNNING_OPTED_OUT", "opted_out"),
                                          ("ERROR", "failed"), ("NORMAL", "non_responsive"),
                                          ("IDLE_NORMAL", "non_responsive")])
def test_each_operating_state_of_the_spec_has_its_outcome(state, status):
    from cpm.openadr3 import documents as docs

    assert docs.OUTCOME_VALUES[state] == status
