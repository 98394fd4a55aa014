"""``GET /api/v1/aggregator/messages/``: an aggregator without a webhook (poll only) had no way to read the
dispatch, modification and cancellation messages cpm wrote for it; it now polls them, its own only, oldest first,
``after_id`` the last one it handled, in a constant number of queries."""

from __future__ import annotations

import pytest
import time_machine
from django.contrib.auth.models import Group

from cpm.base import roles
from events import services
from events.choices import DeliveryStatus
from tests.actors import TEST_ACTOR
from tests.events.test_api import JULY_NOW, participant, scheduled_event
from tests.factories.devices import AggregatorFactory
from tests.factories.events import la

pytestmark = pytest.mark.django_db
URL = "/api/v1/aggregator/messages/"


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(JULY_NOW, tick=False):
        yield


def _client(django_user_model, code):
    user = django_user_model.objects.create_user(f"{code}-api", password="pw-agg-123456")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    return user, AggregatorFactory(code=code, api_user=user, webhook_url="")


def test_a_poll_only_aggregator_reads_its_dispatch_and_cancellation(api_client, django_user_model, program,
                                                                    django_assert_max_num_queries):
    user, agg = _client(django_user_model, "ecobee")
    other_user, other = _client(django_user_model, "nest")
    participant(program, aggregator=agg, aggregator_device_id="e-1")
    participant(program, aggregator=other, aggregator_device_id="n-1")
    event = scheduled_event(program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 16))
    services.event_dispatch(event=event, now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
    services.event_cancel(event=event, reason="Forecast dropped", now=la(2026, 7, 15, 14), actor=TEST_ACTOR)

    api_client.force_authenticate(user)
    with django_assert_max_num_queries(8):
        body = api_client.get(URL).json()
    rows = body["results"]
    assert [(r["event"], r["kind"], r["delivery_status"]) for r in rows] == [
        (event.pk, "dispatch", DeliveryStatus.POLL_ONLY), (event.pk, "cancel", DeliveryStatus.POLL_ONLY)]
    assert rows[0]["payload"]["devices"] == ["e-1"] and rows[1]["payload"]["devices"] == ["e-1"]
    assert body["count"] == 2

    # Only those after the last one handled; by kind; a bad id is a 400 naming the parameter.
    assert [r["kind"] for r in api_client.get(URL, {"after_id": rows[0]["id"]}).json()["results"]] == ["cancel"]
    assert [r["kind"] for r in api_client.get(URL, {"kind": "cancel"}).json()["results"]] == ["cancel"]
    assert api_client.get(URL, {"after_id": rows[1]["id"]}).json()["results"] == []
    r = api_client.get(URL, {"after_id": "abc"})
    assert r.status_code == 400 and "after_id" in r.json()

    # Another aggregator sees its own messages only.
    api_client.force_authenticate(other_user)
    assert [r["payload"]["devices"] for r in api_client.get(URL).json()["results"]] == [["n-1"], ["n-1"]]


def test_staff_are_not_an_aggregator(admin_api):
    assert admin_api.get(URL).status_code == 403
