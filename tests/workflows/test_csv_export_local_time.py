"""A list exported as CSV carries each time as a person reads it too: beside the UTC ISO 8601 columns (kept for
programs), a "(local time)" column per time in the row's program zone with its abbreviation. Before, a program
administrator's export of the events list read ``2026-07-15T23:00:00+00:00`` for a 16:00 PDT event and nothing
else."""

import csv
import datetime as dt
import io

import pytest

from cpm.base import roles
from events.models import Event
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EventFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def export(client, url, pks):
    response = client.post(url, {"action": "export_csv", "_selected_action": [str(pk) for pk in pks]})
    assert response.status_code == 200, response.content[:300]
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_the_events_export_has_local_time_columns_in_each_programs_zone(role_client):
    west = EventFactory(program=ProgramFactory(time_zone="America/Los_Angeles"), name="West")
    east = Event.objects.create(program=ProgramFactory(time_zone="America/New_York"), name="East",
                                start=dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC),  # 01:30 EDT, the first one
                                end=dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC),  # 01:30 EST, the second one
                                notification_at=dt.datetime(2026, 10, 31, 20, tzinfo=UTC))
    rows = export(role_client(roles.PROGRAM_ADMIN), "/admin/events/event/", [west.pk, east.pk])
    header, body = rows[0], {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert header[:6] == ["name", "program", "category", "status", "start", "end"]
    assert "start (local time)" in header and "end (local time)" in header
    assert body["West"]["start"] == "2026-07-15T23:00:00+00:00"
    assert (body["West"]["start (local time)"], body["West"]["end (local time)"]) == (
        "2026-07-15 16:00 PDT", "2026-07-15 19:00 PDT")
    assert (body["East"]["start (local time)"], body["East"]["end (local time)"]) == (
        "2026-11-01 01:30 EDT", "2026-11-01 01:30 EST")


def test_the_local_columns_cost_no_query_per_row(role_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = role_client(roles.PROGRAM_ADMIN)
    one = [EventFactory(program=ProgramFactory(time_zone="America/Chicago")).pk]
    two = one + [EventFactory(program=ProgramFactory(time_zone="America/Denver")).pk]
    export(client, "/admin/events/event/", one)
    with CaptureQueriesContext(connection) as few:
        export(client, "/admin/events/event/", one)
    with CaptureQueriesContext(connection) as more:
        rows = export(client, "/admin/events/event/", two)
    assert len(more) == len(few)
    assert {r[rows[0].index("start (local time)")][-3:] for r in rows[1:]} == {"CDT", "MDT"}
