"""A time typed in a local-time box that is not a time ("01:30 PST", "25:00", "1.30") is refused in words that say
what is wrong and how to type it. It came back as "Enter a list of values." (the message of the whole date-and-time
field given to its time box), which names nothing a person typed; the zone's abbreviation is what people type on
the fall-back night to say which 01:30 they mean."""

from __future__ import annotations

import datetime as dt
from html import unescape

import pytest

from events.models import Event, Unavailability
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
MESSAGE = ("Enter a valid time as HH:MM (24-hour clock); for a time the clocks repeat on the night they go back, "
           "add its UTC offset, e.g. 01:30 -07:00.")


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def _errors(response):
    assert response.status_code == 200
    return {name: [unescape(m) for m in msgs] for name, msgs in response.context["adminform"].form.errors.items()}


@pytest.mark.parametrize("typed", ["01:30 PST", "25:00", "1.30 pm"])
def test_the_event_form_says_what_a_time_must_look_like(admin_client_, typed):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    response = admin_client_.post("/admin/events/event/add/", {
        "program": program.pk, "name": "Night", "category": "economic", "direction": "reduce",
        "start_0": "2026-11-01", "start_1": typed, "end_0": "2026-11-01", "end_1": "05:00",
        "notification_at_0": "2026-10-31", "notification_at_1": "18:00",
        "revisions-TOTAL_FORMS": "0", "revisions-INITIAL_FORMS": "0"})
    assert _errors(response) == {"start": [MESSAGE]}
    assert not Event.objects.exists()


def test_the_unavailability_form_says_it_too_and_takes_the_offset(admin_client_):
    sub = active_participant(program=ProgramFactory(time_zone="America/Los_Angeles"))
    url = "/admin/events/unavailability/add/"
    data = {"enrollment": sub.enrollment_id, "start_0": "2030-11-03", "start_1": "01:30 PST",
            "end_0": "2030-11-03", "end_1": "05:00"}
    assert _errors(admin_client_.post(url, data)) == {"start": [MESSAGE]}
    assert admin_client_.post(url, {**data, "start_1": "01:30 -08:00"}).status_code == 302
    assert Unavailability.objects.get().start == dt.datetime(2030, 11, 3, 9, 30, tzinfo=UTC)  # 01:30 PST
