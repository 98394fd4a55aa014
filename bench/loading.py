"""Benchmark: interval data loading fast path vs a plain PostgreSQL COPY of the same CSV.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.loading --n 100000 --days 1

Uses the ``bench.seed`` population of N service points (seeded in a child process when missing), writes (in a child
process, so neither counts in this process's peak memory) a CSV of N x 24 x days hourly readings with the Green
Button load shapes, loads it by path through ``settlement.meterdata.loaders.meter_csv_load`` (streamed in blocks: parse,
resolve, spill to partition files when the file spans several blocks, merge, COPY binary), re-loads it (idempotent:
0 new), then COPYs the same CSV, streamed in blocks too, into a bare table: the file is never read whole into this
process; and (issue 20) the same COPY into a bare table partitioned by month like the interval data (target:
loading >= 60 % of that rate). Prints readings/s, the ratios to the plain COPYs, peak memory (after the first load)
and SQL queries, and a final ``BENCH_JSON {...}`` line.
Targets (issue 5): >= 200,000 readings/s and >= 30 % of the plain COPY; (issue 8) peak memory <= 1 GB and flat in N
(bounded by ``settlement.meterdata.loaders.BLOCK_BYTES`` and ``PARTITION_READINGS``, not by the file).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import bench_actor, emit, loadavg, peak_rss_mb, setup_django

FIRST_DAY = dt.date(2026, 7, 1)


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", *args], check=True, capture_output=True, text=True,
                         env=os.environ.copy())
    lines = [x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")]
    return json.loads(lines[-1].removeprefix("BENCH_JSON ")) if lines else {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", "--service-points", dest="n", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="Timed first loads and plain COPYs; the best is reported.")
    parser.add_argument("--history", type=int, default=6, help="History of the seeded population (bench.seed).")
    parser.add_argument("--write-csv", help=argparse.SUPPRESS)
    parser.add_argument("--baselines", action="store_true",
                        help="Also time baselines.baseline_batch on N service points x 48 days of hourly data.")
    args = parser.parse_args(argv)
    if args.write_csv:  # child: write the CSV only
        from .seed import write_interval_csv

        emit({"readings": write_interval_csv(Path(args.write_csv), n=args.n, first_day=FIRST_DAY, days=args.days)})
        return 0
    setup_django()
    seeded = _child("bench.seed", "--n", str(args.n), "--history", str(args.history))
    with tempfile.TemporaryDirectory(prefix="cpm-bench-") as tmp:
        path = Path(tmp) / "readings.csv"
        t = time.perf_counter()
        readings = _child("bench.loading", "--n", str(args.n), "--days", str(args.days), "--write-csv",
                          str(path))["readings"]
        gen_s = time.perf_counter() - t
        csv_bytes = path.stat().st_size
        from .seed import shapes_note

        print(f"CSV: {readings:,} readings, {csv_bytes / 1e6:.1f} MB (written in {gen_s:.1f}s; population seed "
              f"reused: {seeded.get('reused')}); load shapes: {shapes_note()}")
        result = _bench_load(path, readings, n=args.n, days=args.days, csv_bytes=csv_bytes, runs=args.runs)
    if args.baselines:
        _bench_baselines(args.n)
    emit(result)
    return 0


def _clear(days: int) -> None:
    """Only this step's days and loads: the settlement step's seeded lookback (May-June) stays."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM settlement_intervalday WHERE day >= %s AND day < %s",
                    [FIRST_DAY, FIRST_DAY + dt.timedelta(days=days)])
        cur.execute("DELETE FROM settlement_meterdataload WHERE file_name = 'bench.csv'")
        # The deleted rows' dead versions would otherwise slow every later load of the same day (each run deletes
        # 24 readings x N); a production table gets new days, not the same day again and again.
        cur.execute("VACUUM ANALYZE settlement_intervalday")


def _plain_copy(path: Path, *, partitioned: bool = False) -> tuple[float, int]:
    """Seconds and rows of a plain COPY of the CSV into a bare table (the floor). partitioned: the bare table is
    partitioned like the interval data (issue 20): by RANGE on the reading's start, one UTC month per partition of
    ``settlement_intervalday`` (the same bounds, made before the clock starts), and a DEFAULT partition."""
    from django.db import connection

    from settlement.meterdata.loaders import BLOCK_BYTES
    from settlement.meterdata.partitions import partitions

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_bare_readings")
        cur.execute("CREATE TABLE bench_bare_readings (service_point_id text, channel text, "
                    "interval_start timestamptz, interval_minutes int, kwh float8"
                    + (") PARTITION BY RANGE (interval_start)" if partitioned else ")"))
        if partitioned:
            for p in partitions():
                bounds = "DEFAULT" if p.is_default else \
                    f"FOR VALUES FROM ('{p.first} 00:00+00') TO ('{p.end} 00:00+00')"
                suffix = p.name.removeprefix("settlement_intervalday")  # _p2026_07, _default
                cur.execute(f"CREATE TABLE bench_bare_readings{suffix} PARTITION OF bench_bare_readings {bounds}")
        t = time.perf_counter()
        with cur.cursor.copy("COPY bench_bare_readings FROM STDIN (FORMAT CSV, HEADER)") as copy, \
                path.open("rb") as f:
            while block := f.read(BLOCK_BYTES):
                copy.write(block)
        plain = time.perf_counter() - t
        cur.execute("SELECT count(*) FROM bench_bare_readings")
        copied = cur.fetchone()[0]
        cur.execute("DROP TABLE bench_bare_readings")
    return plain, copied


