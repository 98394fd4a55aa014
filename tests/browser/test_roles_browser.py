"""Each role's main path in a real browser (issue 17): Playwright driving Debian's chromium against Django's live
server, full-page screenshots kept in ``test-artifacts/`` (``pa-*`` program administrator, ``sa-*`` settlement
analyst; the CSR path is ``test_csr_browser.py``).

The live server reads the real clock (the admin's ``admin_now``), so the scenario is placed around today: the event
is on the next weekday at least three days ahead, the meter history covers the 60 days before it. Between the
program administrator's steps "the event runs" through the event services (a system actor), as the Celery ticks
would, and its meter data is written as the loader would.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from cpm.base import roles
from cpm.base.capabilities import system_actor
from events import services as event_services
from events.choices import EventStatus, ParticipationStatus
from events.models import Event
from programs.models import Program
from settlement import services as settlement_services
from settlement.choices import CustomerSettlementStatus, EventSettlementStatus
from settlement.models import BillCreditExport, CustomerSettlement, EventSettlement
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

from .test_csr_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing")]

LA = ZoneInfo("America/Los_Angeles")
SYSTEM = system_actor("system:browser-test")


def _user(django_user_model, username, role):
    user = django_user_model.objects.create_user(username, password=f"{username}-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def _login(page, base, username, next_url):
    page.goto(f"{base}/admin/login/?next={next_url}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"{username}-password-1")
    page.click("input[type=submit]")


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    assert (ARTIFACTS / name).stat().st_size > 10_000


def _run_action(page, action: str, labels: list[str]) -> None:
    """Tick the rows whose link text is in ``labels`` and run the admin action ``action``."""
    for label in labels:
        page.locator("#result_list tr", has=page.locator(f"a:text-is('{label}')")).locator(
            "input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def _select_all_rows(page) -> None:
    """Tick every row of an admin list for an action, once the page has loaded. Not the "select all" box: its
    handler is the admin's JavaScript, which on a busy machine may not be bound yet right after a navigation (the
    action then ran on no rows: "Items must be selected in order to perform actions on them")."""
    page.wait_for_load_state("load")
    boxes = page.locator("#result_list input.action-select")
    for k in range(boxes.count()):
        boxes.nth(k).check()
    assert boxes.count() and all(boxes.nth(k).is_checked() for k in range(boxes.count()))


def _messages(page) -> str:
    """The admin's messages after the last click (waits up to 10 s for the next page to show them)."""
    try:
        page.locator("ul.messagelist").wait_for(timeout=10_000)
    except Exception:  # noqa: BLE001 - no message: the caller's assertion says what was expected
        return ""
    return page.locator("ul.messagelist").inner_text()


def _next_weekday(today: dt.date, ahead: int) -> dt.date:
    day = today + dt.timedelta(days=ahead)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def analyst_chart_x_range(settlement) -> tuple[dt.datetime, dt.datetime]:
    from settlement.charts import event_settlement_chart_data

    return event_settlement_chart_data(settlement).x_range


def _abbr(day: dt.date) -> str:
    return dt.datetime.combine(day, dt.time(16), tzinfo=LA).strftime("%Z")


def _money(text: str) -> list[str]:
    return re.findall(r"\$\d[\d,]*\.\d\d\b", text)


