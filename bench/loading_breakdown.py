"""Where one interval load's time goes (issue 20, item 3): parsing, resolving, the merge's queries, the binary COPY,
the COMMIT (deferred constraint checks) timed apart, the rest Python; CPU seconds of this process and of its
PostgreSQL backend (``/proc``), and a digest of the rows loaded (identical before and after a change).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.loading_breakdown \
        --n 100000 [--runs 3] [--csv /tmp/readings.csv] [--profile var/bench/loading.prof]

Works on the population ``bench.seed`` seeded (same ``--n``; seeded when missing) and the CSV of ``bench.loading``
(written to ``--csv`` when that file does not exist, kept otherwise, so two checkouts can load the same file). Each
run clears the day first, as ``bench.loading`` does. The best run's parts are in the final ``BENCH_JSON {...}``
line. ``--profile`` writes a cProfile of one more run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from .common import backend_cpu_s, bench_actor, emit, setup_django, statement_part
from .loading import FIRST_DAY, _child, _clear

PARTS = (
    ("resolve service points", re.compile(r'FROM "?devices_servicepoint', re.S)),
    ("merge: current rows", re.compile(r"t\.is_current AND", re.S)),
    ("merge: supersede", re.compile(r"^\s*UPDATE .*settlement_intervalday", re.S)),
    ("locks and partitions", re.compile(r"pg_advisory_xact_lock|pg_class|pg_inherits|CREATE TABLE", re.S)),
)


@contextmanager
def _timed(parts: dict[str, float]):
    from django.db import connection

    from cpm.base import bulk
    from settlement.meterdata import loaders

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            parts[statement_part(sql, PARTS)] += time.perf_counter() - t0

    def timing(module, name, part):
        original = getattr(module, name)

        def timed(*args, **kwargs):
            t0, c0 = time.perf_counter(), backend_cpu_s()
            try:
                return original(*args, **kwargs)
            finally:
                parts[part] += time.perf_counter() - t0
                if part.startswith(("COPY", "COMMIT")):
                    parts[f"CPU: backend in {part.split()[0]}"] += backend_cpu_s() - c0

        setattr(module, name, timed)
        return module, name, original

    patched = [timing(loaders, "parse_csv", "parse CSV (Python)"),
               # A chunk's COPY is sent (``copy_binary_start``), the next chunk merged, then the COPY waited for
               # (``StartedInsert.finish``): the wait is what the merge did not cover (``loaders._Pipe``).
               timing(bulk, "copy_binary_start", "COPY binary: rows sent"),
               timing(bulk.StartedInsert, "finish", "COPY binary: waiting (rows, indexes, key checks not overlapped)"),
               timing(connection, "_commit", "COMMIT (deferred foreign-key checks)")]
    try:
        with connection.execute_wrapper(wrapper):
            yield
    finally:
        for module, name, original in patched:
            setattr(module, name, original)


def digest(days: int = 1) -> tuple[int, str]:
    """(rows, sha256) of the current interval data of the bench days: service point, device, channel, day, length,
    values, version."""
    import datetime as dt

    from django.db import connection

    h = hashlib.sha256()
    with connection.cursor() as cur:
        cur.execute("SELECT service_point_id, COALESCE(device_id, 0), channel, day, interval_minutes, \"values\", "
                    "version FROM settlement_intervalday WHERE is_current AND day >= %s AND day < %s "
                    "ORDER BY service_point_id, device_id, channel, day",
                    [FIRST_DAY, FIRST_DAY + dt.timedelta(days=days)])
        n = 0
        for row in cur.fetchall():
            h.update(repr(row[:5]).encode() + bytes(row[5]) + str(row[6]).encode())
            n += 1
    return n, h.hexdigest()


def run_once(path: Path, days: int) -> tuple[float, dict[str, float], str]:
    import datetime as dt

    from settlement.meterdata.loaders import meter_csv_load

    _clear(days)
    parts: dict[str, float] = defaultdict(float)
    server0, client0 = backend_cpu_s(), time.process_time()
    t0 = time.perf_counter()
    with _timed(parts):
        load = meter_csv_load(path=path, now=dt.datetime.now(dt.UTC), file_name="bench.csv", actor=bench_actor())
    total = time.perf_counter() - t0
    parts["Python (rest)"] = total - sum(v for k, v in parts.items() if not k.startswith("CPU"))
    parts["CPU: this process"] = time.process_time() - client0
    parts["CPU: PostgreSQL backend"] = backend_cpu_s() - server0
    return total, dict(parts), load.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--csv", default=None, help="The CSV to load (written when missing).")
    parser.add_argument("--profile", default=None, help="Write a cProfile of one more run to this path.")
    args = parser.parse_args()
    setup_django()
    _child("bench.seed", "--n", str(args.n), "--history", str(args.history))
    path = Path(args.csv or f"/tmp/cpm-bench-loading-{args.n}x{args.days}.csv")
    if not path.exists():
        _child("bench.loading", "--n", str(args.n), "--days", str(args.days), "--write-csv", str(path))
    runs = []
    for i in range(args.runs):
        total, parts, summary = run_once(path, args.days)
        runs.append((total, parts))
        print(f"run {i + 1}: {total:.2f} s wall, load average {os.getloadavg()[0]:.2f} [{summary}]")
        for name, seconds in sorted(parts.items(), key=lambda x: -x[1]):
            print(f"    {seconds:7.3f} s  {name}")
    rows, sha = digest(args.days)
    print(f"loaded rows: {rows:,}, sha256 {sha}")
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        run_once(path, args.days)
        profiler.disable()
        Path(args.profile).parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(args.profile)
        print(f"profile: {args.profile}")
    best, parts = min(runs, key=lambda r: r[0])
    emit({"step": "loading_breakdown", "n": args.n, "best_s": round(best, 3),
          "runs_s": [round(t, 3) for t, _ in runs], "parts": {k: round(v, 3) for k, v in parts.items()},
          "cpu_process_s": [round(p["CPU: this process"], 3) for _, p in runs],
          "cpu_backend_s": [round(p["CPU: PostgreSQL backend"], 3) for _, p in runs],
          "rows": rows, "sha256": sha})


if __name__ == "__main__":
    main()
