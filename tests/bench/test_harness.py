"""The benchmark harness's pure parts: the shared generator's load shapes and the report arithmetic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from bench import seed
from bench.__main__ import _settlement_fallback, growth_table, summary_rows

GREENBUTTON = seed.GREENBUTTON_DIR


def test_synthetic_shape_without_green_button_files(tmp_path):
    names, shapes = seed.load_shapes(tmp_path)
    assert names == ["synthetic"]
    assert shapes.shape == (1, 8760)
    assert shapes.mean() == pytest.approx(1.0)
    # Evening peak (18:00 Pacific = 02:00 UTC next day) above the night (03:00 Pacific = 11:00 UTC), in July.
    july = 196 * 24
    assert shapes[0, july + 26] > 1.3 * shapes[0, july + 11]


@pytest.mark.skipif(not GREENBUTTON.is_dir(), reason="Green Button samples not present")
def test_green_button_shapes_parsed():
    names, shapes = seed.load_shapes(GREENBUTTON)
    assert "Inland_Single_Family" in names and len(names) == 6
    assert shapes.shape == (6, 8760)
    assert np.allclose(shapes.mean(axis=1), 1.0)
    assert not np.isnan(shapes).any()


def test_hourly_kwh_is_seeded_scaled_and_weekday_aligned(tmp_path):
    _, shapes = seed.load_shapes(tmp_path)
    ids = np.arange(1, 101)
    a = seed.hourly_kwh(shapes, ids, dt.date(2026, 7, 1), 2)
    b = seed.hourly_kwh(shapes, ids, dt.date(2026, 7, 1), 2)
    assert a.shape == (100, 2, 24)
    assert np.array_equal(a, b)  # deterministic for the same customers
    assert (a > 0).all()
    assert 0.3 < a.mean() < 2.5  # per-customer mean 0.5-2.0 kWh/h times the shape
    # 780 weeks back keeps the weekday: 2026-07-01 and 2011-07-20 are both Wednesdays.
    assert (dt.date(2026, 7, 1) - dt.timedelta(days=seed.SHIFT_DAYS)).weekday() == dt.date(2026, 7, 1).weekday()


def test_write_interval_csv(tmp_path):
    path = Path(tmp_path) / "r.csv"
    assert seed.write_interval_csv(path, n=3, first_day=dt.date(2026, 7, 1), days=1) == 72
    lines = path.read_text().splitlines()
    assert lines[0] == "service_point_id,channel,interval_start,interval_minutes,kwh"
    assert len(lines) == 73
    assert lines[1].startswith("SP00000001,delivered,2026-07-01T00:00:00Z,60,")
    assert lines[-1].startswith("SP00000003,delivered,2026-07-01T23:00:00Z,60,")


def test_settlement_text_fallback():
    text = ("N=100000 service points, 4600000 IntervalDay rows read\nsettle: 125.6 s  (completed, 20/20 chunks)\n"
            "plain SQL read of the same readings: 23.8 s\nratio settle / read: 5.29x (target <= 3x)\n"
            "peak memory (RSS): 439 MB (target < 1024 MB)\nqueries during settle: 250 (12.5 per chunk)\n")
    assert _settlement_fallback(text) == {"settle_s": 125.6, "plain_read_s": 23.8, "ratio": 5.29,
                                          "peak_rss_mb": 439.0, "queries": 250.0, "n": 100000.0}


def test_summary_tolerates_missing_keys():
    rows = summary_rows({"n": 10, "settlement": {"settle_s": 70.0}, "loading": {}, "reservation": None})
    by_name = {r[0]: r for r in rows}
    assert by_name["Event settlement (s)"][1:4] == ("70.00", "<= 60 s", "NOT met")
    assert by_name["Settlement time / plain read"][1] == "-"
    assert by_name["Season-end customer settlement (s)"][1] == "-"


def test_growth_table_verdicts():
    runs = [{"n": 10_000, "reservation": {"reserve_s": 2.0, "peak_rss_mb": 130.0}, "loading": {"load_s": 1.0}},
            {"n": 100_000, "reservation": {"reserve_s": 25.0, "peak_rss_mb": 140.0}, "loading": {"load_s": 8.0}}]
    table = growth_table(runs)
    lines = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "12.50x" in lines["Reservation"] and "FASTER than linear" in lines["Reservation"]
    assert "8.00x" in lines["Interval loading"] and "<= linear" in lines["Interval loading"]
    assert "flat" in lines["Reservation peak RSS"]
    assert growth_table(runs[:1]) is None