# ---------------------------------------------------------------------------------------- program administrator
def test_program_administrator_path(live_server, browser, transactional_db, django_user_model):  # noqa: F811
    """Create a program through the sectioned form (choice widgets), activate it, forecast its kW, schedule an
    event typed in local wall-clock time, follow it on the event page, have it settled through the settle page,
    and export the events' list as CSV."""
    _user(django_user_model, "pat", roles.PROGRAM_ADMIN)
    _user(django_user_model, "sam", roles.SETTLEMENT_ANALYST)
    now = timezone.now()
    today = now.astimezone(LA).date()
    event_day = _next_weekday(today, 3)
    # A wide screen (the events' list shows its reserved / skipped counts without scrolling sideways).
    page = browser.new_page(viewport={"width": 1720, "height": 900}, accept_downloads=True)
    base = live_server.url

    # 1. The program, through the sectioned add form: selects and ticked values, a season and a rule inline.
    _login(page, base, "pat", "/admin/programs/program/add/")
    page.fill("input[name=code]", "la-peak")
    page.fill("input[name=name]", "LA Peak Rewards")
    page.select_option("select[name=program_type]", "thermostat_dr")
    page.select_option("select[name=time_zone]", "America/Los_Angeles")
    page.check("input[name=eligible_device_types][value=thermostat]")
    page.check("input[name=eligible_customer_classes][value=residential]")
    page.click("#seasons-group .add-row a")
    page.fill("input[name=seasons-0-name]", "Winter peak")
    page.fill("input[name=seasons-0-start_date]", (today - dt.timedelta(days=90)).isoformat())
    page.fill("input[name=seasons-0-end_date]", (today + dt.timedelta(days=90)).isoformat())
    page.locator("#participation_rules-group summary").first.click()
    page.click("#participation_rules-group .add-row a")
    page.fill("input[name=participation_rules-0-effective_from]", (today - dt.timedelta(days=90)).isoformat())
    page.fill("input[name=participation_rules-0-window_start]", "14:00")
    page.fill("input[name=participation_rules-0-window_end]", "20:00")
    page.fill("input[name=participation_rules-0-max_duration_minutes]", "240")
    page.locator("#incentive_rules-group summary").first.click()
    page.click("#incentive_rules-group .add-row a")
    page.select_option("select[name=incentive_rules-0-kind]", "performance_kwh")
    page.select_option("select[name=incentive_rules-0-basis]", "per_kwh")
    page.fill("input[name=incentive_rules-0-amount]", "1.25")
    page.locator("#questions-group summary").first.click()
    page.click("#questions-group .add-row a")
    page.fill("input[name=questions-0-code]", "owns_home")
    page.fill("input[name=questions-0-text]", "Do you own the home?")
    page.select_option("select[name=questions-0-answer_type]", "boolean")
    page.check("input[name=questions-0-qualifying_answers][value=yes]")
    assert page.locator("#questions-group textarea[name=questions-0-qualifying_answers]").count() == 0
    _shot(page, "pa-1-program-add-form.png")
    page.click("input[name=_save]")
    assert "was added successfully" in _messages(page), _messages(page) or page.content()[:3000]
    program = Program.objects.get(code="la-peak")
    assert (program.time_zone, program.status, program.eligible_device_types) == (
        "America/Los_Angeles", "draft", ["thermostat"])
    assert program.seasons.get().name == "Winter peak"
    assert program.participation_rules.get().max_duration_minutes == 240
    assert program.incentive_rules.get().amount == Decimal("1.25")
    assert list(program.questions.values_list("code", "qualifying_answers")) == [("owns_home", [True])]
    _run_action(page, "action_activate", ["la-peak"])
    assert "Activated 1 program(s)." in _messages(page)
    row = page.locator("#result_list tr", has=page.locator("a:text-is('la-peak')")).inner_text()
    assert "Active" in row and "America/Los_Angeles" in row
    _shot(page, "pa-2-program-list-activated.png")

    # Customers with thermostats (loaded by the CIS integration in real life): 2 + 2 kW seen lately, 3 kW not.
    subs = [active_participant(program=program, device_kwargs={
        "device_type": "thermostat", "capacity_kw": Decimal(kw), "serial_number": f"T-{i}",
        "last_seen_at": now - dt.timedelta(minutes=5 if seen else 60 * 48)}, start=today - dt.timedelta(days=90))
        for i, (kw, seen) in enumerate([("2.0", True), ("2.0", True), ("3.0", False)])]

    # 2. The kW forecast on the dashboard for 16:00-18:00 local on the event day.
    page.goto(f"{base}/dashboard/")
    page.select_option("select[name=program]", str(program.pk))
    page.fill("input[name=day]", event_day.isoformat())
    page.fill("input[name=start]", "16:00")
    page.fill("input[name=end]", "18:00")
    page.click("#forecast input[type=submit]")
    forecast = page.locator("#forecast-result").inner_text()
    # 7.0 kW enrolled x online rate 2/3 x delivered share 1.0 (no history) = 4.667 kW
    assert forecast == "4.667 kW available", forecast
    assert page.locator("#forecast-window").inner_text() == (
        f"LA Peak Rewards, {event_day} 16:00 {_abbr(event_day)} – {event_day} 18:00 {_abbr(event_day)} "
        "(America/Los_Angeles)")
    card = page.locator(f"#program-{program.pk}").inner_text()
    assert "3 (7.0 kW)" in card and "Active, America/Los_Angeles" in card
    _shot(page, "pa-3-dashboard-forecast.png")

    # 3. The event, typed in local wall-clock time (the labels name the zone).
    page.goto(f"{base}/admin/events/event/add/")  # from the events' list: no program chosen yet
    form_text = page.locator("#event_form").inner_text()
    assert "Start (local time in the selected program's zone)" in form_text, form_text[:2000]
    assert "LA Peak Rewards (America/Los_Angeles)" in page.locator("select[name=program]").inner_text()
    _shot(page, "pa-4a-event-add-without-program.png")
    page.goto(f"{base}/admin/events/event/add/?program={program.pk}")
    form_text = page.locator("#event_form").inner_text()
    assert "Start (America/Los_Angeles, local time)" in form_text, form_text[:2000]
    page.fill("input[name=name]", "Winter evening peak")
    page.fill("input[name=start_0]", event_day.isoformat())
    page.fill("input[name=start_1]", "16:00")
    page.fill("input[name=end_0]", event_day.isoformat())
    page.fill("input[name=end_1]", "18:00")
    page.fill("input[name=notification_at_0]", event_day.isoformat())
    page.fill("input[name=notification_at_1]", "10:00")
    _shot(page, "pa-4-event-add-local-time.png")
    page.click("input[name=_save]")
    assert "was added successfully" in _messages(page), page.content()[:3000]
    event = Event.objects.get(name="Winter evening peak")
    local_start = dt.datetime.combine(event_day, dt.time(16, 0), tzinfo=LA)
    assert event.start == local_start.astimezone(dt.UTC)
    assert event.end == dt.datetime.combine(event_day, dt.time(18, 0), tzinfo=LA).astimezone(dt.UTC)
    # 16:00 PST is 00:00 UTC the next day (PDT: 23:00 UTC the same day)
    assert event.start.astimezone(dt.UTC).hour == {-8: 0, -7: 23}[local_start.utcoffset() // dt.timedelta(hours=1)]
    _run_action(page, "schedule", ["Winter evening peak"])
    assert "Scheduled" in _messages(page), _messages(page)
    event.refresh_from_db()
    assert event.status == EventStatus.SCHEDULED and event.reserved_at is not None
    zone_abbr = local_start.strftime("%Z")
    row = page.locator("#result_list tr", has=page.locator("a:text-is('Winter evening peak')")).inner_text()
    assert f"{event_day:%Y-%m-%d} 16:00 {zone_abbr}" in row or f"16:00 {zone_abbr}" in row, row
    assert "Scheduled" in row
    _shot(page, "pa-5-event-list-scheduled.png")

    # 4. The event page: reservation decisions, participation, local times labelled.
    page.goto(f"{base}/dashboard/events/{event.pk}/")
    window = page.locator("#content-main table").first.inner_text()
    assert f"16:00 {zone_abbr}" in window and f"18:00 {zone_abbr}" in window and "Scheduled" in window
    assert "4.667 kW" in page.locator("#forecast-kw").inner_text()
    reservations = page.locator("#reservations").inner_text()
    # the device not seen for two days is skipped: offline beyond the program's online threshold
    assert re.search(r"Reserved\s+2\s+4\.0 kW\s+Device offline\s+1\s+3\.0 kW", reservations), reservations
    assert re.search(r"Reserved\s+2", page.locator("#participation").inner_text())
    _shot(page, "pa-6-event-page-reserved.png")

    # The event runs (the ticks' services), the meters report: 2 kWh an hour, 0.5 kWh an hour in the event.
    for service in (event_services.event_dispatch, event_services.event_activate, event_services.event_complete):
        service(event=event, now=event.start, actor=SYSTEM)
    for sub in subs:
        write_hourly(service_point=sub.enrollment.service_point, first=event_day - dt.timedelta(days=60),
                     last=event_day + dt.timedelta(days=1), overrides={h: 0.5 for h in event_hours(event.start, 2)})

    # Completing the event handed it to settlement before any meter data: its settlements wait (pending).
    assert sorted(EventSettlement.objects.filter(event=event).values_list("status", flat=True)) == [
        EventSettlementStatus.PENDING] * 2

    # 5. Settlement through the settle page: offered to the settlement analyst, named to the program administrator.
    page.goto(f"{base}/admin/settlement/settlementbatch/")
    assert "Settle events: not offered to you; it needs the capability" in page.locator("#content").inner_text()
    analyst = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(analyst, base, "sam", "/admin/settlement/settlementbatch/settle-events/")
    analyst.select_option("select[name=events]", str(event.pk))
    _shot(analyst, "pa-7-settle-events-page.png")
    analyst.click("#content form input[type=submit], #content form button[type=submit]")
    assert f"Winter evening peak ({event_day:%Y-%m-%d} 16:00 {zone_abbr}): re-settlement batch" in _messages(
        analyst), _messages(analyst)
    settlements = EventSettlement.objects.filter(event=event)
    assert settlements.count() == 2
    # each home: 2 h x (2.0 - 0.5) kWh = 3.0 kWh avoided x $1.25 = $3.75
    assert sorted(settlements.values_list("amount", flat=True)) == [Decimal("3.75")] * 2
    analyst.close()

    page.goto(f"{base}/dashboard/events/{event.pk}/")
    assert "Completed" in page.locator("#content-main table").first.inner_text()
    assert page.locator("#delivered-kw").inner_text().startswith("3.000 kW over 2 settled participations")
    assert page.locator("#credits-total").inner_text() == "$7.50"
    fleet = page.locator("#fleet").inner_text()
    assert "Interval start (America/Los_Angeles)" in fleet and f"17:00 {zone_abbr}" in fleet
    assert page.locator("#fleet svg").count() == 1
    _shot(page, "pa-8-event-page-settled.png")

    # 6. CSV of the events' list: times in UTC ISO 8601.
    page.goto(f"{base}/admin/events/event/")
    with page.expect_download() as download:
        _run_action(page, "export_csv", ["Winter evening peak"])
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert rows[0][:6] == ["name", "program", "category", "status", "start", "end"], rows[0]
    assert rows[1][0] == "Winter evening peak" and rows[1][3] == "completed"
    assert rows[1][4:6] == [event.start.isoformat(), event.end.isoformat()]  # UTC, "+00:00"
    assert rows[1][4].endswith("+00:00")


# ------------------------------------------------------------------------------------------- settlement analyst
@pytest.fixture
def settled_season(transactional_db):
    """Summer 2026 of an after-event program ($1.25/kWh): the 2026-07-15 event (16:00-19:00 PDT) settled for two
    homes, each 3 h x (2.0 - 0.5) kWh = 4.5 kWh avoided = $5.63 (4.5 x 1.25 = 5.625, rounded half up)."""
    program = ProgramFactory(code="summer-saver", name="Summer Saver")
    SeasonFactory(program=program, name="Summer 2026")
    ParticipationRuleFactory(program=program)
    IncentiveRuleFactory(program=program, amount=Decimal("1.25"))
    event = EventFactory(program=program, name="Heat wave")
    for _ in range(2):
        sub = active_participant(program=program)
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), overrides={h: 0.5 for h in event_hours()})
        ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.PARTICIPATED)
    with run_on_commit():
        settlement_services.event_settle(event=event, now=dt.datetime(2026, 7, 20, tzinfo=dt.UTC), actor=SYSTEM)
    return program, event


