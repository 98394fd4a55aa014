"""The opt-out link of an event notice in a real browser: the customer opens the link from the e-mail, sees the
event in the program's zone, clicks once and is opted out; the same link again says it was used. Screenshots in
``test-artifacts/``."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

import pytest
from django.core import mail

from cpm.notifications import services
from cpm.notifications.tasks import send_due
from events.choices import EventStatus, ParticipationStatus
from events.models import Participation
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import AccountFactory, CustomerFactory, active_participant
from tests.factories.events import EventFactory, ParticipationFactory
from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import run_on_commit

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        yield b
        b.close()


def test_customer_opts_out_from_the_notice_link(transactional_db, live_server, browser, settings):
    settings.CPM_PUBLIC_BASE_URL = live_server.url
    settings.CPM_SMS_BACKEND = "cpm.notifications.channels.LocmemSmsBackend"
    settings.SECURE_SSL_REDIRECT = False
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    program = ProgramFactory(code="cool", name="Cool Rewards")
    SeasonFactory(program=program, start_date=now.date() - dt.timedelta(days=30),
                  end_date=now.date() + dt.timedelta(days=30))
    ParticipationRuleFactory(program=program, weekends_allowed=True, window_start=None, window_end=None)
    IncentiveRuleFactory(program=program)
    # Whatever the hour the test runs at, it is not quiet hours in the program's zone (they start in 2 hours).
    from zoneinfo import ZoneInfo

    from cpm.notifications.models import NotificationPolicy

    local = now.astimezone(ZoneInfo(program.time_zone))
    NotificationPolicy.objects.create(program=program, quiet_start=(local + dt.timedelta(hours=2)).time(),
                                      quiet_end=(local + dt.timedelta(hours=3)).time(), updated_at=now)
    sub = active_participant(program=program, account=AccountFactory(customer=CustomerFactory(
        first_name="Ana", last_name="Lopez", email="ana@example.com")))
    start = now + dt.timedelta(days=1)
    event = EventFactory(program=program, start=start, end=start + dt.timedelta(hours=3), notification_at=now,
                         status=EventStatus.DISPATCHED, reserved_at=now)
    ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.DISPATCHED)
    services.notifications_tick(now=now, actor=TEST_ACTOR)
    with run_on_commit():
        send_due(now=now)
    [email] = mail.outbox
    link = re.search(r"(http://\S+/notices/opt-out/\S+/)", email.body).group(1)

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page()
    page.goto(link)
    assert page.locator("#confirm").is_visible()
    assert "Cool Rewards" in page.locator("h1").inner_text()
    page.screenshot(path=str(ARTIFACTS / "opt-out-link-confirm.png"), full_page=True)
    page.get_by_role("button", name="Opt me out of this event").click()
    page.wait_for_selector("#done")
    assert "You are opted out" in page.locator("#done").inner_text()
    page.screenshot(path=str(ARTIFACTS / "opt-out-link-done.png"), full_page=True)
    assert Participation.objects.get(event=event).status == ParticipationStatus.OPTED_OUT

    page.goto(link)
    assert "already used" in page.locator("#already").inner_text()
    page.goto(link[:-4] + "xyz/")
    assert "not valid" in page.locator("#refused").inner_text()
    page.screenshot(path=str(ARTIFACTS / "opt-out-link-refused.png"), full_page=True)
