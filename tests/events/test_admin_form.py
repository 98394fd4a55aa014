"""Issue 17: the event add form a program administrator types in. Without ``?program=`` the labels say the times are
read in the selected program's zone (each program's zone next to its name) and they are; with it, the program's
zone is named. Targeting lists are ticked values listing the allowed codes (never JSON), refusals in words; the add
form asks only what a person decides."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from events.models import Event
from tests.factories.devices import ServicePointFactory
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
ADD = "/admin/events/event/add/"


@pytest.fixture
def client_(client, admin_user, settings):
    settings.SECURE_SSL_REDIRECT = False
    settings.CPM_DISPLAY_TIME_ZONE = "America/New_York"  # the utility's zone differs from the program's
    client.force_login(admin_user)
    return client


def _post(client, program, **extra):
    return client.post(ADD, {"program": program.pk, "name": "Heat wave", "category": "economic",
                             "direction": "reduce", "start_0": "2026-07-15", "start_1": "16:00",
                             "end_0": "2026-07-15", "end_1": "18:00", "notification_at_0": "2026-07-15",
                             "notification_at_1": "09:00", **extra})


def _labels(html: str) -> list[str]:
    """The fields' labels (a split date and time field is labelled by its fieldset's legend)."""
    found = re.findall(r"<(?:label|legend)[^>]*>(.*?)</(?:label|legend)>", html, re.S)
    return [unescape(re.sub(r"<[^>]+>", "", m)).strip() for m in found]


def test_without_a_program_the_labels_name_the_selected_programs_zone_and_the_times_are_read_in_it(client_):
    la = ProgramFactory(name="LA Peak", time_zone="America/Los_Angeles")
    ProgramFactory(name="Boston Saver", time_zone="America/New_York")
    html = unescape(client_.get(ADD).content.decode())
    labels = _labels(html)
    for name in ("Start", "End", "Notification at"):
        assert f"{name} (local time in the selected program's zone):" in labels, labels
    assert "America/New_York, local time" not in html  # the display zone is not what the times are read in
    assert "Type the wall-clock time of the selected program's time zone" in html
    assert ">LA Peak (America/Los_Angeles)</option>" in html and ">Boston Saver (America/New_York)</option>" in html

    response = _post(client_, la)
    assert response.status_code == 302, response.content.decode()[-2000:]
    event = Event.objects.get()
    # 16:00 in Los Angeles (PDT, UTC-7), not in New York: 23:00 UTC
    assert event.start == dt.datetime(2026, 7, 15, 16, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert event.start == dt.datetime(2026, 7, 15, 23, tzinfo=dt.UTC)
    assert event.notification_at == dt.datetime(2026, 7, 15, 16, tzinfo=dt.UTC)


def test_an_error_page_names_the_zone_of_the_program_picked(client_):
    boston = ProgramFactory(time_zone="America/New_York")
    response = _post(client_, boston, end_1="15:00")  # ends before it starts
    assert response.status_code == 200 and not Event.objects.exists()
    labels = _labels(response.content.decode())
    assert "Start (America/New_York, local time):" in labels, labels


def test_with_program_in_the_url_its_zone_is_named(client_):
    la = ProgramFactory(time_zone="America/Los_Angeles")
    labels = _labels(client_.get(f"{ADD}?program={la.pk}").content.decode())
    assert "Start (America/Los_Angeles, local time):" in labels
    assert not any("selected program" in label for label in labels)


def test_targeting_lists_are_ticked_values_and_unknown_values_are_refused_in_words(client_):
    ServicePointFactory(premise__service_territory="SCE", premise__substation="SUB-7", premise__feeder="F-12")
    program = ProgramFactory(time_zone="America/Los_Angeles")
    html = client_.get(f"{ADD}?program={program.pk}").content.decode()
    assert '<textarea name="target_' not in html
    boxes = {name: set(re.findall(rf'<input type="checkbox" name="{name}" value="([^"]*)"', html))
             for name in ("target_territories", "target_substations", "target_feeders", "target_device_types")}
    assert boxes["target_territories"] == {"SCE"} and boxes["target_substations"] == {"SUB-7"}
    assert boxes["target_feeders"] == {"F-12"}
    assert {"thermostat", "battery", "ev_charger"} <= boxes["target_device_types"]

    bad = _post(client_, program, target_device_types=["toaster"], target_territories=["MARS"])
    assert bad.status_code == 200 and not Event.objects.exists()
    text = unescape(bad.content.decode())
    assert "toaster is not one of the values listed here." in text
    assert "MARS is not one of the values listed here." in text

    ok = _post(client_, program, target_device_types=["thermostat", "battery"], target_territories=["SCE"])
    assert ok.status_code == 302
    event = Event.objects.get()
    assert (sorted(event.target_device_types), event.target_territories, event.target_feeders) == (
        ["battery", "thermostat"], ["SCE"], [])


def test_the_add_form_leaves_the_record_fields_to_the_change_page(client_):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    add = _labels(client_.get(f"{ADD}?program={program.pk}").content.decode())
    assert "Name:" in add and not any(label.startswith(("Settlement handed off at", "Reserved at", "Revision"))
                                      for label in add)
    assert _post(client_, program).status_code == 302
    change = client_.get(f"/admin/events/event/{Event.objects.get().pk}/change/").content.decode()
    assert "Settlement handed off at" in change and "Event revisions" in change.replace("EVENT REVISIONS", "Event "
                                                                                        "revisions")


def test_a_scheduled_events_targeting_reads_as_values_not_json(client_):
    from tests.factories.events import EventFactory

    event = EventFactory(status="scheduled", target_device_types=["thermostat", "battery"],
                         target_territories=["SCE"])
    html = client_.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    shown = dict(re.findall(r'field-(target_\w+)">.*?<div class="readonly">(.*?)</div>', html, re.S))
    assert shown["target_device_types"] == "thermostat, battery" and shown["target_territories"] == "SCE"
    assert shown["target_feeders"] == "-"
    assert not any("&quot;" in value or "[" in value for value in shown.values())


def test_a_draft_events_program_is_shown_not_offered_for_change(client_):
    """QA: the change form of a draft event offered the program, but the service cannot move an event to another
    program, so a new program was dropped without a word ("changed successfully") while the times typed were read
    in the old program's zone. The program is now read-only once the event exists."""
    from tests.factories.events import EventFactory

    la_program = ProgramFactory(time_zone="America/Los_Angeles")
    boston = ProgramFactory(time_zone="America/New_York")
    event = EventFactory(program=la_program)
    page = client_.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert 'name="program"' not in page
    client_.post(f"/admin/events/event/{event.pk}/change/", {
        "program": boston.pk, "name": event.name, "category": "economic", "direction": "reduce",
        "start_0": "2026-07-15", "start_1": "15:00", "end_0": "2026-07-15", "end_1": "18:00",
        "notification_at_0": "2026-07-15", "notification_at_1": "09:00",
        "revisions-TOTAL_FORMS": "0", "revisions-INITIAL_FORMS": "0"})
    event.refresh_from_db()
    assert event.program_id == la_program.pk