def test_settlement_analyst_path(live_server, browser, settled_season, django_user_model):  # noqa: F811
    """Approve the event's settlements, settle the season into customer settlements, approve them, export the bill
    credits and read the file: amounts with currency and two decimals on every page."""
    program, event = settled_season
    _user(django_user_model, "sam", roles.SETTLEMENT_ANALYST)
    # A wide screen: the settlement lists have 13 columns (at 1280 px the amounts are reached by scrolling sideways).
    page = browser.new_page(viewport={"width": 1720, "height": 900}, accept_downloads=True)
    base = live_server.url
    assert sorted(EventSettlement.objects.values_list("amount", flat=True)) == [Decimal("5.63")] * 2

    _login(page, base, "sam", "/admin/settlement/eventsettlement/")
    listing = page.locator("#result_list").inner_text()
    assert listing.count("$5.63") == 2 and "Calculated" in listing, listing
    assert "2026-07-15" in listing
    _select_all_rows(page)
    page.select_option("select[name=action]", "approve")
    with page.expect_navigation():  # the next page, with its messages, not the one the click left
        page.click("button[name=index]")
    assert "approved" in _messages(page).lower(), _messages(page)
    assert set(EventSettlement.objects.values_list("status", flat=True)) == {EventSettlementStatus.APPROVED}
    assert page.locator("#result_list").inner_text().count("Approved") == 2
    _shot(page, "sa-1-event-settlements-approved.png")

    page.goto(f"{base}/admin/settlement/eventsettlement/{EventSettlement.objects.order_by('pk').first().pk}/change/")
    detail = page.locator("#content").inner_text()
    assert "$5.63" in detail and "4.50 kWh" in detail and "1.50 kW" in detail
    assert "in Heat wave (2026-07-15 16:00 PDT)" in detail and " UTC)" not in detail  # local, labelled
    assert analyst_chart_x_range(EventSettlement.objects.order_by("pk").first()) == (
        dt.datetime(2026, 7, 15, 16), dt.datetime(2026, 7, 15, 19))  # the chart covers the whole event window
    _shot(page, "sa-2-event-settlement-detail.png")

    page.goto(f"{base}/admin/settlement/settlementbatch/settle-season/")
    page.select_option("select[name=program]", str(program.pk))
    page.select_option("select[name=season]", str(program.seasons.get().pk))
    _shot(page, "sa-2b-settle-season-page.png")
    page.click("#content form input[type=submit], #content form button[type=submit]")
    assert "Season settlement batch" in _messages(page), _messages(page)
    assert CustomerSettlement.objects.count() == 2

    page.goto(f"{base}/admin/settlement/customersettlement/")
    listing = page.locator("#result_list").inner_text()
    assert listing.count("$5.63") == 2, listing
    _select_all_rows(page)
    page.select_option("select[name=action]", "approve")
    with page.expect_navigation():  # the next page, with its messages, not the one the click left
        page.click("button[name=index]")
    assert "2 customer settlement(s) approved." in _messages(page), _messages(page)
    _select_all_rows(page)
    page.select_option("select[name=action]", "export")
    with page.expect_navigation():  # the next page, with its messages, not the one the click left
        page.click("button[name=index]")
    export = BillCreditExport.objects.get()
    assert f"Exported {export.file_name}." in _messages(page), _messages(page)
    assert set(CustomerSettlement.objects.values_list("status", flat=True)) == {CustomerSettlementStatus.EXPORTED}
    _shot(page, "sa-3-customer-settlements-exported.png")

    page.goto(f"{base}/admin/settlement/billcreditexport/")
    row = page.locator("#result_list tbody tr").first.inner_text()
    assert "$11.26" in row and export.file_name in row, row
    _shot(page, "sa-4-bill-credit-export.png")
    with page.expect_download() as download:
        page.click("#result_list a:text-is('CSV')")
    lines = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert [line["amount"] for line in lines] == ["5.63", "5.63"]
    assert {line["program_code"] for line in lines} == {"summer-saver"}

    # The event settlements' list as CSV: money with two decimals, times in UTC.
    page.goto(f"{base}/admin/settlement/eventsettlement/")
    _select_all_rows(page)
    with page.expect_download() as download:
        page.select_option("select[name=action]", "export_csv")
        page.click("button[name=index]")
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    amount_col = rows[0].index("amount")
    assert [r[amount_col] for r in rows[1:]] == ["5.63", "5.63"]
    assert all(_money(f"${r[amount_col]}") for r in rows[1:])
