"""The available-kW forecast on the hand-built fleet of ``tests.dashboard.fleet`` (exact numbers)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.audit import AuditEntry
from events import services
from events.choices import EventStatus
from events.models import Event
from settlement.forecast import DEFAULT_DELIVERED_SHARE, available_kw_forecast, delivered_shares, forecast_kw
from tests.actors import TEST_ACTOR
from tests.factories.events import EventFactory, la
from tests.factories.programs import ProgramFactory

from .fleet import NOW, build_fleet, device

pytestmark = pytest.mark.django_db

START, END = la(2026, 7, 15, 15), la(2026, 7, 15, 18)


def test_forecast_all_devices():
    """Counted devices d1..d4 (d5 inactive, d6 not approved): 2 + 1 + 5 + 3 = 11.0 kW; online d1 and d3 (d2 seen
    120 min before, threshold 60; d4 never): 2 / 4 = 0.5; delivered share (1.2 + 1.8) / (2.0 + 2.0) = 0.75 over one
    settled event (the PENDING 5 kW settlement is not counted). 11.0 x 0.5 x 0.75 = 4.125 kW."""
    program, _ = build_fleet()
    f = available_kw_forecast(program=program, start=START, end=END, now=NOW)
    assert (f.devices, f.enrolled_kw, f.online_devices, f.online_rate) == (4, Decimal("11.000"), 2, Decimal("0.5"))
    assert (f.delivered_share, f.share_events, f.share_is_default) == (Decimal("0.75"), 1, False)
    assert f.forecast_kw == Decimal("4.125")
    assert "11.000 kW enrolled on 4 devices" in f.explanation() and "= 4.125 kW" in f.explanation()


def test_forecast_by_device_type_and_territory():
    """Thermostats d1, d2, d4: 6.0 kW, 1 of 3 online (rate rounded to 0.3333): 6 x 0.3333 x 0.75 = 1.49985 ->
    1.500 kW. Territory SOUTH: the battery d3 alone, 5.0 kW, online: 5 x 1 x 0.75 = 3.750 kW."""
    program, _ = build_fleet()
    t = available_kw_forecast(program=program, start=START, end=END, now=NOW, device_types=["thermostat"])
    assert (t.devices, t.enrolled_kw, t.online_rate, t.forecast_kw) == (3, Decimal("6.000"), Decimal("0.3333"),
                                                                         Decimal("1.500"))
    s = available_kw_forecast(program=program, start=START, end=END, now=NOW, territories=["SOUTH"])
    assert (s.devices, s.enrolled_kw, s.online_rate, s.forecast_kw) == (1, Decimal("5.000"), Decimal("1"),
                                                                         Decimal("3.750"))


def test_no_history_uses_the_default_share_and_no_devices_forecasts_zero():
    """A program with one online 2.5 kW device and no settled event: 2.5 x 1 x 1.0 (default) = 2.500 kW."""
    program = ProgramFactory(device_online_threshold_minutes=60)
    device(program, "2.5", NOW)
    f = available_kw_forecast(program=program, start=START, end=END, now=NOW)
    assert (f.delivered_share, f.share_is_default, f.forecast_kw) == (DEFAULT_DELIVERED_SHARE, True, Decimal("2.500"))
    assert "default delivered share" in f.explanation()
    empty = available_kw_forecast(program=ProgramFactory(), start=START, end=END, now=NOW)
    assert (empty.devices, empty.online_rate, empty.forecast_kw) == (0, Decimal(0), Decimal("0.000"))


def test_delivered_shares_constant_queries(django_assert_num_queries):
    program, _ = build_fleet()
    other = ProgramFactory()
    with django_assert_num_queries(2):
        shares = delivered_shares(program_ids=[program.pk, other.pk])
    assert shares[program.pk].share == Decimal("0.75") and shares[other.pk].is_default


def test_forecast_kw_rounds_half_up_to_the_watt():
    assert forecast_kw(Decimal("1"), Decimal("0.0005"), Decimal("1")) == Decimal("0.001")


def test_reservation_stores_the_forecast_on_the_event_with_an_audit_entry():
    """Reserving an event (all devices) stores 4.125 kW (the past event is its history, the event itself is not)."""
    program, _ = build_fleet()
    event = EventFactory(program=program, start=START, end=END, status=EventStatus.SCHEDULED)
    services.event_reserve(event=event, now=NOW, actor=TEST_ACTOR)
    assert Event.objects.get(pk=event.pk).forecast_kw == Decimal("4.125")
    entry = AuditEntry.objects.get(code="event.forecast", object_id=str(event.pk))
    assert entry.changes["forecast"]["forecast_kw"] == "4.125" and entry.actor_label.startswith("system:")


def test_targeted_event_forecast_uses_its_targeting():
    program, _ = build_fleet()
    event = EventFactory(program=program, start=START, end=END, status=EventStatus.SCHEDULED,
                         target_territories=["SOUTH"], notification_at=START - dt.timedelta(hours=2))
    services.event_reserve(event=event, now=NOW, actor=TEST_ACTOR)
    assert Event.objects.get(pk=event.pk).forecast_kw == Decimal("3.750")


def test_forecast_as_of_an_earlier_instant_uses_only_events_ended_by_then():
    """The dashboard's forecast form as of a past day (``?as_of=``) took the delivered share from every settled
    event, also those of later days: as of 2026-07-01 12:00Z, before the ``past`` event (2026-07-01 23:00Z to
    2026-07-02 01:00Z), the share read 0.75 "over 1 settled event". It is now the default 1.0 with no event, and
    0.75 once that event has ended (QA guard). Online as the reservation checks it (no upper bound on last seen):
    d1, d2, d3 seen after 11:00 are online, d4 never: 3 of 4 = 0.75; 11.0 x 0.75 x 1.0 = 8.250 kW."""
    program, _ = build_fleet()
    before = available_kw_forecast(program=program, start=START, end=END,
                                   now=dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC))
    assert (before.delivered_share, before.share_events, before.share_is_default) == (DEFAULT_DELIVERED_SHARE, 0,
                                                                                       True)
    assert (before.online_rate, before.forecast_kw) == (Decimal("0.75"), Decimal("8.250"))
    after = available_kw_forecast(program=program, start=START, end=END,
                                  now=dt.datetime(2026, 7, 2, 1, tzinfo=dt.UTC))
    assert (after.delivered_share, after.share_events) == (Decimal("0.75"), 1)
