"""Issue 17: the event page's fleet chart covers the whole event window and draws a battery program's telemetry as
the devices' output against their own baseline (discharge below 0 kW)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from cpm.base import roles
from events.choices import EventStatus
from settlement.charts import DEVICE_BASELINE, DEVICE_OUTPUT
from tests.factories.enrollments import staff_user
from tests.factories.events import EventFactory
from tests.factories.programs import ProgramFactory

from .fleet import device, settle

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 7, 1, 23, tzinfo=dt.UTC)  # 16:00 PDT


@pytest.fixture
def drawn(client, settings, monkeypatch):
    """The charts the event page drew (``StepChart`` values), in order."""
    settings.SECURE_SSL_REDIRECT = False
    client.force_login(staff_user(roles.PROGRAM_ADMIN))
    charts = []

    def capture(chart):
        charts.append(chart)
        return "<svg></svg>"

    monkeypatch.setattr("cpm.dashboard.charts.render_step_chart", capture)
    return client, charts


def _inputs(method, baseline, actual):
    return {"method": method, "start": START.isoformat(), "interval_minutes": 60, "baseline_kw": baseline,
            "adjusted_baseline_kw": baseline, "actual_kw": actual}


@pytest.mark.parametrize(("measurement", "method", "expected"), [
    ("meter_baseline", "caiso-10-in-10", {"Baseline": [3.0, 3.0, 3.0], "Adjusted baseline": [3.0, 3.0, 3.0],
                                          "Actual": [1.0, 1.5, 2.0]}),
    ("device_telemetry", "device-telemetry", {DEVICE_BASELINE: [0.0, 0.0, 0.0], DEVICE_OUTPUT: [-1.0, -1.5, -2.0]}),
])
def test_event_page_chart(drawn, measurement, method, expected):
    client, charts = drawn
    program = ProgramFactory(performance_measurement=measurement)
    event = EventFactory(program=program, start=START, end=START + dt.timedelta(hours=3),
                         notification_at=START - dt.timedelta(hours=2), status=EventStatus.COMPLETED)
    sub = device(program, "5.0", START, type_="battery" if measurement == "device_telemetry" else "thermostat")
    baseline = [0.0, 0.0, 0.0] if measurement == "device_telemetry" else [3.0, 3.0, 3.0]
    settle(event, sub, kw_drop="1.5", inputs=_inputs(method, baseline, [1.0, 1.5, 2.0]))
    assert client.get(reverse("dashboard:event", args=[event.pk])).status_code == 200
    (chart,) = charts
    assert chart.series == expected
    # three hourly intervals 16:00-19:00 PDT drawn to the event's end
    assert chart.x_range == (dt.datetime(2026, 7, 1, 16), dt.datetime(2026, 7, 1, 19)) == chart.window
