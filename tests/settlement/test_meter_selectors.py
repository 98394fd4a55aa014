"""Interval matrices and series for settlement: stored days -> regular arrays, then the baseline engine."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from settlement.baselines import baseline_batch, baseline_for_event, resolve_params
from settlement.meterdata.loaders import meter_readings_load
from settlement.meterdata.selectors import baseline_span, interval_kw_frame, interval_kwh_matrix, load_series
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
LA = ZoneInfo("America/Los_Angeles")


def test_matrix_rows_gaps_and_resampling(now):
    a, b, c = ServicePointFactory(), ServicePointFactory(), ServicePointFactory()
    t0 = int(dt.datetime(2026, 5, 14, tzinfo=UTC).timestamp())
    # a: hourly 1..48 over two UTC days, hour 30 missing; b: 15-minute 0.25 kWh for one day; c: nothing
    starts_a = t0 + 3600 * np.arange(48)
    kwh_a = np.arange(1.0, 49.0)
    keep = np.arange(48) != 30
    starts_b = t0 + 900 * np.arange(96)
    meter_readings_load(now=now, arrays={
        "service_point": np.r_[np.full(47, a.pk), np.full(96, b.pk)],
        "start": np.r_[starts_a[keep], starts_b], "kwh": np.r_[kwh_a[keep], np.full(96, 0.25)],
        "minutes": np.r_[np.full(47, 60), np.full(96, 15)]}, actor=TEST_ACTOR)
    m = interval_kwh_matrix(service_point_ids=[c.pk, a.pk, b.pk], start=dt.datetime(2026, 5, 14, 20, tzinfo=UTC),
                            end=dt.datetime(2026, 5, 15, 8, tzinfo=UTC))
    assert m.kwh.shape == (3, 12)
    assert np.isnan(m.kwh[0]).all()
    assert list(m.kwh[1, :4]) == [21, 22, 23, 24] and np.isnan(m.kwh[1, 10])  # 06:00Z on May 15 = hour 30
    assert list(m.kwh[2, :4]) == [1.0, 1.0, 1.0, 1.0] and np.isnan(m.kwh[2, 4:]).all()  # 4 x 0.25 summed
    series = load_series(service_point_ids=[a.pk], start=dt.datetime(2026, 5, 14, tzinfo=UTC),
                         end=dt.datetime(2026, 5, 16, tzinfo=UTC))
    assert series[a.pk].kwh[29] == 30 and series[a.pk].interval_minutes == 60
    frame = interval_kw_frame(service_point_ids=[a.pk], tz=LA, first_day=dt.date(2026, 5, 14),
                              last_day=dt.date(2026, 5, 14))
    assert frame.start == dt.datetime(2026, 5, 14, 7, tzinfo=UTC) and frame.kwh.shape == (1, 24)
    assert frame.kw[0, 0] == 8.0


def test_stored_data_through_batch_and_single_baselines(now):
    rng = np.random.default_rng(3)
    sps = [ServicePointFactory() for _ in range(5)]
    ev_start, ev_end = dt.datetime(2026, 7, 15, 16, tzinfo=LA), dt.datetime(2026, 7, 15, 18, tzinfo=LA)
    start, end = baseline_span(event_start=ev_start, event_end=ev_end, tz=LA, lookback_days=45)
    n = int((end - start).total_seconds() // 3600)
    t = int(start.timestamp()) + 3600 * np.arange(n)
    kwh = rng.gamma(2.0, 1.0, size=(5, n))
    meter_readings_load(now=now, arrays={"service_point": np.repeat([s.pk for s in sps], n),
                                         "start": np.tile(t, 5), "kwh": kwh.ravel()}, actor=TEST_ACTOR)
    m = interval_kwh_matrix(service_point_ids=[s.pk for s in sps], start=start, end=end)
    np.testing.assert_array_equal(m.kwh, kwh)
    params = resolve_params("caiso-auto")
    batch = baseline_batch(start=m.start, interval_minutes=60, kwh=m.kwh, tz=LA, event_start=ev_start,
                           event_end=ev_end, params=params)
    for k in range(5):
        single = baseline_for_event(series=m.series(k), tz=LA, event_start=ev_start, event_end=ev_end, params=params)
        assert single.status == "OK" and batch.ok[k]
        np.testing.assert_allclose(batch.kwh_avoided[k], single.totals["kwh_avoided"], rtol=1e-12)
