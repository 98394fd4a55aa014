"""Benchmark: interval data loading fast path vs a plain PostgreSQL COPY of the same CSV.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench_meter \\
        .venv/bin/python -m bench.loading --service-points 100000 --days 1

Creates the database if missing, migrates, makes N service points, writes a CSV of N x 24 x days hourly readings,
loads it through ``settlement.meterdata.meter_csv_load`` (parse, resolve, merge, COPY binary), then re-loads it
(idempotent: 0 new), then COPYs the same CSV into a bare table. Prints readings/s and the ratio.
Targets (issue 5): >= 200,000 readings/s and >= 30 % of the plain COPY.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service-points", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--baselines", action="store_true",
                        help="Also time baselines.baseline_batch on N service points x 48 days of hourly data.")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        print("Set DATABASE_URL=postgres://... (the benchmark compares against PostgreSQL COPY)", file=sys.stderr)
        return 2
    _ensure_database(url)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpm.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from devices.models import Premise, ServicePoint
    from settlement.meterdata import meter_csv_load

    call_command("migrate", verbosity=0)
    n_sp, hours = args.service_points, 24 * args.days
    premise, _ = Premise.objects.get_or_create(premise_id="BENCH-PREMISE",
                                               defaults={"address_line1": "1 Bench Way", "city": "Bench"})
    have = ServicePoint.objects.filter(service_point_id__startswith="BENCH-").count()
    if have < n_sp:
        ServicePoint.objects.bulk_create(
            [ServicePoint(service_point_id=f"BENCH-{k:07d}", premise=premise) for k in range(n_sp)],
            batch_size=10_000, ignore_conflicts=True)

    # CSV: N service points x hourly readings, UTC times with offset
    t0 = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
    stamps = [(t0 + dt.timedelta(hours=h)).isoformat() for h in range(hours)]
    lines = ["service_point_id,channel,interval_start,interval_minutes,kwh"]
    for k in range(n_sp):
        sp = f"BENCH-{k:07d}"
        base = 0.5 + (k % 97) / 100
        lines.extend(f"{sp},delivered,{s},60,{base + (h % 24) / 50:.3f}" for h, s in enumerate(stamps))
    content = ("\n".join(lines) + "\n").encode()
    readings = n_sp * hours
    print(f"CSV: {readings:,} readings, {len(content) / 1e6:.1f} MB")

    with connection.cursor() as cur:
        cur.execute("TRUNCATE settlement_intervalday")
    now = dt.datetime.now(dt.UTC)
    t = time.perf_counter()
    load = meter_csv_load(content=content, now=now, file_name="bench.csv")
    fast = time.perf_counter() - t
    print(f"fast path (first load):  {fast:7.2f} s  {readings / fast:12,.0f} readings/s   [{load.summary}]")
    t = time.perf_counter()
    again = meter_csv_load(content=content, now=now, file_name="bench.csv")
    reload_s = time.perf_counter() - t
    print(f"fast path (re-load):     {reload_s:7.2f} s  {readings / reload_s:12,.0f} readings/s   [{again.summary}]")

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_bare_readings")
        cur.execute("CREATE TABLE bench_bare_readings (service_point_id text, channel text, "
                    "interval_start timestamptz, interval_minutes int, kwh float8)")
        connection.commit() if not connection.get_autocommit() else None
        t = time.perf_counter()
        with cur.cursor.copy("COPY bench_bare_readings FROM STDIN (FORMAT CSV, HEADER)") as copy:
            copy.write(content)
        plain = time.perf_counter() - t
        cur.execute("SELECT count(*) FROM bench_bare_readings")
        copied = cur.fetchone()[0]
        cur.execute("DROP TABLE bench_bare_readings")
    print(f"plain COPY (bare table): {plain:7.2f} s  {copied / plain:12,.0f} readings/s")
    print(f"ratio fast/plain: {plain / fast:.0%}  (target >= 30 %); target >= 200,000 readings/s: "
          f"{'met' if readings / fast >= 200_000 else 'NOT met'}")
    if args.baselines:
        _bench_baselines(n_sp)
    return 0


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
