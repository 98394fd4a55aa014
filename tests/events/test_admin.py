"""Admin: changelists run a constant number of queries; actions call services."""

import datetime as dt
import re
from html import unescape

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.models import AuditEntry
from events import services
from events.choices import EventStatus
from events.models import Event, Unavailability
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, la

pytestmark = pytest.mark.django_db
JULY_NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.content.decode()


def add_event(program, day):
    active_participant(program=program, device_kwargs={"last_seen_at": JULY_NOW})
    event = EventFactory(program=program, start=la(2026, 7, day, 15), end=la(2026, 7, day, 16))
    services.event_schedule(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    services.event_reserve(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    return event


@pytest.mark.parametrize("model", ["event", "reservation", "participation", "dispatchmessage", "optout",
                                   "unavailability", "eventrevision"])
def test_changelists_constant_queries(admin_client_, program, model):
    add_event(program, 15)
    one, _ = queries(admin_client_, f"/admin/events/{model}/")
    for day in (16, 17, 20, 21):
        event = add_event(program, day)
        services.event_dispatch(event=event, now=JULY_NOW, actor=TEST_ACTOR)
    many, _ = queries(admin_client_, f"/admin/events/{model}/")
    assert one == many


def test_event_changelist_shows_counts_and_actions_call_services(admin_client_, program):
    add_event(program, 15)
    _, html = queries(admin_client_, "/admin/events/event/")
    assert '<td class="field-n_reserved">1</td>' in html
    draft = EventFactory(program=program, start=la(2026, 7, 22, 15), end=la(2026, 7, 22, 16))
    with time_machine.travel(JULY_NOW, tick=False):
        r = admin_client_.post("/admin/events/event/", {"action": "schedule", "_selected_action": [draft.pk]})
    assert r.status_code == 302
    draft.refresh_from_db()
    assert draft.status == EventStatus.SCHEDULED
    assert AuditEntry.objects.filter(object_type="events.event", object_id=str(draft.pk),
                                     to_status="scheduled").exists()
    assert Event.objects.count() == 2


def test_cancel_action_asks_for_the_reason_on_an_intermediate_page(admin_client_, program):
    event = add_event(program, 15)
    other = add_event(program, 16)
    selected = {"action": "cancel", "_selected_action": [event.pk, other.pk]}
    with time_machine.travel(JULY_NOW, tick=False):
        page = admin_client_.post("/admin/events/event/", selected)
        html = page.content.decode()
        assert page.status_code == 200
        assert "Cancel events" in html and str(event) in html and str(other) in html
        assert 'name="reason"' in html and 'name="apply"' in html
        assert html.count(f'name="_selected_action" value="{event.pk}"') == 1
        blank = admin_client_.post("/admin/events/event/", {**selected, "apply": "yes", "reason": "  "})
        assert blank.status_code == 200 and "This field is required." in blank.content.decode()
        assert set(Event.objects.values_list("status", flat=True)) == {EventStatus.SCHEDULED}
        done = admin_client_.post("/admin/events/event/", {**selected, "apply": "yes",
                                                           "reason": "CAISO withdrew the Flex Alert"}, follow=True)
    assert "Cancelled: 2." in done.content.decode()
    assert set(Event.objects.values_list("status", "cancel_reason")) == {
        (EventStatus.CANCELLED, "CAISO withdrew the Flex Alert")}
    entry = AuditEntry.objects.get(object_type="events.event", object_id=str(event.pk), to_status="cancelled")
    assert (entry.reason, entry.actor_label) == ("CAISO withdrew the Flex Alert", "admin")


def test_unavailability_add_form_names_the_fields_by_their_labels(admin_client_, program):
    """An End before the Start was 'Constraint “unavailability_end_after_start” is violated.'; a period already over
    came back as a message naming 'end'. Both are now errors on the End field, naming the fields as labelled."""
    sub = active_participant(program=program)
    url = "/admin/events/unavailability/add/"

    def errors(start, end):
        response = admin_client_.post(url, {"enrollment": sub.enrollment_id, "start_0": start[:10],
                                            "start_1": start[11:], "end_0": end[:10], "end_1": end[11:]})
        assert response.status_code == 200
        return {name: [unescape(m) for m in msgs] for name, msgs in response.context["adminform"].form.errors.items()}

    assert errors("2030-07-15 16:00", "2030-07-15 15:00") == {"end": ["End must be after Start."]}
    assert errors("2020-07-15 16:00", "2020-07-15 17:00") == {
        "end": ["The period is already over: End must be later than now."]}
    assert not Unavailability.objects.exists()
    page = unescape(admin_client_.post(url, {"enrollment": sub.enrollment_id, "start_0": "2030-07-15",
                                             "start_1": "16:00", "end_0": "2030-07-15", "end_1": "15:00"})
                    .content.decode())
    assert "Constraint" not in page and re.search(r"End must be after Start\.", page)
