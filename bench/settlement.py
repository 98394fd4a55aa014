"""Benchmark: settle one event of the shared N-size population, then the season-end customer settlement.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.settlement --n 100000 \
        [--workers 2] [--broker redis://127.0.0.1:6379/6]

Data: the ``bench.seed`` population (N customers, service points, thermostats, enrollments; the last of the
``--history`` past events called every device) and, in child processes so neither counts in this process's peak
memory, ``bench.seed.seed_interval_days``: the 45-day baseline lookback of that event, hourly, with the Green
Button load shapes and a simulated 30 % response of the participating thermostats (opted-out ones do not respond).

Then, in this process: settles the event (``settlement.services.event_settle``: chunks of ``CPM_CHUNK_SIZE``
service points, the Celery group run eagerly; the program's CAISO 10-in-10 baseline, $1.25 per kWh avoided), reads
the same readings with plain SQL in the same chunks (the floor), and prints settle time, read time, their ratio
(target <= 3x), peak RSS (target < 1 GB, flat in N) and query count; then the season-end customer settlement of
the N accounts (``season_settle``: the deferred event credits and a $20 seasonal incentive).

``--workers K`` then settles the event again through real Celery workers (``celery -A cpm worker --concurrency 1``,
started here against ``--broker``): once with 1 worker and once with K, checks that the amounts are identical to the
cent (sum and a hash of every row's amount) and prints the speed-up.
The last line is ``BENCH_JSON {...}`` (n, settle_s, plain_read_s, ratio, peak_rss_mb, queries,
customer_settlement_s, workers, speedup, ...) for ``python -m bench``. Target at N = 100,000: <= 60 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
import time

from .common import bench_actor, cpu_now, cpu_since, emit, loadavg, peak_rss_mb, setup_django

DEFAULT_BROKER = "redis://127.0.0.1:6379/6"
SETTLE_NOW = dt.datetime(2026, 7, 20, 12, tzinfo=dt.UTC)  # after the seeded meter data was received (bench.seed.NOW)
SEASON_END_NOW = dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC)


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", *args], check=True, capture_output=True, text=True,
                         env=os.environ.copy())
    lines = [x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")]
    return json.loads(lines[-1].removeprefix("BENCH_JSON ")) if lines else {}


def _digest(event) -> dict:
    """Sum of the computed amounts and a hash of every row's (participation, status, amount), ordered."""
    from settlement.models import EventSettlement

    h = hashlib.sha256()
    total = 0
    for pid, status, amount in (EventSettlement.objects.filter(event=event).order_by("participation_id")
                                .values_list("participation_id", "status", "amount").iterator(chunk_size=20000)):
        h.update(f"{pid}:{status}:{amount}\n".encode())
        total += amount
    return {"sum": str(total), "sha256": h.hexdigest()}


def customer_digest(batch) -> dict:
    """What a season-end customer settlement wrote, as a sum and one hash, independent of primary keys: each
    settlement by account (status, total, inputs with the enrollment ids, explanation), its lines (kind, code, amount,
    quantity, unit, rate, description, incentive key, enrollment, service point, and the participation of its event
    settlement: not the event settlement's id, which changes each time the event is settled again) and the audit
    entries of its settlements (action, code, from, to, reason, actor)."""
    from cpm.models import AuditEntry
    from settlement.models import CustomerSettlement, SettlementLine

    h = hashlib.sha256()
    total = 0
    by_pk = {}
    for pk, account_id, status, amount, inputs, explanation in (
            CustomerSettlement.objects.filter(batch=batch).order_by("account_id")
            .values_list("pk", "account_id", "status", "total_amount", "inputs", "explanation")
            .iterator(chunk_size=20000)):
        by_pk[pk] = account_id
        h.update(f"{account_id}:{status}:{amount}:{json.dumps(inputs, sort_keys=True)}:{explanation}\n".encode())
        total += amount
    lines = sorted(
        (by_pk[cs], *rest) for cs, *rest in SettlementLine.objects.filter(customer_settlement__batch=batch)
        .values_list("customer_settlement_id", "kind", "line_code", "amount", "quantity", "unit", "rate",
                     "description", "incentive_key", "enrollment_id", "service_point_id",
                     "event_settlement__participation_id")
        .iterator(chunk_size=20000))
    for row in lines:
        h.update((":".join(map(str, row)) + "\n").encode())
    audits = sorted(
        (by_pk[int(obj)], *rest) for obj, *rest in AuditEntry.objects.filter(
            object_type="settlement.customersettlement", object_id__in=[str(pk) for pk in by_pk])
        .values_list("object_id", "action", "code", "from_status", "to_status", "reason", "actor_label")
        .iterator(chunk_size=20000))
    for row in audits:
        h.update((":".join(map(str, row)) + "\n").encode())
    return {"sum": str(total), "settlements": len(by_pk), "lines": len(lines), "audit_entries": len(audits),
            "sha256": h.hexdigest()}


