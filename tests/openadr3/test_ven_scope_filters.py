"""A VEN client's filters answer on what it may see: another VEN's name or resources in ``targetType`` /
``targetValues`` tell it nothing about the events also targeted at that VEN."""

import pytest

from .conftest import tomorrow_la
from .test_api import _event_request

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_ven_filtering_events_by_another_vens_name_learns_nothing_of_that_ven(world):
    world.register_vens()
    bl = world.bl()
    program = str(world.program.pk)
    both = bl.events.create_event(new_event=_event_request(program, start=tomorrow_la(15), level=1, name="Both"))
    only_b = bl.events.create_event(new_event=_event_request(program, start=tomorrow_la(18), level=1, name="B only",
                                                             targets=[("VEN_NAME", ["ven-agg-b"])]))
    token_a, token_b = world.token("agg-a"), world.token("agg-b")

    def names(token, query):
        response = world.http("GET", f"/events?{query}", token)
        assert response.status_code == 200, response.text
        return [e["eventName"] for e in response.json()]

    # A sees the shared event, whose targets (as A reads them) name only ven-agg-a.
    shown = world.http("GET", f"/events/{both.id}", token_a).json()
    assert shown["targets"][0] == {"type": "VEN_NAME", "values": ["ven-agg-a"]}
    assert names(token_a, "targetType=VEN_NAME&targetValues=ven-agg-a") == ["Both"]
    # Filtering by B's name must not reveal which of A's events B also receives.
    assert names(token_a, "targetType=VEN_NAME&targetValues=ven-agg-b") == []
    assert names(token_b, "targetType=VEN_NAME&targetValues=ven-agg-b") == ["Both", "B only"]
    # Business logic still filters on every VEN.
    assert names(world.token("bl"), "targetType=VEN_NAME&targetValues=ven-agg-b") == ["Both", "B only"]
    assert only_b.id


def test_a_ven_cannot_take_another_aggregators_code_as_its_name(world):
    """Business logic names an aggregator's VEN by the aggregator's code (registering it, targeting events at it):
    VEN agg-a calling itself "agg-b" would block agg-b's registration and receive the events meant for agg-b."""
    from cpm.openadr3.models import Ven

    token_a, token_b, token_bl = world.token("agg-a"), world.token("agg-b"), world.token("bl")
    response = world.http("POST", "/vens", token_a, json={"venName": "agg-b"})
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == "The VEN name 'agg-b' is the code of another aggregator."
    assert not Ven.objects.exists()
    # Its own code, or any other name, is fine; renaming onto another's code is refused the same way.
    ven_a = world.http("POST", "/vens", token_a, json={"venName": "agg-a"})
    assert ven_a.status_code == 201, ven_a.text
    response = world.http("PUT", f"/vens/{ven_a.json()['id']}", token_a, json={"venName": "agg-b"})
    assert response.status_code == 409, response.text
    assert Ven.objects.get().ven_name == "agg-a"
    # Business logic registers agg-b's VEN by its code, and an event targeted at "agg-b" reaches agg-b only.
    assert world.http("POST", "/vens", token_bl, json={"venName": "agg-b"}).status_code == 201
    event = world.http("POST", "/events", token_bl, json={
        "programID": str(world.program.pk), "eventName": "For B",
        "intervalPeriod": {"start": tomorrow_la(15).isoformat(), "duration": "PT2H"},
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
        "targets": [{"type": "VEN_NAME", "values": ["agg-b"]}]})
    assert event.status_code == 201, event.text
    assert world.http("GET", "/events", token_a).json() == []
    assert [e["eventName"] for e in world.http("GET", "/events", token_b).json()] == ["For B"]
