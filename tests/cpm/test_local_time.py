"""Local time where a person reads or types a time: the admin's event form takes wall-clock times in the program's
zone (DST days of 23 and 25 hours), refuses the spring gap and the repeated autumn hour in words, and shows times
labelled with the zone; money and quantities as people read them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from cpm.base.money import format_decimal_field, format_money, format_quantity, format_rate
from cpm.base.timeutils import WallClockError, format_local, local_wall_to_utc_strict
from events.models import Event
from tests.factories.programs import ProgramFactory

LA = ZoneInfo("America/Los_Angeles")
UTC = dt.UTC


def test_strict_wall_clock_conversion_on_dst_days():
    # 2026-03-08 (23 h): 02:30 does not exist; 2026-11-01 (25 h): 01:30 happens twice.
    with pytest.raises(WallClockError, match=r"Start: 2026-03-08 02:30 does not exist in America/Los_Angeles") as gap:
        local_wall_to_utc_strict(dt.datetime(2026, 3, 8, 2, 30), LA, field="Start")
    assert gap.value.kind == "gap"
    with pytest.raises(WallClockError, match=r"End: 2026-11-01 01:30 happens twice .* \"01:30 -07:00\" for the "
                                             r"first \(PDT\) or \"01:30 -08:00\" for the second \(PST\)") as twice:
        local_wall_to_utc_strict(dt.datetime(2026, 11, 1, 1, 30), LA, field="End")
    assert twice.value.kind == "ambiguous"
    first = local_wall_to_utc_strict(dt.datetime(2026, 11, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7))), LA)
    second = local_wall_to_utc_strict(dt.datetime(2026, 11, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-8))), LA)
    assert (first, second) == (dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC), dt.datetime(2026, 11, 1, 9, 30, tzinfo=UTC))
    with pytest.raises(WallClockError, match="not a time America/Los_Angeles shows"):
        local_wall_to_utc_strict(dt.datetime(2026, 7, 1, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=-8))), LA)
    # Around the gap and on the long day, local times convert to the right instants.
    assert local_wall_to_utc_strict(dt.datetime(2026, 3, 8, 3, 0), LA) == dt.datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
    assert local_wall_to_utc_strict(dt.datetime(2026, 3, 8, 1, 59), LA) == dt.datetime(2026, 3, 8, 9, 59, tzinfo=UTC)
    assert local_wall_to_utc_strict(dt.datetime(2026, 11, 1, 2, 0), LA) == dt.datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert format_local(dt.datetime(2026, 7, 15, 22, 0, tzinfo=UTC), "America/Los_Angeles") == "2026-07-15 15:00 PDT"
    assert format_local(dt.datetime(2026, 1, 15, 23, 0, tzinfo=UTC), LA) == "2026-01-15 15:00 PST"


def test_money_and_quantities_as_people_read_them():
    assert format_money(Decimal("5.58000000000000")) == "$5.58"
    assert format_money(Decimal("16169.8300000000000")) == "$16,169.83"
    assert format_money(Decimal("-5.555")) == "-$5.56"
    assert format_rate(Decimal("1.2500")) == "$1.25" and format_rate(Decimal("0.12345")) == "$0.12345"
    assert format_quantity(Decimal("15.0000"), "kWh") == "15.00 kWh"
    assert format_decimal_field(Decimal("75.0000"), "amount") == "$75.00"
    assert format_decimal_field(Decimal("1.000000"), "participation_fraction", decimal_places=6) == "1"
    assert format_decimal_field(Decimal("15.0000"), "kwh_avoided") == "15.00 kWh"
    assert format_decimal_field(Decimal("3.500"), "capacity_kw") == "3.50 kW"
    assert format_decimal_field(Decimal("37.774929"), "latitude", decimal_places=6) == "37.774929"


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def _post_event(client, program, start: tuple[str, str], end: tuple[str, str], name="Heat wave"):
    return client.post("/admin/events/event/add/", {
        "program": program.pk, "name": name, "category": "economic", "direction": "reduce",
        "start_0": start[0], "start_1": start[1], "end_0": end[0], "end_1": end[1],
        "notification_at_0": start[0], "notification_at_1": "00:00",
        # targeting lists are ticked values (issue 17): none ticked = every device
        "revisions-TOTAL_FORMS": "0", "revisions-INITIAL_FORMS": "0"})


@pytest.mark.django_db
def test_event_form_takes_local_wall_clock_times_in_the_programs_zone(admin_client_):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    page = admin_client_.get(f"/admin/events/event/add/?program={program.pk}").content.decode()
    assert "Start (America/Los_Angeles, local time)" in page and "UTC start" not in page

    # A summer afternoon: 15:00-18:00 PDT is 22:00-01:00 UTC.
    r = _post_event(admin_client_, program, ("2026-07-15", "15:00"), ("2026-07-15", "18:00"))
    assert r.status_code == 302, r.content.decode()[-3000:]
    event = Event.objects.get()
    assert event.start == dt.datetime(2026, 7, 15, 22, tzinfo=UTC)
    assert event.end == dt.datetime(2026, 7, 16, 1, tzinfo=UTC)
    # The 23-hour day: 00:00 to 06:00 local lasts 5 real hours; the 25-hour day: 7 real hours.
    _post_event(admin_client_, program, ("2026-03-08", "00:00"), ("2026-03-08", "06:00"), name="Spring")
    spring = Event.objects.get(name="Spring")
    assert spring.end - spring.start == dt.timedelta(hours=5)
    _post_event(admin_client_, program, ("2026-11-01", "00:00"), ("2026-11-01", "06:00"), name="Autumn")
    autumn = Event.objects.get(name="Autumn")
    assert autumn.end - autumn.start == dt.timedelta(hours=7)

    # Shown back in local time with the zone, in the list and on the change page, never as bare UTC.
    listing = admin_client_.get("/admin/events/event/").content.decode()
    assert "2026-07-15 15:00 PDT" in listing and "2026-03-08 00:00 PST" in listing and "2026-03-08 06:00 PDT" in listing
    change = admin_client_.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert 'value="15:00:00"' in change and "America/Los_Angeles, local time" in change


@pytest.mark.django_db
def test_event_form_refuses_the_spring_gap_and_the_repeated_hour_in_words(admin_client_):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    gap = _post_event(admin_client_, program, ("2026-03-08", "02:30"), ("2026-03-08", "04:00"))
    assert gap.status_code == 200 and not Event.objects.exists()
    assert "2026-03-08 02:30 does not exist in America/Los_Angeles" in gap.content.decode()
    assert "Start (America/Los_Angeles, local time): 2026-03-08 02:30" in gap.content.decode()
    twice = _post_event(admin_client_, program, ("2026-11-01", "00:30"), ("2026-11-01", "01:30"))
    text = twice.content.decode()
    assert twice.status_code == 200 and not Event.objects.exists()
    assert "01:30 happens twice in America/Los_Angeles" in text and "01:30 -08:00" in text
    # Typed with the offset, the second 01:30 (PST) is taken: 00:30 PDT to 01:30 PST lasts two hours.
    chosen = _post_event(admin_client_, program, ("2026-11-01", "00:30"), ("2026-11-01", "01:30 -08:00"))
    assert chosen.status_code == 302
    event = Event.objects.get()
    assert event.end == dt.datetime(2026, 11, 1, 9, 30, tzinfo=UTC) and event.end - event.start == dt.timedelta(hours=2)
    # Its change page shows the repeated time with its offset, so saving again keeps the same instant.
    assert 'value="01:30:00 -08:00"' in admin_client_.get(f"/admin/events/event/{event.pk}/change/").content.decode()


@pytest.mark.django_db
def test_history_page_shows_audit_times_in_the_programs_zone_labelled_with_it(admin_client_):
    """The History page of an object is rendered in its program's zone: the audit times must say that zone, not
    "UTC" next to a local wall-clock time (before: "2026-07-15 13:00:00 UTC" for an entry made at 20:00 UTC)."""
    from cpm.base.audit import audit_record
    from tests.actors import TEST_ACTOR

    program = ProgramFactory(time_zone="America/Los_Angeles")
    event = Event.objects.create(program=program, name="Heat", start=dt.datetime(2026, 7, 15, 22, tzinfo=UTC),
                                 end=dt.datetime(2026, 7, 16, 1, tzinfo=UTC),
                                 notification_at=dt.datetime(2026, 7, 15, 20, tzinfo=UTC))
    audit_record(obj=event, action="update", now=dt.datetime(2026, 7, 15, 20, tzinfo=UTC), actor=TEST_ACTOR,
                 reason="probe")
    page = admin_client_.get(f"/admin/events/event/{event.pk}/history/").content.decode()
    assert "2026-07-15 13:00:00 PDT" in page
    assert "13:00:00 UTC" not in page and "When (UTC)" not in page


@pytest.mark.django_db
def test_an_event_named_on_admin_pages_reads_in_its_programs_zone(admin_client_):
    """An event is named "Heat (2026-07-15 15:00 PDT)" wherever the admin names it: the title of its own pages,
    a participation's and an opt-out's page, the messages list. Before: those pages loaded the event without its
    program and named it "Heat (2026-07-15 22:00 UTC)"."""
    from events.choices import OptOutChannel
    from events.models import OptOut
    from tests.factories.enrollments import active_participant
    from tests.factories.events import EventFactory, ParticipationFactory, la

    program = ProgramFactory(time_zone="America/Los_Angeles")
    event = EventFactory(program=program, name="Heat", start=la(2026, 7, 15, 15))
    participation = ParticipationFactory(event=event, subscription=active_participant(program=program))
    opt_out = OptOut.objects.create(participation=participation, channel=OptOutChannel.CSR,
                                    at=la(2026, 7, 15, 12))
    for url in (f"/admin/events/event/{event.pk}/change/", f"/admin/events/event/{event.pk}/history/",
                f"/admin/events/participation/{participation.pk}/change/",
                f"/admin/events/optout/{opt_out.pk}/change/"):
        page = admin_client_.get(url).content.decode()
        assert "Heat (2026-07-15 15:00 PDT)" in page, (url, __import__("re").findall(r"Heat \([^)]*\)", page))
        assert "22:00 UTC" not in page, url


@pytest.mark.django_db
def test_read_only_times_are_not_described_as_utc_next_to_a_local_value(admin_client_):
    """A scheduled event's times are read-only on its page and shown in the program's zone; their help text said
    "UTC start (inclusive)." next to "2026-07-15 15:00 PDT"."""
    from events.choices import EventStatus
    from tests.factories.events import EventFactory, la

    program = ProgramFactory(time_zone="America/Los_Angeles")
    event = EventFactory(program=program, name="Heat", start=la(2026, 7, 15, 15), status=EventStatus.COMPLETED)
    page = admin_client_.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert "2026-07-15 15:00 PDT" in page
    assert "UTC start" not in page and "UTC end" not in page and "UTC time participants" not in page
    assert "Start (inclusive). Shown in America/Los_Angeles local time (stored in UTC)." in page


@pytest.mark.django_db
def test_an_audit_entry_is_named_in_the_display_zone(admin_client_, settings):
    """An audit entry belongs to no program: its page shows At in CPM_DISPLAY_TIME_ZONE, but its title and
    breadcrumb (its name) said '2026-07-15 22:00 UTC'."""
    from cpm.base.audit import audit_record

    settings.CPM_DISPLAY_TIME_ZONE = "America/New_York"
    program = ProgramFactory()
    entry = audit_record(obj=program, action="update", now=dt.datetime(2026, 7, 15, 22, tzinfo=UTC), actor=None,
                         reason="probe")
    assert str(entry).startswith("2026-07-15 18:00 EDT ")
    page = admin_client_.get(f"/admin/cpm/auditentry/{entry.pk}/change/").content.decode()
    assert "<title>2026-07-15 18:00 EDT " in page and "22:00 UTC" not in page
