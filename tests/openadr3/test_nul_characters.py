"""A NUL character (``\\x00``) cannot be stored by PostgreSQL (text or jsonb) nor matched by it: in a VTN query
parameter or anywhere in a body it is a 400 problem naming where it is (as the rest of the API refuses it in
filters), never an HTTP 500, and nothing is written."""

import pytest

from cpm.openadr3.models import Subscription, Ven

pytestmark = pytest.mark.django_db(transaction=True)


def _problem(response, field: str) -> str:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert detail.startswith(field) and "NUL" in detail, detail
    return detail


@pytest.mark.parametrize("query", ["/vens?venName=a%00b", "/reports?clientName=%00", "/events?programID=1%00",
                                   "/subscriptions?targetType=GROUP&targetValues=x%00"])
def test_a_nul_in_a_query_parameter_is_a_400(world, query):
    _problem(world.http("GET", query, world.token("bl")), query.split("?")[1].split("&")[-1].split("=")[0])


def test_a_nul_anywhere_in_a_body_is_a_400_and_writes_nothing(world, receiver):
    token = world.token("agg-a")
    _problem(world.http("POST", "/vens", token, json={
        "venName": "ven-agg-a", "attributes": [{"type": "LOCATION", "values": ["north\x00"]}]}),
        "attributes[0].values[0]")
    assert not Ven.objects.exists()
    _problem(world.http("POST", "/subscriptions", token, json={
        "clientName": "ven-agg-a", "objectOperations": [{"objects": ["EVENT"], "operations": ["POST"],
                                                         "callbackUrl": f"{receiver.url}/\x00",
                                                         "bearerToken": "t"}]}),
        "objectOperations[0].callbackUrl")
    assert not Subscription.objects.exists()


@pytest.mark.parametrize("depth", [5000, 100000])
def test_a_deeply_nested_body_is_a_400_not_a_500(world, depth):
    """Lists nested thousands deep (valid JSON) exhausted Python's recursion: in the body check, or in the JSON
    parser itself."""
    response = world.http("POST", "/vens", world.token("agg-a"), data='{"venName": "ven-agg-a", "attributes": '
                          + "[" * depth + "]" * depth + "}", headers={"Content-Type": "application/json"})
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert not Ven.objects.exists()