def _reset(program) -> None:
    """Remove the program's settlements (any earlier run), so each settle starts from nothing. Plain DELETEs: a
    queryset ``delete()`` would collect every row in this process first (over 1 GB at N = 100,000) and count in the
    peak memory measured next."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("UPDATE settlement_settlementline SET reverses_id = NULL WHERE program_id = %s", [program.pk])
        for table in ("settlement_settlementline", "settlement_customersettlement", "settlement_eventsettlement",
                      "settlement_settlementbatch"):
            c.execute(f"DELETE FROM {table} WHERE program_id = %s", [program.pk])


def _drop_bench_events(program) -> None:
    """The reservation benchmark's scheduled event is not part of the settled season: drop it with its rows."""
    from django.db import connection

    from events.models import Event

    from .reservation import EVENT_NAME

    old = list(Event.objects.filter(program=program, name=EVENT_NAME).values_list("pk", flat=True))
    if old:
        with connection.cursor() as c:
            for table in ("events_reservation", "events_participation", "events_dispatchmessage"):
                c.execute(f"DELETE FROM {table} WHERE event_id = ANY(%s)", [old])
        Event.objects.filter(pk__in=old).delete()


def _wait(batch, timeout: float = 3600.0):
    from settlement.models import SettlementBatch

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        b = SettlementBatch.objects.get(pk=batch.pk)
        if b.status in ("completed", "completed_with_errors", "failed"):
            return b
        time.sleep(0.05)
    sys.exit(f"batch {batch.pk} did not finish in {timeout:.0f} s")


def run_workers(event, *, workers: int) -> dict:
    """Settle ``event`` through ``workers`` real Celery worker processes; returns time, digest, worker peak RSS."""
    from cpm.celery import app
    from settlement import services

    from .reservation import start_workers, stop_workers

    app.conf.task_always_eager = False
    procs = start_workers(workers, f"settle-{os.getpid()}-{workers}")
    try:
        app.control.purge()
        _reset(event.program)
        t0 = time.perf_counter()
        batch = _wait(services.event_settle(event=event, now=SETTLE_NOW, actor=bench_actor()))
        seconds = time.perf_counter() - t0
    finally:
        rss = stop_workers(procs)
        app.conf.task_always_eager = True
    return {"seconds": seconds, "status": batch.status, "digest": _digest(event), "worker_peak_rss_mb": rss}


