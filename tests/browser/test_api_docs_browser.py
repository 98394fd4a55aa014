"""The API docs in a real browser: Swagger UI renders under the Content-Security-Policy (no inline script) with the
operations grouped by domain; a screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import os

import pytest

from .test_csr_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401 - the shared browser fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]


def test_swagger_ui_renders_grouped_operations(live_server, browser, transactional_db):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-tag", timeout=30_000)
    tags = page.locator(".opblock-tag").all_inner_texts()
    assert any(t.startswith("Events") for t in tags), tags
    assert any(t.startswith("Settlement and bill credits") for t in tags), tags
    assert any(t.startswith("Customers and enrollments") for t in tags), tags
    assert not [e for e in errors if "Content Security Policy" in e], errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs-swagger.png"), full_page=False)
