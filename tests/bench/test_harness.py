"""The benchmark harness's pure parts: the shared generator's load shapes and the report arithmetic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from bench import seed
from bench.__main__ import growth_table, summary_rows
from tests.actors import TEST_ACTOR

GREENBUTTON = seed.GREENBUTTON_DIR


def test_synthetic_shape_without_green_button_files(tmp_path):
    names, shapes = seed.load_shapes(tmp_path)
    assert names == ["synthetic"]
    assert shapes.shape == (1, 8760)
    assert shapes.mean() == pytest.approx(1.0)
    # Evening peak (18:00 Pacific = 02:00 UTC next day) above the night (03:00 Pacific = 11:00 UTC), in July.
    july = 196 * 24
    assert shapes[0, july + 26] > 1.3 * shapes[0, july + 11]


@pytest.mark.skipif(not (GREENBUTTON.is_dir() and any(GREENBUTTON.glob("*.xml"))),
                    reason=f"Green Button samples (*.xml) not found in {GREENBUTTON}")
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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_shared_population_settles_with_the_simulated_response():
    """The benchmark data set end to end at N = 40: the seeded population, the interval data of the settled event
    (Green Button shapes, participating thermostats shed 30 % in event hours) and its event settlement."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the generator writes by PostgreSQL COPY")
    from events.models import Participation
    from settlement import services
    from settlement.meterdata.intervals import decode
    from settlement.models import EventSettlement, IntervalDay

    seed.seed_population(40, history=6)
    event, first_day, days = seed.settled_event(6)
    assert (event.name, days) == ("Past 5", 48)
    assert Participation.objects.filter(event=event).count() == 40  # the last past event called every device
    assert seed.seed_interval_days(40, first_day=first_day, days=days, block=16) == 40 * days
    assert seed.interval_days_present(40, first_day, days)
    # A participating service point's event hours are 70 % of its unshed load; an opted-out one's are not reduced.
    _, shapes = seed.load_shapes()
    t0 = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    h0 = int((event.start - t0).total_seconds() // 3600)
    block = seed.hourly_kwh(shapes, np.arange(1, 17), first_day, days).reshape(16, -1)  # the first block of 16
    for p in Participation.objects.filter(event=event).order_by("service_point_id")[:3]:
        raw = block[p.service_point_id - 1]
        day = first_day + dt.timedelta(days=h0 // 24)
        stored = decode(IntervalDay.objects.get(service_point_id=p.service_point_id, day=day).values)
        factor = 1 - seed.RESPONSE if p.status == "participated" else 1.0
        assert stored[h0 % 24] == pytest.approx(round(raw[h0] * factor, 3), abs=1e-6)
    services.event_settle(event=event, now=dt.datetime(2026, 7, 20, tzinfo=dt.UTC), actor=TEST_ACTOR)
    settled = EventSettlement.objects.filter(event=event)
    assert settled.count() == 40
    assert set(settled.values_list("status", flat=True)) == {"deferred"}  # a season-end program
    shed = settled.filter(opted_out=False)
    assert shed.count() == 40 - Participation.objects.filter(event=event, status="opted_out").count()
    assert all(es.kwh_avoided > 0 and es.amount > 0 for es in shed)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_seeded_customers_carry_their_search_keys():
    """The seeder writes customers by COPY (no Customer.save): it fills the CSR search keys of the names itself."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the generator writes by PostgreSQL COPY")
    from cpm.csr.selectors import customer_search
    from enrollments.models import Customer, name_key

    seed.seed_population(12, history=1)
    rows = list(Customer.objects.values_list("first_name", "last_name", "first_name_key", "last_name_key"))
    assert len(rows) == 12
    assert all((fk, lk) == (name_key(f), name_key(last)) and lk for f, last, fk, lk in rows), rows
    found = {c.pk for c in customer_search(query=seed.last_name(5).upper())}
    same = set(Customer.objects.filter(last_name=seed.last_name(5)).values_list("pk", flat=True))
    assert 5 in found and found == same


def test_pages_table_flags_query_counts_that_grow():
    from bench.__main__ import pages_table

    page = {"median_ms": 10.0, "p95_ms": 12.0}
    runs = [{"n": 10, "pages": {"pages": {"a": {**page, "queries": 6}, "b": {**page, "queries": 5}}}},
            {"n": 100, "pages": {"pages": {"a": {**page, "queries": 5}, "b": {**page, "queries": 6}}}}]
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in pages_table(runs).splitlines()[2:]}
    assert rows == {"a": "no", "b": "YES"}  # fewer queries at larger N (an estimated count) is not growth


def test_the_benchmarks_refuse_a_database_not_their_own(monkeypatch):
    """They truncate their database's tables: a DATABASE_URL left exported for cpm is refused, not erased."""
    from bench.common import bench_database_error

    monkeypatch.delenv("BENCH_ANY_DATABASE", raising=False)
    assert bench_database_error("postgres://postgres@127.0.0.1:5432/cpm_bench") is None
    assert bench_database_error("postgres://u@db.example:5432/bench_1m") is None
    error = bench_database_error("postgres://postgres@127.0.0.1:5432/cpm")
    assert error is not None and "'cpm'" in error and "BENCH_ANY_DATABASE=1" in error
    monkeypatch.setenv("BENCH_ANY_DATABASE", "1")
    assert bench_database_error("postgres://postgres@127.0.0.1:5432/cpm") is None


def test_issue_20_targets_apply_from_one_million():
    """At 100,000 the first benchmarks' targets; at 1,000,000 issue 20's: reservation <= 30 s, settlement (in one
    process and through workers) <= 1.5x the plain read, customer settlement <= 120 s."""
    figures = {"reservation": {"reserve_s": 25.0, "distributed": {"1": {"s": 40.0, "identical": True},
                                                                  "2": {"s": 28.0, "identical": True}}},
               "settlement": {"settle_s": 200.0, "plain_read_s": 100.0, "ratio": 2.0, "customer_settlement_s": 110.0,
                              "workers": 2, "settle_1_worker_s": 180.0, "settle_2_workers_s": 140.0,
                              "identical": True}}
    for n in (100_000, 1_000_000):  # (figure, value, target, met?, load): what the report unpacks
        assert {len(r) for r in summary_rows({"n": n, **figures})} == {5}
    small = {r[0]: r[1:4] for r in summary_rows({"n": 100_000, **figures})}
    assert small["Reservation, one event (s)"] == ("25.00", "<= 20 s", "NOT met")
    assert small["Event settlement (s)"] == ("200.00", "<= 60 s", "NOT met")
    assert small["Settlement time / plain read"] == ("2.00x", "<= 3x", "met")
    assert small["Season-end customer settlement (s)"] == ("110.00", "-", "-")
    large = {r[0]: r[1:4] for r in summary_rows({"n": 1_000_000, **figures})}
    assert large["Reservation, one event (s)"] == ("25.00", "<= 30 s", "met")
    assert large["Reservation via Celery, 1 worker process(es) (s)"] == ("40.00", "<= 30 s", "NOT met, identical")
    assert large["Reservation via Celery, 2 worker process(es) (s)"] == ("28.00", "<= 30 s", "met, identical")
    assert large["Event settlement (s)"] == ("200.00", "-", "-")
    assert large["Settlement time / plain read"] == ("2.00x", "<= 1.5x", "NOT met")
    assert large["Event settlement via Celery, 2 worker process(es) (s)"] == ("140.00", "", "identical")
    assert large["Event settlement via 2 worker process(es) / plain read"] == ("1.40x", "<= 1.5x", "met")
    assert large["Event settlement via 1 worker process(es) / plain read"] == ("1.80x", "<= 1.5x", "NOT met")
    assert large["Season-end customer settlement (s)"] == ("110.00", "<= 120 s", "met")


def test_large_sizes_run_their_own_steps_once():
    from types import SimpleNamespace

    from bench.__main__ import runs_for, steps_for

    opts = SimpleNamespace(steps=["reservation", "loading", "settlement", "pages"],
                           large_steps=["reservation", "settlement"], runs=0)
    assert steps_for(100_000, opts) == ["reservation", "loading", "settlement", "pages"]
    assert steps_for(1_000_000, opts) == ["reservation", "settlement"]
    assert runs_for(100_000, opts) == [] and runs_for(1_000_000, opts) == ["--runs", "1"]
    opts.runs, opts.large_steps = 2, []
    assert steps_for(1_000_000, opts) == opts.steps
    assert runs_for(100_000, opts) == runs_for(1_000_000, opts) == ["--runs", "2"]


def test_a_report_of_both_sizes_is_rendered_from_the_raw_results(tmp_path, capsys):
    """The report the harness prints and appends, rendered from a run's raw results (``--report-from``): issue 20's
    targets at 1,000,000, the first benchmarks' at 100,000, the growth between them."""
    import json
    from types import SimpleNamespace

    from bench.__main__ import report_from

    def figures(scale):
        return {"reservation": {"reserve_s": 7.0 * scale, "peak_rss_mb": 150.0,
                                "distributed": {"1": {"s": 9.0 * scale, "identical": True},
                                                "2": {"s": 5.0 * scale, "identical": True}},
                                "workers": 2, "speedup": 1.8},
                "settlement": {"settle_s": 30.0 * scale, "plain_read_s": 12.0 * scale, "ratio": 2.5,
                               "customer_settlement_s": 27.0 * scale, "workers": 2, "settle_1_worker_s": 30.0 * scale,
                               "settle_2_workers_s": 15.0 * scale, "identical": True, "peak_rss_mb": 300.0}}

    raw = {"machine": {"date": "2026-12-07 00:00 UTC", "nproc": 2, "commit": "abc1234"},
           "runs": [{"n": 100_000, **figures(1)}, {"n": 1_000_000, **figures(10)}]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(raw))
    out = tmp_path / "BENCH.md"
    assert report_from(path, SimpleNamespace(repeat=20, write_markdown=str(out))) == 0
    text = out.read_text()
    assert "## Run of 2026-12-07 00:00 UTC: N = 100,000, 1,000,000" in text
    line = next(x for x in text.splitlines() if x.startswith("| Reservation, one event (s)"))
    assert "7.00 (NOT met)" not in line and "70.00 (NOT met)" in line  # <= 20 s at 100k is met; <= 30 s at 1M not
    rows = {x.split("|")[1].strip(): x.split("|")[2].strip() for x in text.splitlines() if x.startswith("| ")}
    assert rows["Reservation, one event (s)"] == "N=100,000: <= 20 s; N=1,000,000: <= 30 s"
    assert rows["Settlement time / plain read"] == "N=100,000: <= 3x; N=1,000,000: <= 1.5x"
    assert rows["Season-end customer settlement (s)"] == "N=1,000,000: <= 120 s"
    assert rows["Reservation peak RSS (MB)"] == "<= 1024"
    assert "Growth with N" in text
    (tmp_path / "bad.json").write_text("{}")
    assert report_from(tmp_path / "bad.json", SimpleNamespace(repeat=20, write_markdown=None)) == 2
    assert "not the raw results of a run" in capsys.readouterr().err
