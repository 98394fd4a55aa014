"""Query parameters never give HTTP 500 and are never silently ignored (issue 15)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories.events import EventFactory
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(db):
    program = ProgramFactory()
    return [EventFactory(program=program, start=dt.datetime(2026, 7, d, 22, tzinfo=dt.UTC)) for d in (1, 2, 3)]


def test_offsets_beyond_postgresql_range_are_instants_not_500(admin_client, events):
    # 2026-07-02T18:00+20:00 is 2026-07-01T22:00Z: the first event starts exactly then (inclusive).
    response = admin_client.get("/api/v1/events/", {"start_after": "2026-07-02T18:00:00+20:00"})
    assert response.status_code == 200
    assert response.json()["count"] == 3
    response = admin_client.get("/api/v1/events/", {"start_before": "2026-07-01T10:00:00-23:00"})
    assert response.status_code == 200  # 2026-07-02T09:00Z: only the first event starts before
    assert response.json()["count"] == 1


def test_nul_character_is_400_naming_the_parameter(admin_client, events):
    response = admin_client.get("/api/v1/events/", {"program": "A\x00B"})
    assert response.status_code == 400
    assert response.json()["program"] == ["Null characters are not allowed."]
    assert admin_client.get("/api/v1/events/", {"search": "x\x00"}).status_code == 400


def test_unknown_choice_and_bad_date_are_400_naming_the_parameter(admin_client, events):
    response = admin_client.get("/api/v1/events/", {"status": "exploded"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "exploded" in body["status"][0]
    response = admin_client.get("/api/v1/events/", {"start_after": "yesterday"})
    assert response.status_code == 400 and "start_after" in response.json()


def test_unknown_ordering_is_400_listing_the_allowed_fields(admin_client, events):
    response = admin_client.get("/api/v1/programs/", {"ordering": "-nonsense"})
    assert response.status_code == 400
    assert response.json()["ordering"][0].startswith("Cannot order by -nonsense; allowed:")


def test_absurd_page_numbers_are_404_not_500(admin_client, events):
    response = admin_client.get("/api/v1/events/", {"page": "1533902520161045577728"})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert admin_client.get("/api/v1/events/", {"page": "0"}).status_code == 404


def test_unknown_api_url_is_json_404(client, settings):
    settings.DEBUG = False
    response = client.get("/api/v1/no-such-resource/1.5/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("account", ["DEMO\x00-1", 2**70, "9" * 30, "x" * 400])
def test_natural_keys_refuse_nul_huge_ids_and_long_text_as_400(admin_client, account):
    """Found by the API fuzzing: a NUL in a natural key reached PostgreSQL (HTTP 500); an id beyond a bigint too."""
    response = admin_client.post("/api/v1/enrollments/", {"account": account, "service_point": "SP-1",
                                                          "program": "nope"}, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "account" in body


@pytest.mark.parametrize("url,param", [
    ("/api/v1/event-settlements/", "program"), ("/api/v1/event-settlements/", "account"),
    ("/api/v1/customer-settlements/", "export_batch"), ("/api/v1/settlement-batches/", "event"),
    ("/api/v1/bill-credit-exports/", "program"), ("/api/v1/subscriptions/", "device"),
    ("/api/v1/mutual-exclusions/", "program"),
])
@pytest.mark.parametrize("value", ["99999999999999999999", "1.5", "1_5"])
def test_id_filters_refuse_huge_and_fractional_ids_as_400(admin_client, url, param, value):
    # A database id is a whole number that fits 64 bits: 1e20 was an HTTP 500 (OverflowError on SQLite), 1.5
    # was silently read as id 1 and 1_5 as id 15 (Python's digit grouping).
    response = admin_client.get(url, {param: value})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and param in body


@pytest.mark.parametrize("param,value", [("start_after", "0001-01-01T00:00:00+14:00"),
                                         ("start_before", "9999-12-31T23:00:00-10:00")])
def test_date_times_past_the_calendar_in_utc_are_400_naming_the_parameter(admin_client, events, param, value):
    # Valid ISO instants whose UTC time falls before year 1 or after 9999: an OverflowError (HTTP 500) before.
    response = admin_client.get("/api/v1/events/", {param: value})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and param in response.json()