def test_a_number_typed_with_an_underscore_is_refused_on_its_field(client_):
    """Django's DecimalField read 1_5 as 15 kW (Python's digit grouping)."""
    program = ProgramFactory(time_zone="America/Los_Angeles")
    response = _post(client_, program, target_kw="1_5")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["target_kw"] == ["Enter a number."]
    assert not Event.objects.exists()
    assert _post(client_, program, target_kw="15").status_code == 302
    assert Event.objects.get().target_kw == 15


def test_window_refusals_name_the_fields_as_the_form_labels_them(client_):
    """An End before the Start said 'end must be after start.' (the table constraint's text, as a note above the
    form), a notice after the Start 'notification_at must be at or before start.' (the API's names): both are
    now errors on their field naming Start, End and Notification at, as the form labels them."""
    program = ProgramFactory(time_zone="America/New_York")

    def errors(**extra):
        response = _post(client_, program, **extra)
        assert response.status_code == 200
        page = unescape(response.content.decode())
        assert "end must be after start" not in page and "notification_at must" not in page
        return {name: [unescape(m) for m in msgs] for name, msgs in response.context["adminform"].form.errors.items()}

    assert errors(end_1="15:00") == {"end": ["End must be after Start."]}
    assert errors(end_1="16:00") == {"end": ["End must be after Start."]}
    assert errors(notification_at_1="17:00") == {"notification_at": ["Notification at must be at or before Start."]}
    assert not Event.objects.exists()


