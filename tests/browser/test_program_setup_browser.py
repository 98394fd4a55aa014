"""Program set-up in a real browser (issue 17, point 3): the add form in sections with the eligibility lists as
ticked values; a full-page screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import os

import pytest

from tests.factories.devices import ServicePointFactory

from .test_csr_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is missing")]


def test_program_add_form_in_sections_with_ticked_values(live_server, browser, transactional_db,  # noqa: F811
                                                         django_user_model):
    django_user_model.objects.create_superuser("pat", "pat@example.com", "pat-password-1")
    ServicePointFactory(rate_code="TOU-D", premise__service_territory="SCE")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/programs/program/add/")
    page.fill("input[name=username]", "pat")
    page.fill("input[name=password]", "pat-password-1")
    page.click("input[type=submit]")
    assert page.locator("input[name=excludes_life_support]").is_checked()
    assert page.locator("input[name=eligible_device_types][value=thermostat]").count() == 1
    assert page.locator("input[name=eligible_territories][value=SCE]").count() == 1
    height = page.evaluate("document.documentElement.scrollHeight")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "program-add-form.png"), full_page=True)
    assert height < 9459 / 2, height  # the one long form of the issue was 9,459 pixels
