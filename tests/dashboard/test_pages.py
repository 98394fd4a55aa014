"""The dashboard and the event page: figures, constant queries, permissions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cpm.base import roles
from cpm.dashboard.selectors import fleet_series
from events.choices import EventStatus
from events.models import Event, OptOut
from programs.choices import IncentiveKind
from programs.models import IncentiveRule
from settlement.choices import EventSettlementStatus
from tests.factories.enrollments import staff_user
from tests.factories.events import EventFactory, la
from tests.factories.programs import ProgramFactory, SeasonFactory

from .fleet import NOW, build_fleet, device, settle

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def admin_client(client):
    client.force_login(staff_user(roles.PROGRAM_ADMIN))
    return client


def _inputs(start, baseline, actual):
    return {"start": start.isoformat(), "interval_minutes": 60, "baseline_kw": baseline,
            "adjusted_baseline_kw": baseline, "actual_kw": actual}


def _fleet_with_results():
    """The fleet, the past event's inputs (two hourly intervals), a forecast stored on it, credits, an upcoming
    event with a forecast, a season cap and limits."""
    program, f = build_fleet()
    past = f["past"]
    Event.objects.filter(pk=past.pk).update(forecast_kw=Decimal("3.500"))
    t0 = past.start
    s1, s2 = past.settlements.order_by("pk")[:2]
    s1.inputs, s1.amount, s1.status = _inputs(t0, [3.0, 3.0], [1.5, 2.1]), Decimal("4.20"), \
        EventSettlementStatus.APPROVED
    s2.inputs, s2.amount = _inputs(t0, [5.0, None], [3.0, 2.0]), Decimal("1.05")
    s1.save()
    s2.save()
    OptOut.objects.create(participation=past.participations.get(subscription=f["d2"]), channel="portal", at=t0)
    EventFactory(program=program, name="Tomorrow", start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 18),
                 status=EventStatus.SCHEDULED, forecast_kw=Decimal("4.125"))
    rule = program.participation_rules.get()
    rule.max_events_per_season, rule.max_event_hours_per_season = 10, Decimal("40")
    rule.save()
    IncentiveRule.objects.create(program=program, kind=IncentiveKind.SEASON_CAP, amount=Decimal("100"))
    return program, f


def test_dashboard_figures(admin_client, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    program, f = _fleet_with_results()
    response = admin_client.get(reverse("dashboard:index"))
    assert response.status_code == 200
    card = next(c for c in response.context["cards"] if c.program == program)
    # 5 ACTIVE enrollments (the 6th waits for approval), each its own customer; devices of ACTIVE enrollments:
    # thermostats 2 + 1 + 3 + 4 (the inactive device is still enrolled) = 10 kW on 4, battery 5 kW.
    assert card.customers == 5 and card.pending_approvals == 1
    assert card.devices_by_type == [("Home battery", 1, Decimal("5")), ("Smart thermostat", 4, Decimal("10"))]
    assert (card.devices, card.kw) == (5, Decimal("15"))
    assert [e.name for e in card.live_events] == ["Tomorrow"]
    (latest,) = card.latest
    # the PENDING settlement is counted in the latest event's sums (not reversed): 1.2 + 1.8 + 5.0 kW
    assert (latest.kw_drop, latest.credits, latest.settlements) == (Decimal("8.0"), Decimal("5.25"), 3)
    s = card.season
    assert (s.name, s.events, s.max_events, s.hours, s.max_hours) == ("Summer 2026", 1, 10, Decimal("2"),
                                                                     Decimal("40"))
    assert (s.credits, s.credits_cap) == (Decimal("5.25"), Decimal("500"))
    html = response.content.decode()
    assert "<svg" in html and "<script" not in html.split("</header>")[-1].split("id=\"content-main\"")[-1]
    assert "4.1 kW" in html and "$5.25 of $500.00" in html and "1 of 10" in html
    assert "status__exact=pending_approval" in html


def test_dashboard_forecast_form(admin_client, monkeypatch):
    """15:00-18:00 local on 2026-07-15, thermostats: 1.500 kW (see test_forecast)."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    program, _ = build_fleet()
    response = admin_client.get(reverse("dashboard:index"), {"program": program.pk, "day": "2026-07-15",
                                                              "start": "15:00", "end": "18:00",
                                                              "device_type": "thermostat", "territory": ""})
    assert response.status_code == 200
    assert response.context["forecast"].forecast_kw == Decimal("1.500")
    assert "1.500 kW available" in response.content.decode()


