"""The CSR page in a real browser (Playwright driving Debian's chromium against Django's live server).

A CSR logs in, finds a customer, sees eligibility with reasons, enrolls the customer, opts a device out of an
upcoming event and sees the change; a screenshot is kept in ``test-artifacts/``. A user without the CSR role is
refused.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from cpm.base import roles
from enrollments.models import Enrollment
from events.choices import EventStatus, ParticipationStatus
from events.models import Participation
from tests.factories.devices import DeviceFactory, DeviceInstallationFactory
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, ParticipationFactory
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (apt-get install "
                                                            "chromium)"),
]

# Django's live server runs in a thread; the sync Playwright API runs an event loop in this one.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def scenario(transactional_db, django_user_model):
    csr = django_user_model.objects.create_user("carol", password="carol-password-1")
    csr.groups.add(Group.objects.get(name=roles.CSR))
    analyst = django_user_model.objects.create_user("sam", password="sam-password-1")
    analyst.groups.add(Group.objects.get(name=roles.SETTLEMENT_ANALYST))

    ev_program = ProgramFactory(code="ev", name="EV Smart Charging", eligible_device_types=["ev_charger"])
    ParticipationRuleFactory(program=ev_program, window_start=None, window_end=None, opt_out_cutoff_minutes=30)
    sub = active_participant(program=ev_program, device_kwargs={"device_type": "ev_charger",
                                                                "serial_number": "EVSE-77"})
    account = sub.enrollment.account
    account.customer.first_name, account.customer.last_name = "Chinwe", "Okafor"
    account.customer.save()
    premise = sub.enrollment.service_point.premise
    premise.city, premise.service_territory = "Anaheim", "SCE"
    premise.save()
    thermostat = DeviceFactory(serial_number="TSTAT-1")
    DeviceInstallationFactory(device=thermostat, service_point=sub.enrollment.service_point)
    ProgramFactory(code="tstat", name="Thermostat Rewards", eligible_rate_codes=["TOU-D"])
    ProgramFactory(code="biz", name="Business Peak Saver", eligible_rate_codes=["TOU-GS-1"])
    ProgramFactory(code="ngrid", name="National Grid Batteries", eligible_territories=["NGRID-MA"])
    start = (timezone.now() + dt.timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    event = EventFactory(program=ev_program, name="Evening peak", start=start, end=start + dt.timedelta(hours=2),
                         notification_at=start - dt.timedelta(hours=1), status=EventStatus.SCHEDULED)
    participation = ParticipationFactory(event=event, subscription=sub)
    return {"customer": account.customer, "participation": participation}


def _shown(page, selector: str) -> bool:
    """Whether ``selector`` is visible once the page a click started has rendered: ``is_visible`` answers at once, and a
    click returns when its navigation commits, before the new page is drawn (on a loaded machine the check ran on the
    page before). Waits up to 10 s for it, then answers."""
    from playwright.sync_api import TimeoutError as NotShown

    try:
        page.locator(selector).first.wait_for(state="visible", timeout=10_000)
    except NotShown:
        pass  # the answer below says it is not visible
    return page.is_visible(selector)


def _login(page, base, username, password):
    page.goto(f"{base}/accounts/login/?next=/csr/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")


def test_csr_finds_enrolls_and_opts_out(live_server, browser, scenario):
    page = browser.new_page()
    _login(page, live_server.url, "carol", "carol-password-1")
    page.fill("input[name=q]", "Okafor")
    page.click("button[type=submit]")
    page.click("table a:has-text('Okafor')")
    assert _shown(page, "h1:has-text('Okafor')")

    biz = page.locator("tr.eligibility[data-program=biz]")
    assert "Not eligible" in biz.inner_text()
    assert "TOU-GS-1" in biz.inner_text() or "rate" in biz.inner_text().lower()

    page.locator("tr.eligibility[data-program=tstat] form.enroll-form button").click()
    assert _shown(page, "text=Enrolled in Thermostat Rewards (Active).")
    assert Enrollment.objects.filter(program__code="tstat", status="active").count() == 1

    page.locator("#upcoming form.opt-out-form input[name=reason]").fill("Road trip")
    page.locator("#upcoming form.opt-out-form button").click()
    # Issue 17: a confirmation step before the opt-out happens.
    assert _shown(page, "h1:has-text('Confirm opt-out')")
    assert Participation.objects.get(pk=scenario["participation"].pk).status == ParticipationStatus.RESERVED
    page.locator("form.confirm-form button").click()
    assert _shown(page, "text=Opted out of Evening peak.")
    assert Participation.objects.get(pk=scenario["participation"].pk).status == ParticipationStatus.OPTED_OUT
    upcoming = page.locator("#upcoming").inner_text()
    assert "Opted out" in upcoming and "Already opted out at" in upcoming
    assert page.locator("#upcoming form.opt-out-form").count() == 0

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "csr-customer-page.png"), full_page=True)
    assert (ARTIFACTS / "csr-customer-page.png").stat().st_size > 10_000


def test_user_without_csr_role_is_refused(live_server, browser, scenario):
    page = browser.new_page()
    _login(page, live_server.url, "sam", "sam-password-1")
    response = page.goto(f"{live_server.url}/csr/")
    assert response.status == 403


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    assert (ARTIFACTS / name).stat().st_size > 10_000


def test_csr_path_first_name_enroll_opt_out_and_unenroll_with_confirmation(live_server, browser, scenario):
    """Issue 17's CSR path: search by first name, see the programs (enrolled as enrolled, other utilities' under
    "not offered here"), enroll, opt out and unenroll each through a confirmation step; screenshots of each page."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _login(page, live_server.url, "carol", "carol-password-1")
    page.fill("input[name=q]", "Chinwe")
    page.click("button[type=submit]")
    assert _shown(page, "text=1 customer found")
    _shot(page, "csr-1-search-first-name.png")
    page.click("table a:has-text('Okafor')")

    assert "Enrolled" in page.locator("tr.eligibility[data-program=ev]").inner_text()
    assert page.locator("tr.eligibility[data-program=ngrid]").count() == 0
    page.locator("#not-offered summary").click()
    assert "National Grid Batteries" in page.locator("#not-offered").inner_text()
    page.locator("tr.eligibility[data-program=tstat] form.enroll-form button").click()
    assert _shown(page, "text=Enrolled in Thermostat Rewards (Active).")
    assert "Enrolled (Active)" in page.locator("tr.eligibility[data-program=tstat]").inner_text()
    _shot(page, "csr-2-enrolled.png")

    page.locator("#upcoming form.opt-out-form button").click()
    assert _shown(page, "h1:has-text('Confirm opt-out')")
    _shot(page, "csr-3-opt-out-confirm.png")
    page.locator("form.confirm-form button").click()
    assert _shown(page, "text=Opted out of Evening peak.")
    assert Participation.objects.get(pk=scenario["participation"].pk).status == ParticipationStatus.OPTED_OUT

    tstat = Enrollment.objects.get(program__code="tstat")
    page.locator(f"form.unenroll-form[action$='/enrollments/{tstat.pk}/unenroll/'] button").click()
    assert _shown(page, "h1:has-text('Confirm unenrollment')")
    _shot(page, "csr-4-unenroll-confirm.png")
    page.locator("a:has-text('Cancel, change nothing')").click()
    assert Enrollment.objects.get(pk=tstat.pk).status == "active"
    page.locator(f"form.unenroll-form[action$='/enrollments/{tstat.pk}/unenroll/'] button").click()
    page.locator("form.confirm-form button").click()
    assert _shown(page, "text=Unenrolled from Thermostat Rewards.")
    assert Enrollment.objects.get(pk=tstat.pk).status == "unenrolled"
    _shot(page, "csr-5-customer-page-after.png")