def run(n: int, *, history: int, workers: int = 0, runs: int = 2, threads: int = 0) -> dict:
    from django.conf import settings
    from django.db import connection

    from cpm.celery import app
    from programs.models import Season
    from settlement import services
    from settlement.models import CustomerSettlement, EventSettlement

    from .seed import settled_event

    app.conf.task_always_eager = True
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)  # one INFO line per eager chunk otherwise
    event, first_day, days = settled_event(history)
    program = event.program
    _drop_bench_events(program)
    _reset(program)
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    load = loadavg()
    settle_cpu = []  # {process_s, backend_s} of each settle run
    cpu0 = cpu_now()
    t0 = time.perf_counter()
    with connection.execute_wrapper(count):
        batch = services.event_settle(event=event, now=SETTLE_NOW, actor=bench_actor())
    settle_s = time.perf_counter() - t0
    settle_cpu.append(cpu_since(cpu0))
    peak_mb = peak_rss_mb()
    batch.refresh_from_db()
    settled = EventSettlement.objects.filter(event=event).exclude(status="pending").count()
    total = EventSettlement.objects.filter(event=event).count()
    eager_digest = _digest(event)

    # The floor: a plain SQL read of the same readings (the lookback and the event day), in the same chunks.
    sp_ids = list(event.participations.order_by("service_point_id").values_list("service_point_id", flat=True))
    chunk = settings.CPM_CHUNK_SIZE
    read_load = loadavg()

    def plain_read() -> tuple[float, int]:
        t0, rows = time.perf_counter(), 0
        with connection.cursor() as cur:
            for i in range(0, len(sp_ids), chunk):
                cur.execute("SELECT service_point_id, day, interval_minutes, \"values\" FROM settlement_intervalday "
                            "WHERE is_current AND device_id IS NULL AND channel = 'delivered' AND day >= %s "
                            "AND day < %s AND service_point_id BETWEEN %s AND %s",
                            [first_day, first_day + dt.timedelta(days=days), sp_ids[i],
                             sp_ids[min(i + chunk, len(sp_ids)) - 1]])
                rows += len(cur.fetchall())
        return time.perf_counter() - t0, rows

    read_s, rows = plain_read()
    # Further runs of both (settlements cleared): timings vary from run to run on this shared machine, so each
    # figure is the best of --runs; the amounts must be the same every time.
    settle_runs, read_runs = [settle_s], [read_s]
    for _ in range(runs - 1):
        _reset(program)
        cpu0 = cpu_now()
        t0 = time.perf_counter()
        services.event_settle(event=event, now=SETTLE_NOW, actor=bench_actor())
        settle_runs.append(time.perf_counter() - t0)
        settle_cpu.append(cpu_since(cpu0))
        assert _digest(event) == eager_digest
        read_runs.append(plain_read()[0])
    settle_s, read_s = min(settle_runs), min(read_runs)
    sample = EventSettlement.objects.filter(event=event, status__in=("deferred", "calculated")).order_by("pk").first()
    print(f"N={n} participations of '{event.name}' ({event.start:%Y-%m-%d %H:%M} UTC), {rows} IntervalDay rows "
          "read by the plain SQL read")
    print(f"settle: {settle_s:.1f} s, best of {len(settle_runs)} ({', '.join(f'{x:.1f}' for x in settle_runs)})  "
          f"({batch.status}, {batch.chunks_done}/{batch.chunks_total} chunks of {chunk}, "
          f"{settled}/{total} settled), load average {load:.2f}; CPU (process, backend) per run: "
          f"{', '.join(f'{c['process_s']:.1f} + {c['backend_s']:.1f} s' for c in settle_cpu)}")
    print(f"plain SQL read of the same readings: {read_s:.1f} s, best of {len(read_runs)} "
          f"({', '.join(f'{x:.1f}' for x in read_runs)})")
    print(f"ratio settle / read: {settle_s / read_s:.2f}x (targets: <= 3x at 100,000, issue 8; <= 1.5x at "
          "1,000,000, issue 20)")
    print(f"peak memory (RSS): {peak_mb:.0f} MB (target < 1024 MB)")
    print(f"queries during settle: {queries} ({queries / max(1, batch.chunks_total):.1f} per chunk)")
    if sample:
        print(f"sample: {sample.method}, {sample.kwh_avoided} kWh avoided, ${sample.amount}, "
              f"{len(sample.inputs['selected_days'])} selected days, adjustment {sample.inputs['adjustment']}")
    print(f"amounts: sum ${eager_digest['sum']}, sha256 {eager_digest['sha256'][:16]}")

    # Season-end customer settlement of the N accounts (the deferred event settlements + the seasonal incentive).
    season = Season.objects.get(program=program)
    customer_load = loadavg()
    cpu0 = cpu_now()
    t0 = time.perf_counter()
    cbatch = services.season_settle(program=program, season=season, now=SEASON_END_NOW, actor=bench_actor())
    customer_s = time.perf_counter() - t0
    customer_cpu = cpu_since(cpu0)
    cbatch.refresh_from_db()
    cs_total = sum(CustomerSettlement.objects.filter(batch=cbatch).values_list("total_amount", flat=True))
    cdigest = customer_digest(cbatch)
    print(f"season-end customer settlement: {customer_s:.1f} s for {cbatch.items_total} accounts "
          f"({cbatch.status}, total ${cs_total}), load average {customer_load:.2f}; CPU: this process "
          f"{customer_cpu['process_s']:.1f} s, its PostgreSQL backend {customer_cpu['backend_s']:.1f} s")
    print(f"customer settlements: {cdigest['settlements']} settlements, {cdigest['lines']} lines, "
          f"{cdigest['audit_entries']} audit entries, sha256 {cdigest['sha256'][:16]}")
    out = {"step": "settlement", "n": n, "participations": total, "settle_s": round(settle_s, 2),
           "settle_runs_s": [round(x, 2) for x in settle_runs], "settle_cpu_s": settle_cpu,
           "read_runs_s": [round(x, 2) for x in read_runs],
           "plain_read_s": round(read_s, 2), "ratio": round(settle_s / read_s, 2), "peak_rss_mb": round(peak_mb),
           "queries": queries, "chunks": batch.chunks_total, "load": round(load, 2),
           "read_load": round(read_load, 2), "customer_settlement_s": round(customer_s, 2),
           "customer_accounts": cbatch.items_total, "customer_total": str(cs_total),
           "customer_cpu_s": customer_cpu, "customer_digest": cdigest,
           "amount_sum": eager_digest["sum"], "amount_sha256": eager_digest["sha256"], "workers": workers or None,
           "speedup": None}
    if threads:
        # The same with no broker, each job's chunks on K threads of this process (``CPM_LOCAL_WORKERS``, one
        # PostgreSQL connection each): the event settlement and then the season-end customer settlement.
        _reset(program)
        settings.CPM_LOCAL_WORKERS = threads
        try:
            t0 = time.perf_counter()
            services.event_settle(event=event, now=SETTLE_NOW, actor=bench_actor())
            threaded_s = time.perf_counter() - t0
            threaded_identical = _digest(event) == eager_digest
            t0 = time.perf_counter()
            tbatch = services.season_settle(program=program, season=season, now=SEASON_END_NOW, actor=bench_actor())
            threaded_customer_s = time.perf_counter() - t0
            tbatch.refresh_from_db()
            threaded_identical = threaded_identical and customer_digest(tbatch) == cdigest
        finally:
            settings.CPM_LOCAL_WORKERS = 1
        print(f"in this process on {threads} threads: settle {threaded_s:.1f} s (ratio to the plain read "
              f"{threaded_s / read_s:.2f}x), season-end customer settlement {threaded_customer_s:.1f} s; peak RSS "
              f"{peak_rss_mb():.0f} MB; amounts and customer settlements identical: {threaded_identical}")
        out.update(threads=threads, settle_threads_s=round(threaded_s, 2),
                   threads_ratio=round(threaded_s / read_s, 2), customer_threads_s=round(threaded_customer_s, 2),
                   threads_identical=threaded_identical, threads_peak_rss_mb=round(peak_rss_mb()))
    if workers:
        one = run_workers(event, workers=1)
        print(f"1 worker: {one['seconds']:.1f} s ({one['status']}), sum ${one['digest']['sum']}, "
              f"worker peak RSS {one['worker_peak_rss_mb']:.0f} MB")
        out.update(settle_1_worker_s=round(one["seconds"], 2), worker_peak_rss_mb=round(one["worker_peak_rss_mb"]))
        identical = one["digest"] == eager_digest
        if workers > 1:
            many = run_workers(event, workers=workers)
            speedup = one["seconds"] / many["seconds"]
            identical = identical and many["digest"] == one["digest"]
            print(f"{workers} workers: {many['seconds']:.1f} s ({many['status']}), sum ${many['digest']['sum']}; "
                  f"speed-up {speedup:.2f}x")
            out.update({f"settle_{workers}_workers_s": round(many["seconds"], 2), "speedup": round(speedup, 2)})
        print(f"amounts identical to the cent across runs (sum and per-row hash): {identical}")
        out["identical"] = identical
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="Customers (default 100,000).")
    parser.add_argument("--history", type=int, default=6, help="Past events of the seeded season (bench.seed).")
    parser.add_argument("--workers", type=int, default=0,
                        help="Also settle through 1 and K real Celery workers and compare (default: no workers).")
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER),
                        help=f"Redis broker for --workers (default {DEFAULT_BROKER}).")
    parser.add_argument("--runs", type=int, default=2, help="Timed settlements and plain reads; the best is reported.")
    parser.add_argument("--threads", type=int, default=0,
                        help="Also settle in this process, each job's chunks on K threads (no broker).")
    parser.add_argument("--seed-intervals", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers and args.threads:
        parser.error("--threads runs with no broker, --workers with one: run them separately")
    if args.workers and not args.seed_intervals:
        # Before Django settings load: a broker makes Celery non-eager (cpm.settings); the eager run sets it back.
        os.environ["CELERY_BROKER_URL"] = os.environ["CELERY_RESULT_BACKEND"] = args.broker
    setup_django()
    from .seed import interval_days_present, seed_interval_days, settled_event

    if args.seed_intervals:  # child: the interval data of the settled event
        _, first_day, days = settled_event(args.history)
        reused = interval_days_present(args.n, first_day, days)
        t0 = time.perf_counter()
        rows = 0 if reused else seed_interval_days(args.n, first_day=first_day, days=days)
        emit({"step": "seed-intervals", "rows": rows, "reused": reused, "seed_s": round(time.perf_counter() - t0, 1)})
        return 0
    seeded = _child("bench.seed", "--n", str(args.n), "--history", str(args.history))
    intervals = _child("bench.settlement", "--n", str(args.n), "--history", str(args.history), "--seed-intervals")
    from .seed import shapes_note

    print(f"population reused: {seeded.get('reused')}; interval data: {intervals.get('rows'):,} rows written in "
          f"{intervals.get('seed_s')} s (reused: {intervals.get('reused')}); load shapes: {shapes_note()}")
    emit(run(args.n, history=args.history, workers=args.workers, runs=args.runs, threads=args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
