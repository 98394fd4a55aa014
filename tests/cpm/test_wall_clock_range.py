"""A wall-clock time at the edge of the calendar (9999-12-31 23:00 in Los Angeles is past year 9999 in UTC;
0001-01-01 00:30 in Tokyo before year 1) is refused in words naming the field, not an OverflowError: it was an
HTTP 500 on the admin's event page and the events API (QA guard)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cpm.base.timeutils import WallClockError, local_wall_to_utc_strict
from events.models import Event

LA, TOKYO = ZoneInfo("America/Los_Angeles"), ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(("wall", "tz"), [(dt.datetime(9999, 12, 31, 23), LA), (dt.datetime(1, 1, 1, 0, 30), TOKYO),
                                          (dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=8))),
                                           LA)])
def test_a_time_beyond_the_calendar_is_a_wall_clock_error(wall, tz):
    with pytest.raises(WallClockError, match="Start: .* out of range"):
        local_wall_to_utc_strict(wall, tz, field="Start")


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.mark.django_db
def test_event_admin_and_api_refuse_year_9999_in_words(client, admin_user, admin_api):
    from tests.factories.programs import ProgramFactory

    program = ProgramFactory(code="smart-ac")
    client.force_login(admin_user)
    r = client.post("/admin/events/event/add/", {
        "program": program.pk, "name": "far", "category": "economic", "direction": "reduce",
        "start_0": "9999-12-31", "start_1": "23:00", "end_0": "9999-12-31", "end_1": "23:30"})
    assert r.status_code == 200 and "out of range" in r.content.decode()
    r = admin_api.post("/api/v1/events/", {"program": "smart-ac", "name": "far", "start": "9999-12-31T23:00:00",
                                           "end": "9999-12-31T23:30:00"}, format="json")
    assert r.status_code == 400, r.content
    assert not Event.objects.exists()
