"""An object's audit trail (its History page) and an audit entry's page show what changed as people read it: one
"Label: value" line per change, times in the page's zone with its abbreviation. Before, the Changes column was a
Python dict printed as code, its times in UTC: an event created for 15:00 PDT read
``{'name': 'Heat', ..., 'start': '2026-07-15T22:00:00+00:00', ...}``; a CSR's unavailability, a dispatch
message's payload and a message's figures read the same way."""

from __future__ import annotations

import datetime as dt

import pytest

from cpm.base.admintime import readable_json
from cpm.base.audit import audit_record
from events.models import Event
from tests.actors import TEST_ACTOR
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def _event(zone_name="America/Los_Angeles"):
    program = ProgramFactory(time_zone=zone_name)
    event = Event.objects.create(program=program, name="Heat", start=dt.datetime(2026, 7, 15, 22, tzinfo=UTC),
                                 end=dt.datetime(2026, 7, 16, 1, tzinfo=UTC),
                                 notification_at=dt.datetime(2026, 7, 15, 20, tzinfo=UTC))
    audit_record(obj=event, action="create", now=dt.datetime(2026, 7, 14, 18, tzinfo=UTC), actor=TEST_ACTOR,
                 changes={"name": "Heat", "start": event.start.isoformat(), "end": event.end.isoformat(),
                          "notification_at": event.notification_at.isoformat(), "target_territories": [],
                          "target_device_types": ["thermostat", "battery"], "target_kw": None})
    audit_record(obj=event, action="update", now=dt.datetime(2026, 7, 14, 19, tzinfo=UTC), actor=TEST_ACTOR,
                 reason="forecast", changes={"forecast": {"devices": 36, "forecast_kw": "13.361"},
                                             "reservation_counts": {"reserved": 34, "offline": 2}})
    return event


def test_the_history_page_shows_changes_in_words_and_local_time(admin_client_):
    event = _event()
    page = admin_client_.get(f"/admin/events/event/{event.pk}/history/").content.decode()
    assert "Start: 2026-07-15 15:00 PDT" in page and "End: 2026-07-15 18:00 PDT" in page
    assert "Notification at: 2026-07-15 13:00 PDT" in page
    assert "Target device types: thermostat, battery" in page and "Target territories: none" in page
    assert "Forecast kW: 13.361" in page and "Reserved: 34" in page
    assert "+00:00" not in page and "{&#x27;" not in page and "&#x27;start&#x27;" not in page


def test_an_eastern_programs_history_reads_in_its_zone(admin_client_):
    event = _event("America/New_York")
    page = admin_client_.get(f"/admin/events/event/{event.pk}/history/").content.decode()
    assert "Start: 2026-07-15 18:00 EDT" in page and "22:00" not in page


def test_the_audit_entry_page_shows_changes_in_words_in_the_display_zone(admin_client_, settings):
    settings.CPM_DISPLAY_TIME_ZONE = "America/Los_Angeles"
    event = _event()
    from cpm.models import AuditEntry

    entry = AuditEntry.objects.get(object_id=str(event.pk), object_type="events.event", action="create")
    page = admin_client_.get(f"/admin/cpm/auditentry/{entry.pk}/change/").content.decode()
    assert "Start: 2026-07-15 15:00 PDT" in page
    assert "+00:00" not in page and "&quot;start&quot;" not in page


def test_readable_json_on_dst_days():
    from zoneinfo import ZoneInfo

    la = ZoneInfo("America/Los_Angeles")
    # The repeated autumn hour reads with the abbreviation that tells the two apart.
    text = str(readable_json({"first": "2026-11-01T08:30:00+00:00", "second": "2026-11-01T09:30:00Z"}, tz=la))
    assert "First: 2026-11-01 01:30 PDT" in text and "Second: 2026-11-01 01:30 PST" in text
    escaped = '<ul class="readable-json"><li>Note: &lt;b&gt;x&lt;/b&gt;</li></ul>'
    assert str(readable_json({"note": "<b>x</b>"}, tz=la)) == escaped
    # Dates and plain text stay as they are.
    assert "Installed on: 2026-07-01" in str(readable_json({"installed_on": "2026-07-01"}, tz=la))