def _bench_load(path: Path, readings: int, *, n: int, days: int, csv_bytes: int, runs: int = 3) -> dict:
    """Time the fast path (first load, re-load) and a plain COPY of the CSV at ``path``; returns the result dict.

    The first load and the plain COPY are each timed ``runs`` times (the day cleared in between; the machine is
    shared and timings vary from run to run): the best of each is the figure, all are reported."""
    from django.db import connection

    from settlement.meterdata.loaders import meter_csv_load

    _clear(days)
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    now = dt.datetime.now(dt.UTC)
    load = loadavg()
    t = time.perf_counter()
    with connection.execute_wrapper(count):
        first = meter_csv_load(path=path, now=now, file_name="bench.csv", actor=bench_actor())
    fast = time.perf_counter() - t
    peak = peak_rss_mb()
    print(f"fast path (first load):  {fast:7.2f} s  {readings / fast:12,.0f} readings/s   [{first.summary}] "
          f"{queries} SQL queries, load average {load:.2f}")
    t = time.perf_counter()
    again = meter_csv_load(path=path, now=now, file_name="bench.csv", actor=bench_actor())
    reload_s = time.perf_counter() - t
    print(f"fast path (re-load):     {reload_s:7.2f} s  {readings / reload_s:12,.0f} readings/s   [{again.summary}]")
    assert first.readings_new == readings and again.readings_unchanged == readings, (first.summary, again.summary)
    load_runs = [fast]
    for _ in range(runs - 1):
        _clear(days)
        t = time.perf_counter()
        assert meter_csv_load(path=path, now=now, file_name="bench.csv", actor=bench_actor()).readings_new == readings
        load_runs.append(time.perf_counter() - t)
    fast = min(load_runs)
    plain_load = loadavg()
    plain_runs = [_plain_copy(path) for _ in range(runs)]
    plain, copied = min(plain_runs)
    part_runs = [_plain_copy(path, partitioned=True) for _ in range(runs)]
    part_plain, part_copied = min(part_runs)
    with connection.cursor() as cur:
        cur.execute("ANALYZE settlement_intervalday")
    rate, plain_rate = readings / fast, copied / plain
    print(f"fast path, best of {len(load_runs)}: {fast:7.2f} s  {rate:12,.0f} readings/s  "
          f"({', '.join(f'{x:.2f}' for x in load_runs)} s)")
    print(f"plain COPY (bare table), best of {len(plain_runs)}: {plain:7.2f} s  {plain_rate:12,.0f} readings/s  "
          f"({', '.join(f'{x:.2f}' for x, _ in plain_runs)} s)")
    print(f"plain COPY (bare table partitioned by month), best of {len(part_runs)}: {part_plain:7.2f} s  "
          f"{part_copied / part_plain:12,.0f} readings/s  ({', '.join(f'{x:.2f}' for x, _ in part_runs)} s)")
    print(f"ratio fast/plain: {plain / fast:.0%}  (target >= 30 %); fast/plain partitioned: {part_plain / fast:.0%} "
          f"(target >= 60 %); target >= 200,000 readings/s: {'met' if rate >= 200_000 else 'NOT met'}; "
          f"peak RSS {peak:.0f} MB")
    return {"step": "loading", "n": n, "days": days, "readings": readings, "load_s": round(fast, 3),
            "readings_per_s": round(rate), "reload_s": round(reload_s, 3), "plain_copy_s": round(plain, 3),
            "load_runs_s": [round(x, 3) for x in load_runs], "plain_runs_s": [round(x, 3) for x, _ in plain_runs],
            "plain_copy_readings_per_s": round(plain_rate), "ratio_of_copy_rate": round(plain / fast, 3),
            "time_ratio": round(fast / plain, 2), "plain_copy_partitioned_s": round(part_plain, 3),
            "plain_partitioned_runs_s": [round(x, 3) for x, _ in part_runs],
            "ratio_of_partitioned_copy_rate": round(part_plain / fast, 3), "peak_rss_mb": round(peak, 1),
            "queries": queries,
            "load": round(load, 2), "plain_load": round(plain_load, 2), "csv_mb": round(csv_bytes / 1e6, 1)}


def _bench_baselines(n_sp: int) -> None:
    """baseline_batch on n_sp x 48 days hourly (45-day lookback), CAISO auto and PJM high 4 of 5."""
    from zoneinfo import ZoneInfo

    import numpy as np

    from settlement.baselines import baseline_batch, resolve_params

    la = ZoneInfo("America/Los_Angeles")
    kwh = np.random.default_rng(1).gamma(2.0, 1.0, size=(n_sp, 48 * 24))
    start = dt.datetime(2026, 5, 30, tzinfo=la).astimezone(dt.UTC)
    for method in ("caiso-auto", "pjm-high-4-of-5"):
        t = time.perf_counter()
        result = baseline_batch(start=start, interval_minutes=60, kwh=kwh, tz=la,
                                event_start=dt.datetime(2026, 7, 15, 16, tzinfo=la),
                                event_end=dt.datetime(2026, 7, 15, 20, tzinfo=la), params=resolve_params(method))
        print(f"baseline_batch {method}: {n_sp:,} service points in {time.perf_counter() - t:.2f} s "
              f"({int(result.ok.sum()):,} OK)")


if __name__ == "__main__":
    raise SystemExit(main())