def test_forecast_form_refuses_a_dst_gap(admin_client):
    program, _ = build_fleet()
    response = admin_client.get(reverse("dashboard:index"), {"program": program.pk, "day": "2026-03-08",
                                                              "start": "02:30", "end": "04:00"})
    assert response.context["forecast"] is None
    assert "does not exist in America/Los_Angeles" in response.content.decode()


@pytest.mark.parametrize(("zone_name", "day", "end", "expected"), [
    ("America/Los_Angeles", "2026-03-07", "02:30", "2026-03-08 02:30 does not exist in America/Los_Angeles"),
    ("America/Chicago", "2026-03-07", "02:30", "2026-03-08 02:30 does not exist in America/Chicago"),
    ("America/Los_Angeles", "2026-10-31", "01:30", "2026-11-01 01:30 happens twice in America/Los_Angeles"),
    ("America/New_York", "2026-10-31", "01:30", "2026-11-01 01:30 happens twice in America/New_York"),
])
def test_forecast_form_checks_an_end_on_the_next_day_on_that_day(admin_client, zone_name, day, end, expected):
    """An End earlier than Start is on the next day, but it was checked on the form's Day: 22:00 on March 7 to
    02:30 (March 8, a time that does not exist) was forecast as 22:00-03:30 PDT, and 23:00 on October 31 to 01:30
    (repeated on November 1) silently took the first 01:30."""
    program = ProgramFactory(time_zone=zone_name)
    response = admin_client.get(reverse("dashboard:index"), {"program": program.pk, "day": day, "start": "22:00",
                                                              "end": end})
    assert response.context["forecast"] is None
    assert [expected in m for m in response.context["form"].errors["end"]] == [True]


def test_event_page_figures(admin_client):
    program, f = _fleet_with_results()
    past = f["past"]
    response = admin_client.get(reverse("dashboard:event", args=[past.pk]))
    assert response.status_code == 200
    page = response.context["page"]
    assert page.decisions == [("reserved", "Reserved", 2, Decimal("4.000"))] and page.reserved_kw == Decimal("4")
    assert sorted(page.participations) == [("Participated", 3)]
    assert page.opt_outs == [("Customer portal API", 1)]
    # settled (CALCULATED or APPROVED) participations only: d1 and d3
    assert (page.delivered_kw, page.settled) == (Decimal("3.0"), 2)
    assert page.delivered_vs_forecast == Decimal("0.86")  # 3.0 / 3.5
    # per interval: baselines 3 + 5 = 8, then 3 + (none) = 3; actual 1.5 + 3 = 4.5, 2.1 + 2 = 4.1
    assert page.interval_starts == [past.start, past.start + dt.timedelta(hours=1)]
    assert page.fleet["Baseline"] == [8.0, 3.0] and page.fleet["Actual"] == [4.5, 4.1]
    assert page.credits_total == Decimal("5.25")  # 4.20 approved + 1.05 calculated + 0 pending
    assert page.credits_by_status == [("Approved", 1, Decimal("4.20")), ("Calculated", 1, Decimal("1.05")),
                                      ("Pending", 1, Decimal("0.00"))]
    html = response.content.decode()
    assert "3.500 kW" in html and "3.000 kW over 2 settled participations" in html
    assert f"event__id__exact={past.pk}" in html and "<svg" in html


