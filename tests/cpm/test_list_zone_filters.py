"""A list filtered to one program reads and filters its times in that program's zone. The rows already showed each
time in its program's zone ("2026-07-16 01:00 EDT"), but the date drill-down and the date filters counted days in
the display zone (CPM_DISPLAY_TIME_ZONE, Los Angeles): an Eastern program's overnight load-up event of July 16
(01:00-04:00 EDT) was listed under July 15 and not under July 16."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from events.models import Event
from tests.factories.enrollments import EnrollmentFactory
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def admin_client_(client, admin_user, settings):
    settings.CPM_DISPLAY_TIME_ZONE = "America/Los_Angeles"
    client.force_login(admin_user)
    return client


def _overnight_event():
    program = ProgramFactory(time_zone="America/New_York")
    event = Event.objects.create(program=program, name="Load-up", direction="increase",
                                 start=dt.datetime(2026, 7, 16, 5, tzinfo=UTC),  # 01:00 EDT, 22:00 PDT July 15
                                 end=dt.datetime(2026, 7, 16, 8, tzinfo=UTC),
                                 notification_at=dt.datetime(2026, 7, 15, 20, tzinfo=UTC))
    return program, event


def _names(response):
    return [str(obj.name) for obj in response.context["cl"].result_list]


def test_the_date_drill_down_of_one_programs_events_counts_its_local_days(admin_client_):
    program, _event = _overnight_event()
    base = {"program__id__exact": program.pk, "start__year": "2026", "start__month": "7"}
    on_16 = admin_client_.get("/admin/events/event/", {**base, "start__day": "16"})
    assert on_16.status_code == 200 and _names(on_16) == ["Load-up"]
    assert _names(admin_client_.get("/admin/events/event/", {**base, "start__day": "15"})) == []
    month = admin_client_.get("/admin/events/event/", base).content.decode()
    assert "July 16" in month and "July 15" not in month
    assert "2026-07-16 01:00 EDT" in month


def test_the_date_filter_of_one_programs_enrollments_counts_its_local_days(admin_client_):
    """The "Today" / "Past 7 days" links of the requested-at filter start at midnight in the program's zone."""
    program = ProgramFactory(time_zone="America/New_York")
    EnrollmentFactory(program=program)
    page = admin_client_.get("/admin/enrollments/enrollment/", {"program__id__exact": program.pk}).content.decode()
    offsets = set(re.findall(r"requested_at__gte=[0-9-]+\+00%3A00%3A00([+-]\d\d)%3A00", page))
    assert offsets and offsets <= {"-04", "-05"}, offsets
    page = admin_client_.get("/admin/enrollments/enrollment/").content.decode()
    offsets = set(re.findall(r"requested_at__gte=[0-9-]+\+00%3A00%3A00([+-]\d\d)%3A00", page))
    assert offsets and offsets <= {"-07", "-08"}, offsets


def test_an_unfiltered_list_keeps_the_display_zone(admin_client_):
    _overnight_event()
    page = admin_client_.get("/admin/events/event/", {"start__year": "2026", "start__month": "7",
                                                       "start__day": "15"})
    assert _names(page) == ["Load-up"]  # 22:00 PDT on July 15, in the display zone
    # A program id that is not a number is not an error.
    assert admin_client_.get("/admin/events/event/", {"program__id__exact": "x"}).status_code in (200, 302)