def test_a_target_kw_not_above_zero_is_an_error_on_its_field(client_):
    """A target of -5 kW went to the service after the form was accepted: the page was sent back empty (everything
    typed lost) with 'target_kw: target_kw must be positive.' above it."""
    program = ProgramFactory(time_zone="America/Los_Angeles")
    for value in ("-5", "0"):
        response = _post(client_, program, target_kw=value)
        assert response.status_code == 200
        assert response.context["adminform"].form.errors == {"target_kw": ["Target kW must be positive."]}
        assert "Target kW:" in _labels(response.content.decode())
    assert not Event.objects.exists()


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_the_added_and_changed_messages_name_the_event_in_the_programs_zone_not_utc(client_):
    """The confirmation after "Save" read 'The event "Heat wave (2026-07-15 23:00 UTC)" was added successfully'
    above a page that says 16:00 PDT: the saved event had lost its program before its name was written."""
    la = ProgramFactory(time_zone="America/Los_Angeles")
    added = client_.post(ADD, {"program": la.pk, "name": "Heat wave", "category": "economic", "direction": "reduce",
                               "start_0": "2026-07-15", "start_1": "16:00", "end_0": "2026-07-15", "end_1": "18:00",
                               "notification_at_0": "2026-07-15", "notification_at_1": "09:00"}, follow=True)
    text = unescape(" ".join(_messages(added)))
    assert "Heat wave (2026-07-15 16:00 PDT)" in text, text
    assert "UTC" not in text

    event = Event.objects.get()
    changed = client_.post(f"/admin/events/event/{event.pk}/change/", {
        "name": "Heat wave 2", "category": "economic", "direction": "reduce", "start_0": "2026-07-15",
        "start_1": "16:00", "end_0": "2026-07-15", "end_1": "18:00", "notification_at_0": "2026-07-15",
        "notification_at_1": "09:00", "revisions-TOTAL_FORMS": "0", "revisions-INITIAL_FORMS": "0"}, follow=True)
    text = unescape(" ".join(_messages(changed)))
    assert "Heat wave 2 (2026-07-15 16:00 PDT)" in text, text
    assert "UTC" not in text


def test_scheduling_refused_by_the_rules_lists_every_violation_in_words(client_):
    """"Schedule" on an event breaking two rules said only the first, prefixed by its column name: "QA short notice
    (...): window_end: The event ... is outside the event window 06:00-22:00 (local)."; fixing it revealed the
    notice next."""
    from tests.factories.events import EventFactory
    from tests.factories.programs import ParticipationRuleFactory, SeasonFactory

    la = ZoneInfo("America/Los_Angeles")
    program = ProgramFactory(time_zone="America/Los_Angeles")
    SeasonFactory(program=program, name="Summer 2027", start_date=dt.date(2027, 6, 1), end_date=dt.date(2027, 9, 30))
    ParticipationRuleFactory(program=program, effective_from=dt.date(2027, 1, 1), window_start=dt.time(14),
                             window_end=dt.time(21), min_notice_minutes=120)
    event = EventFactory(program=program, name="Late call", start=dt.datetime(2027, 7, 14, 22, tzinfo=la),
                         end=dt.datetime(2027, 7, 14, 23, tzinfo=la),
                         notification_at=dt.datetime(2027, 7, 14, 21, 30, tzinfo=la))
    response = client_.post("/admin/events/event/", {"action": "schedule", "_selected_action": [event.pk]},
                            follow=True)
    text = unescape(" ".join(_messages(response)))
    assert "The event 2027-07-14 22:00-23:00 is outside the event window 14:00-21:00 (local)." in text, text
    assert "Notice of 30 minutes is less than the minimum of 120 minutes." in text, text
    assert "window_end" not in text and "min_notice_minutes" not in text, text
    event.refresh_from_db()
    assert event.status == "draft"


@pytest.mark.parametrize("typed", ["25:00", "4pm", "16h00"])
def test_a_mistyped_time_is_refused_as_a_time_not_as_a_list_of_values(client_, typed):
    """A start time typed "25:00" read "Enter a list of values." (the split field's own message, handed to its time
    box): nothing said the time was the problem."""
    la = ProgramFactory(time_zone="America/Los_Angeles")
    response = _post(client_, la, start_1=typed)
    assert response.status_code == 200 and not Event.objects.exists()
    html = unescape(response.content.decode())
    errors = re.search(r'<ul class="errorlist"[^>]*id="id_start_error"[^>]*>(.*?)</ul>', html, re.S)
    assert errors, html[-3000:]
    text = " ".join(re.sub(r"<[^>]+>", " ", errors.group(1)).split())
    assert text.startswith("Enter a valid time as HH:MM"), text
    assert "Enter a list of values." not in html


def test_the_time_fields_say_what_they_mean_as_well_as_their_zone(client_):
    """"Notification at" (required) said only "Local wall-clock time in America/Los_Angeles (stored in UTC).": the
    model's meaning ("UTC time participants are notified (dispatch).") was dropped with its "UTC"."""
    la = ProgramFactory(time_zone="America/Los_Angeles")
    for url in (f"{ADD}?program={la.pk}", ADD):
        html = unescape(client_.get(url).content.decode())
        helps = {name: " ".join(re.sub(r"<[^>]+>", " ", m).split()) for name, m in re.findall(
            r'<div class="help"[^>]*id="id_(\w+)_helptext"[^>]*>(.*?)</div>\s*</div>', html, re.S)}
        assert helps["notification_at"].startswith("Time participants are notified (dispatch)."), helps
        assert helps["end"].startswith("End (exclusive)."), helps
        assert "UTC time" not in helps["notification_at"]
        zone = "Local wall-clock time in America/Los_Angeles" if "?" in url else "Type the wall-clock time"
        assert zone in helps["notification_at"], helps
