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
