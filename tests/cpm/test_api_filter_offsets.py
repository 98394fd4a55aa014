"""A date-time query parameter without a UTC offset is refused, naming the parameter, as the API's date-time inputs
are (``cpm.base.api.AwareDateTimeField``). It used to be read as UTC without a word: an integrator in Los Angeles
asking for ``start_after=2026-07-15T00:00`` (the local day) got the events from 17:00 PDT on July 14, and a
``2026-11-01T01:30`` (the repeated hour of the fall-back night) was taken as 01:30 UTC, neither of the two local
01:30s."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories.devices import DeviceFactory
from tests.factories.events import EventFactory
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def events(db):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    # 2026-07-14 18:00 PDT and 2026-07-15 16:00 PDT
    return [EventFactory(program=program, start=dt.datetime(2026, 7, 15, 1, tzinfo=UTC)),
            EventFactory(program=program, start=dt.datetime(2026, 7, 15, 23, tzinfo=UTC))]


@pytest.mark.parametrize("param,value", [("start_after", "2026-07-15T00:00"), ("start_before", "2026-11-01T01:30:00"),
                                         ("start_after", "2026-07-15")])
def test_an_event_filter_without_an_offset_is_400_naming_it(admin_client, events, param, value):
    response = admin_client.get("/api/v1/events/", {param: value})
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["code"] == "invalid"
    assert body[param] == ["Give the time with its UTC offset (e.g. 2026-07-15T15:30:00-07:00 or "
                           "2026-07-15T22:30:00Z): a time without one is ambiguous."]


def test_an_event_filter_with_an_offset_still_filters(admin_client, events):
    response = admin_client.get("/api/v1/events/", {"start_after": "2026-07-15T00:00:00-07:00"})
    assert response.status_code == 200
    assert [e["start"] for e in response.json()["results"]] == ["2026-07-15T23:00:00Z"]
    response = admin_client.get("/api/v1/events/", {"start_after": "2026-07-15T00:00:00Z"})
    assert response.json()["count"] == 2


def test_a_device_seen_since_without_an_offset_is_400(admin_client):
    DeviceFactory(last_seen_at=dt.datetime(2026, 7, 15, 12, tzinfo=UTC))
    response = admin_client.get("/api/v1/devices/", {"seen_since": "2026-07-15T10:00"})
    assert response.status_code == 400
    assert "seen_since" in response.json()
    response = admin_client.get("/api/v1/devices/", {"seen_since": "2026-07-15T10:00Z"})
    assert response.status_code == 200 and response.json()["count"] == 1
