"""Bad input to every write of the VTN (3.0.1 and 3.1): a body that is not JSON, not an object, or an object of the
wrong types is a 400 problem response naming what is wrong, never a 500, and nothing is written."""

import pytest

from cpm.openadr3.models import Report, Resource, Subscription, Ven
from events.models import Event
from programs.models import Program

BODIES = [
    ("not json", b"{not json"),
    ("an array", b"[1, 2]"),
    ("a string", b'"program"'),
    ("wrong types", b'{"programName": 5, "eventName": [], "venName": {}, "clientName": 7, "objectOperations": "x",'
                    b' "intervals": "soon", "resources": 3, "programID": {"a": 1}, "resourceName": []}'),
]
WRITES = [("POST", "/programs", "bl"), ("POST", "/events", "bl"), ("POST", "/vens", "bl"),
          ("POST", "/subscriptions", "bl"), ("POST", "/reports", "agg-a"), ("POST", "/subscriptions", "agg-a"),
          ("POST", "/3.1/programs", "bl"), ("POST", "/3.1/events", "bl"), ("POST", "/3.1/vens", "bl"),
          ("POST", "/3.1/resources", "bl"), ("POST", "/3.1/subscriptions", "bl"), ("POST", "/3.1/reports", "agg-a")]


@pytest.mark.parametrize("label,body", BODIES, ids=[b[0] for b in BODIES])
def test_bad_bodies_are_400_problems_and_write_nothing(world, label, body):
    world.register_vens()  # a VEN client reports only once its VEN is registered
    counts = [m.objects.count() for m in (Program, Event, Ven, Resource, Subscription, Report)]
    puts = [("PUT", f"/programs/{world.program.pk}", "bl"), ("PUT", f"/3.1/programs/{world.program.pk}", "bl")]
    for method, path, who in WRITES + puts:
        response = world.http(method, path, world.token(who), data=body,
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (path, who, response.status_code, response.text[:300])
        problem = response.json()
        assert response.headers["Content-Type"].startswith("application/problem+json"), path
        assert problem["status"] == 400 and problem["title"] and problem.get("detail"), (path, problem)
    assert [m.objects.count() for m in (Program, Event, Ven, Resource, Subscription, Report)] == counts