def _count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_constant_queries(admin_client, monkeypatch):
    """One program with one event and one enrollment, then more programs, events, enrollments and settlements:
    the same number of queries for the dashboard and the event page."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    program, f = build_fleet()
    url = reverse("dashboard:index")
    event_url = reverse("dashboard:event", args=[f["past"].pk])
    few, few_event = _count_queries(admin_client, url), _count_queries(admin_client, event_url)
    for i in range(4):
        sub = device(program, "1.0", NOW)
        e = EventFactory(program=program, name=f"More {i}", start=la(2026, 7, 6 + i, 15), end=la(2026, 7, 6 + i, 17),
                         status=EventStatus.COMPLETED)
        settle(e, sub, kw_drop="0.5", reserved_kw="1.0")
        settle(f["past"], sub, kw_drop="0.5", reserved_kw="1.0",
               inputs=_inputs(f["past"].start, [1.0, 1.0], [0.5, 0.5]))
        EventFactory(program=program, name=f"Next {i}", start=la(2026, 7, 20 + i, 15), end=la(2026, 7, 20 + i, 17),
                     status=EventStatus.SCHEDULED)
    other = ProgramFactory()
    SeasonFactory(program=other)
    device(other, "2.0", NOW)
    assert _count_queries(admin_client, url) == few
    assert _count_queries(admin_client, event_url) == few_event


@pytest.mark.parametrize("role", [roles.CSR, roles.AUDITOR, roles.SETTLEMENT_ANALYST])
def test_read_only_roles_see_the_dashboard(client, role):
    program, f = _fleet_with_results()
    client.force_login(staff_user(role))
    response = client.get(reverse("dashboard:index"))
    assert response.status_code == 200
    assert "<form method=\"post\"" not in response.content.decode().split("id=\"content-main\"")[-1]
    assert client.get(reverse("dashboard:event", args=[f["past"].pk])).status_code == 200
    assert "Program dashboard" in client.get(reverse("admin:index")).content.decode()


def test_aggregator_cannot_reach_the_dashboard(client):
    user = get_user_model().objects.create_user("agg-user", password="pw-Role-123456", is_staff=False)
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    client.force_login(user)
    for url in (reverse("dashboard:index"), reverse("admin:index")):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_view_permissions_is_refused(client):
    client.force_login(staff_user(roles.CIS_INTEGRATION))
    assert client.get(reverse("dashboard:index")).status_code == 403
    assert "Program dashboard" not in client.get(reverse("admin:index")).content.decode()


def test_event_admin_pages_link_to_the_event_page_and_the_forecast(admin_client):
    program, f = _fleet_with_results()
    past = f["past"]
    html = admin_client.get(reverse("admin:events_event_change", args=[past.pk])).content.decode()
    assert reverse("dashboard:event", args=[past.pk]) in html and "Forecast when reserved: 3.500 kW" in html
    html = admin_client.get(reverse("admin:events_event_add")).content.decode()
    assert "Forecast the kW available" in html


def test_unknown_event_is_404(admin_client):
    assert admin_client.get(reverse("dashboard:event", args=[999999])).status_code == 404


def test_device_counts_use_the_programs_local_date(admin_client, monkeypatch):
    # 2026-07-15 02:00Z is still 2026-07-14 (19:00) in Los Angeles: a subscription ending 2026-07-15 (its first
    # local day no longer enrolled) still counts; the UTC date dropped it from the card.
    monkeypatch.setattr("django.utils.timezone.now", lambda: dt.datetime(2026, 7, 15, 2, tzinfo=dt.UTC))
    program, f = build_fleet()
    type(f["d1"]).objects.filter(pk=f["d1"].pk).update(end_date=dt.date(2026, 7, 15))
    card = next(c for c in admin_client.get(reverse("dashboard:index")).context["cards"] if c.program == program)
    assert (card.devices, card.kw) == (5, Decimal("15"))


def test_fleet_series_adds_settlements_of_different_grids_on_the_finer_one():
    """One event, one hourly settlement and one measured on 15-minute data (its opt-out cut an hour): the fleet is
    drawn on the quarter-hours, the hourly kW standing for each of its quarters (kW is an average: the same in each),
    so every quarter-hour adds both; an hourly event draws hourly, as before."""
    t0 = dt.datetime(2026, 7, 15, 21, tzinfo=dt.UTC)
    hourly = {"start": t0.isoformat(), "interval_minutes": 60, "baseline_kw": [2.0, 2.0],
              "adjusted_baseline_kw": [2.0, 2.0], "actual_kw": [0.5, 1.0]}
    quarters = {"start": t0.isoformat(), "interval_minutes": 15, "baseline_kw": [4.0] * 8,
                "adjusted_baseline_kw": [4.0] * 8, "actual_kw": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, None]}
    starts, fleet = fleet_series([hourly, quarters])
    assert starts == [t0 + dt.timedelta(minutes=15 * i) for i in range(8)]
    assert fleet["Baseline"] == [6.0] * 8
    assert fleet["Actual"] == [1.5, 1.5, 2.5, 2.5, 4.0, 4.0, 4.0, 1.0]
    starts, fleet = fleet_series([hourly, hourly])
    assert (starts, fleet["Actual"]) == ([t0, t0 + dt.timedelta(hours=1)], [1.0, 2.0])


def test_season_event_hours_are_summed_exactly_and_rounded_once():
    """Three 20-minute events are 1 hour: each rounded to 0.01 h first (0.33 h) made the season 0.99 h."""
    from cpm.dashboard.selectors import program_cards

    program = ProgramFactory(code="thirds", name="Thirds")
    SeasonFactory(program=program)
    for day in (1, 2, 3):
        start = dt.datetime(2026, 7, day, 23, tzinfo=dt.UTC)
        EventFactory(program=program, start=start, end=start + dt.timedelta(minutes=20),
                     notification_at=start - dt.timedelta(hours=2), status=EventStatus.COMPLETED)
    (card,) = [c for c in program_cards(now=NOW) if c.program == program]
    assert (card.season.events, card.season.hours) == (3, Decimal("1.00"))
    assert str(card.season.hours) == "1.00"


def test_forecast_form_refuses_equal_start_and_end_on_the_end_field(admin_client):
    """15:00 to 15:00 was read as 24 hours (15:00 to 15:00 the next day) without a word."""
    program, _ = build_fleet()
    response = admin_client.get(reverse("dashboard:index"), {"program": program.pk, "day": "2026-07-15",
                                                              "start": "15:00", "end": "15:00"})
    assert response.context["forecast"] is None
    form = response.context["form"]
    assert form.errors == {"end": ["End must differ from Start (15:00). An End earlier than Start is on the next "
                                   "day (e.g. 22:00 to 02:00)."]}
    assert "End must differ from Start (15:00)" in response.content.decode()


def test_forecast_form_reads_an_end_before_the_start_as_the_next_day_and_says_so(admin_client):
    program, _ = build_fleet()
    response = admin_client.get(reverse("dashboard:index"), {"program": program.pk, "day": "2026-07-15",
                                                              "start": "22:00", "end": "02:00"})
    data = response.context["form"].cleaned_data
    assert (data["start_utc"], data["end_utc"]) == (dt.datetime(2026, 7, 16, 5, tzinfo=dt.UTC),
                                                    dt.datetime(2026, 7, 16, 9, tzinfo=dt.UTC))
    assert "earlier than Start: the next day" in response.content.decode()


def test_the_dashboard_shows_a_past_day_as_of_its_end(admin_client):
    """The clock is today (the demo's season is in 2011): ?as_of=2026-07-14 shows the programs as they stood at the
    end of that day: the season to date with its one past event (2 h, $5.25 of $500.00), the next day's event still
    to come. Without it the same season is over and nothing is live. A bad date is said in words, never a 500."""
    program, f = _fleet_with_results()
    response = admin_client.get(reverse("dashboard:index"), {"as_of": "2026-07-14"})
    assert response.status_code == 200
    card = next(c for c in response.context["cards"] if c.program == program)
    assert (card.season.name, card.season.events, card.season.hours) == ("Summer 2026", 1, Decimal("2"))
    assert card.season.credits == Decimal("5.25")
    assert [e.name for e in card.live_events] == ["Tomorrow"]
    assert "Shown as of the end of 2026-07-14" in response.content.decode()
    assert response.context["forecast"] is None and not response.context["form"].is_bound
    today = admin_client.get(reverse("dashboard:index"))
    assert [e.name for e in next(c for c in today.context["cards"] if c.program == program).live_events] == []
    for bad in ("2026-13-01", "9999-12-31", "x"):
        response = admin_client.get(reverse("dashboard:index"), {"as_of": bad})
        assert response.status_code == 200, bad
        assert response.context["as_of"].errors, bad


def test_the_seasons_credits_count_its_season_incentives(admin_client):
    """A program paid at season end (a seasonal or per-kW incentive) read "Credits $0.00" on the dashboard: only
    event settlements were summed. The customer settlements' incentive lines of the season count too, and the card
    says how the total splits."""
    from programs.models import Season
    from settlement.models import CustomerSettlement, SettlementLine

    program, f = _fleet_with_results()
    season = Season.objects.get(program=program)
    s1 = f["past"].settlements.order_by("pk").first()
    at = dt.datetime(2026, 7, 14, 12, tzinfo=dt.UTC)
    cs = CustomerSettlement.objects.create(account_id=s1.account_id, program=program, season=season,
                                           period_kind="season_end", period_start=season.start_date,
                                           period_end=season.end_date + dt.timedelta(days=1), status="calculated",
                                           total_amount=Decimal("20.00"), created_at=at, updated_at=at)
    SettlementLine.objects.create(account_id=s1.account_id, program=program, customer_settlement=cs,
                                  kind="seasonal", line_code="DRSN", amount=Decimal("20.00"), created_at=at)
    response = admin_client.get(reverse("dashboard:index"), {"as_of": "2026-07-14"})
    card = next(c for c in response.context["cards"] if c.program == program)
    assert (card.season.credits, card.season.event_credits, card.season.incentive_credits) == (
        Decimal("25.25"), Decimal("5.25"), Decimal("20.00"))
    assert "$25.25 of $500.00" in response.content.decode()
    assert "events $5.25, season incentives $20.00" in response.content.decode()


def test_amounts_read_with_thousands_separators_and_a_cancelled_event_is_not_waiting_for_settlement(admin_client):
    """Money on the dashboard reads as everywhere else ("$12,345.67", not "$12345.67"); a cancelled event's page
    says it will not be settled, not "not settled yet"."""
    program, f = _fleet_with_results()
    past = f["past"]
    s1 = past.settlements.order_by("pk").first()
    s1.amount = Decimal("12340.42")
    s1.save()
    html = admin_client.get(reverse("dashboard:event", args=[past.pk])).content.decode()
    assert "$12,341.47" in html and "$12,340.42" in html and "$12341" not in html
    cancelled = EventFactory(program=program, name="Called off", start=la(2026, 7, 16, 15), end=la(2026, 7, 16, 18),
                             status=EventStatus.CANCELLED)
    html = admin_client.get(reverse("dashboard:event", args=[cancelled.pk])).content.decode()
    assert "none: the event was cancelled" in html and "not settled yet" not in html


def test_event_page_shows_a_failed_reservation_job_and_how_to_recover(admin_client):
    """A reservation whose worker died (failed by the sweeper) or raised left the event SCHEDULED with no decision:
    its page read only "Not reserved yet." and "not reserved yet", nothing said the run had failed, why, or what to
    do. The page now names the event's latest reservation job with its status, progress and error, links it, and
    says how to run it again (QA guard)."""
    from cpm.base import jobs
    from tests.actors import TEST_ACTOR

    program = ProgramFactory(name="Stuck program")
    event = EventFactory(program=program, status=EventStatus.SCHEDULED, start=la(2026, 7, 21, 15),
                         end=la(2026, 7, 21, 17))
    job = jobs.job_create(kind="reservation", subject=event, now=NOW, actor=TEST_ACTOR,
                          chunks=[("events.reserve_chunk", {"event_id": event.pk})])
    jobs.job_fail(job_id=job.pk, error="Chunk 0 stalled 3 times (worker lost)", now=NOW)
    html = admin_client.get(reverse("dashboard:event", args=[event.pk])).content.decode()
    assert f'<a href="/admin/cpm/job/{job.pk}/change/">job #{job.pk}</a>: Failed, 0/1 chunks' in html
    assert "Chunk 0 stalled 3 times (worker lost)" in html
    assert "Reserve devices again" in html  # the event admin's action that runs it again
    # an event whose reservation completed: its job shown as completed, no recovery advice
    done = EventFactory(program=program, status=EventStatus.SCHEDULED, start=la(2026, 7, 22, 15),
                        end=la(2026, 7, 22, 17))
    ok = jobs.job_create(kind="reservation", subject=done, now=NOW, actor=TEST_ACTOR, chunks=[])
    html = admin_client.get(reverse("dashboard:event", args=[done.pk])).content.decode()
    assert f'<a href="/admin/cpm/job/{ok.pk}/change/">job #{ok.pk}</a>: Completed' in html
    assert "Reserve devices again" not in html


def test_dashboard_as_of_a_past_day_shows_neither_later_events_nor_their_credits(admin_client):
    """As of the end of 2026-06-30 (before the ``Past`` event of 2026-07-01 16:00 PDT), the season card counted
    0 events called but $5.25 of credits (the later event's settlements), and "Latest events" listed that later
    event with its kW drop and credits: the page did not show the program "as it stood at the end of this day".
    Now both leave out events that had not started by then; as of the end of 2026-07-01 they count (QA guard)."""
    program, f = _fleet_with_results()
    response = admin_client.get(reverse("dashboard:index"), {"as_of": "2026-06-30"})
    card = next(c for c in response.context["cards"] if c.program == program)
    assert card.latest == []
    assert (card.season.events, card.season.event_credits, card.season.credits) == (0, Decimal("0"), Decimal("0"))
    assert "$0.00 of $500.00" in response.content.decode()
    response = admin_client.get(reverse("dashboard:index"), {"as_of": "2026-07-01"})
    card = next(c for c in response.context["cards"] if c.program == program)
    assert [r.event.name for r in card.latest] == ["Past"]
    assert (card.season.events, card.season.event_credits) == (1, Decimal("5.25"))
