"""The demo season: each event's stored forecast against its delivered kW drop, printed and on the event page."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from cpm.base import roles
from events.models import Event
from tests.factories.enrollments import staff_user


@pytest.mark.django_db(transaction=True)
def test_demo_prints_forecast_versus_delivered_and_the_event_page_shows_it(tmp_path, client, settings):
    settings.SECURE_SSL_REDIRECT = False
    out = StringIO()
    call_command("demo", "--quick", "--out-dir", str(tmp_path), stdout=out)
    text = out.getvalue()
    assert "Forecast of available kW" in text and "delivered share now" in text
    completed = list(Event.objects.filter(status="completed").select_related("program"))
    for e in completed:
        assert e.name[:44] in text
    # The forecast is of devices' available kW: the peak-time rebate (no device, issue 19) forecasts none.
    ptr = [e for e in completed if e.program.program_type == "peak_time_rebate"]
    assert len(ptr) == 2 and all(e.forecast_kw == 0 for e in ptr)
    events = [e for e in completed if e not in ptr]
    assert len(events) == 5 and all(e.forecast_kw is not None and e.forecast_kw > 0 for e in events)
    client.force_login(staff_user(roles.PROGRAM_ADMIN, "dash-admin"))
    event = events[0]
    response = client.get(reverse("dashboard:event", args=[event.pk]))
    page = response.context["page"]
    assert page.settled > 0 and page.delivered_kw > 0 and page.interval_starts
    html = response.content.decode()
    assert f"{event.forecast_kw:.3f} kW" in html and "&times; the forecast" in html
    dashboard = client.get(reverse("dashboard:index"))
    assert dashboard.status_code == 200 and dashboard.content.decode().count("<svg") >= 2
