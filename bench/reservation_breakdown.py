"""Where one reservation's time goes (issue 20): every SQL statement timed and grouped by what it does, the COPYs
timed around ``cpm.base.bulk``'s writer, the COMMIT (deferred constraint checks) timed alone, the rest is Python.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.reservation_breakdown \
        --n 100000 [--runs 3] [--profile var/bench/reservation.prof]

Works on the population ``bench.reservation`` seeded (same ``--n``, reused) and on its bench event, whose ledger it
clears before each run. Each run prints the parts in seconds; the best run's parts are in the final
``BENCH_JSON {...}`` line. ``--profile`` writes a cProfile of one more run (the profiler slows Python about 2x).
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from contextlib import contextmanager

from .common import backend_cpu_s, bench_actor, emit, peak_rss_mb, setup_django, statement_part

# (part, pattern on the SQL text), first match wins.
PARTS = (
    ("locks (SELECT ... FOR UPDATE)", re.compile(r"FOR UPDATE", re.S)),
    ("plan: candidate spans (ROW_NUMBER)", re.compile(r"ROW_NUMBER", re.S)),
    ("delete earlier ledger", re.compile(r"^\s*DELETE", re.S)),
    ("update participations", re.compile(r"^\s*UPDATE", re.S)),
    ("span: history (participations per enrollment)", re.compile(r"STRING_AGG", re.S | re.I)),
    ("span: subscriptions", re.compile(r'FROM "enrollments_programsubscription"', re.S)),
    ("span: enrollments", re.compile(r'FROM "enrollments_enrollment"', re.S)),
    ("span: devices", re.compile(r'FROM "devices_device"', re.S)),
    ("span: unavailability", re.compile(r'FROM "events_unavailability"', re.S)),
    ("span: participations (this event's, overlaps, stale)", re.compile(r'FROM "events_participation"', re.S)),
    ("span: events", re.compile(r'FROM "events_event"', re.S)),
)


@contextmanager
def _timed(parts: dict[str, float], counts: dict[str, int]):
    """Time every statement through Django's execute wrapper and every ``insert_rows`` COPY by table."""
    from django.db import connection

    from cpm.base import bulk
    from events.services import reservation

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            name = statement_part(sql, PARTS)
            parts[name] += time.perf_counter() - t0
            counts[name] += 1

    original_start, original_finish = reservation.insert_rows_start, bulk.StartedInsert.finish

    def insert_rows_start(model, columns, rows):
        t0 = time.perf_counter()
        try:
            started = original_start(model, columns, rows)
            started.table = model._meta.db_table
            return started
        finally:
            name = f"COPY {model._meta.db_table}: rows sent"
            parts[name] += time.perf_counter() - t0
            counts[name] += 1

    def finish(self):
        if not hasattr(self, "table"):  # an ``insert_rows`` of another step (not timed apart)
            return original_finish(self)
        t0 = time.perf_counter()
        try:
            return original_finish(self)
        finally:
            name = f"COPY {self.table}: waiting for the database (after the overlapped Python)"
            parts[name] += time.perf_counter() - t0
            counts[name] += 1

    reservation.insert_rows_start, bulk.StartedInsert.finish = insert_rows_start, finish
    try:
        with connection.execute_wrapper(wrapper):
            yield
    finally:
        reservation.insert_rows_start, bulk.StartedInsert.finish = original_start, original_finish


def run_once(event) -> tuple[float, dict[str, float], dict[str, int]]:
    """One fresh reservation (ledger cleared first) in an outer transaction whose COMMIT is timed alone."""
    from django.db import transaction

    from events import services

    from .reservation import NOW, _reset_ledger

    _reset_ledger(event)
    parts: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    server0, client0 = backend_cpu_s(), time.process_time()
    t0 = time.perf_counter()
    with _timed(parts, counts):
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            services.event_reserve(event=event, now=NOW, actor=bench_actor())
        except BaseException:
            atomic.__exit__(*__import__("sys").exc_info())
            raise
        t_commit = time.perf_counter()
        atomic.__exit__(None, None, None)
        parts["COMMIT (deferred foreign-key checks)"] = time.perf_counter() - t_commit
        counts["COMMIT (deferred foreign-key checks)"] = 1
    total = time.perf_counter() - t0
    parts["Python (decisions, rows, COPY encoding)"] = total - sum(parts.values())
    parts["CPU: this process"] = time.process_time() - client0
    parts["CPU: PostgreSQL backend"] = backend_cpu_s() - server0
    return total, dict(parts), dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default=None, help="Write a cProfile of one more run to this path.")
    args = parser.parse_args()
    setup_django()

    from events.models import Event

    from .reservation import EVENT_NAME, _fresh_event, _seed_in_child, ledger_digest

    _seed_in_child(args.n, args.history)
    event = Event.objects.filter(name=EVENT_NAME).order_by("-pk").first() or _fresh_event(None)
    best = None
    for i in range(args.runs):
        total, parts, counts = run_once(event)
        print(f"run {i + 1}: {total:.2f} s")
        for name, seconds in sorted(parts.items(), key=lambda kv: (kv[0].startswith("CPU"), -kv[1])):
            print(f"  {seconds:7.3f} s  {counts.get(name, '-'):>5}  {name}")
        if best is None or total < best[0]:
            best = (total, parts, counts)
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        run_once(event)
        profiler.disable()
        profiler.dump_stats(args.profile)
        print(f"cProfile written to {args.profile}")
    digest, rows = ledger_digest(event)
    print(f"ledger sha256 {digest[:16]} ({rows:,} rows); peak RSS {peak_rss_mb():.0f} MB")
    emit({"step": "reservation_breakdown", "n": args.n, "best_s": round(best[0], 3),
          "parts_s": {k: round(v, 3) for k, v in best[1].items()}, "statements": best[2],
          "ledger_sha256": digest[:16], "peak_rss_mb": round(peak_rss_mb(), 1)})


if __name__ == "__main__":
    main()
