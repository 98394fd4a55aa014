"""The dashboard's forecast form refuses a day at the edge of the calendar in words (it was an HTTP 500:
9999-12-31 22:00 in Los Angeles is past year 9999 in UTC) (QA guard)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.mark.parametrize(("start", "end"), [("22:00", "23:30"), ("23:00", "01:00")])
def test_forecast_for_year_9999_is_a_form_error(client, admin_user, start, end):
    from tests.factories.programs import ProgramFactory

    program = ProgramFactory()
    client.force_login(admin_user)
    r = client.get("/dashboard/", {"program": program.pk, "day": "9999-12-31", "start": start, "end": end})
    assert r.status_code == 200
    assert "out of range" in r.content.decode()
