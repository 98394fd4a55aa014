"""Benchmark: the season-end customer settlement alone, on a database where ``bench.settlement`` settled the event.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.settlement --n 100000 --runs 1
    DATABASE_URL=... .venv/bin/python -m bench.customer_settlement [--runs 3] [--workers 2] [--profile F]

Each run removes the program's customer settlements (their lines, the season batch; the event settlements and
their DEFERRED status stay as ``bench.settlement`` left them), then times ``season_settle`` (the chunks run eagerly,
in this process) and reads the CPU seconds of this process and of its PostgreSQL backend from ``/proc``: on this
shared 2-core machine those move a few percent where the wall clock moves 2x. Every run prints the digest of what
was written (``bench.settlement.customer_digest``: sum, settlements, lines, audit entries, one sha256), which must be
the same every run and before and after a change. ``--profile PATH`` also profiles one chunk (the first 5,000
accounts, ``customer_settlements_calculate`` in a rolled-back transaction, after the timed runs) with cProfile and
prints the top functions by cumulative and by own time (the chunk's settlements and lines are removed first in that
transaction, so it works them as the batch did: created, not recalculated). ``--workers K`` then runs it through 1
and K real Celery worker processes (Redis broker ``--broker``), as production does: the digest must be the same.
"""

from __future__ import annotations

import argparse
import os
import time

from .common import bench_actor, cpu_now, cpu_since, emit, loadavg, setup_django
from .settlement import DEFAULT_BROKER, SEASON_END_NOW, customer_digest


def _reset_customer(program) -> None:
    """Remove the program's customer settlements and their lines (the deferred and incentive lines a season batch
    wrote) and its season batches; event settlements stay."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("DELETE FROM settlement_settlementline WHERE program_id = %s AND customer_settlement_id IS NOT NULL",
                  [program.pk])
        c.execute("DELETE FROM settlement_customersettlement WHERE program_id = %s", [program.pk])
        c.execute("DELETE FROM settlement_settlementbatch WHERE program_id = %s AND kind = 'season'", [program.pk])
        # As the seeding leaves its tables: vacuumed and analysed (an ANALYZE alone over the dead rows would record
        # 0 rows in thousands of pages, and the planner would take every table of this shape for empty).
        c.execute("VACUUM ANALYZE settlement_settlementline")
        c.execute("VACUUM ANALYZE settlement_customersettlement")
        c.execute("VACUUM ANALYZE cpm_auditentry")


def run_once(program, season) -> dict:
    from settlement import services

    _reset_customer(program)
    load = loadavg()
    cpu0 = cpu_now()
    t0 = time.perf_counter()
    batch = services.season_settle(program=program, season=season, now=SEASON_END_NOW, actor=bench_actor())
    seconds = time.perf_counter() - t0
    cpu = cpu_since(cpu0)
    batch.refresh_from_db()
    digest = customer_digest(batch)
    print(f"season-end customer settlement: {seconds:.2f} s for {batch.items_total} accounts ({batch.status}), "
          f"CPU: process {cpu['process_s']:.2f} s, backend {cpu['backend_s']:.2f} s, load {load:.2f}; "
          f"sum ${digest['sum']}, {digest['settlements']} settlements, {digest['lines']} lines, "
          f"{digest['audit_entries']} audit entries, sha256 {digest['sha256'][:16]}", flush=True)
    return {"seconds": round(seconds, 2), "cpu": cpu, "load": round(load, 2), "digest": digest,
            "status": batch.status}


def run_workers(program, season, *, workers: int) -> dict:
    """The same season-end settlement through ``workers`` real Celery worker processes (``--concurrency 1`` each,
    the chunks taken from the broker as in production): time from ``season_settle`` until the batch is done, and the
    digest, which must equal the eager run's."""
    from cpm.celery import app
    from settlement import services

    from .reservation import start_workers, stop_workers
    from .settlement import _wait

    app.conf.task_always_eager = False
    procs = start_workers(workers, f"season-{os.getpid()}-{workers}")
    try:
        app.control.purge()
        _reset_customer(program)
        load = loadavg()
        t0 = time.perf_counter()
        batch = _wait(services.season_settle(program=program, season=season, now=SEASON_END_NOW,
                                             actor=bench_actor()))
        seconds = time.perf_counter() - t0
    finally:
        rss = stop_workers(procs)
        app.conf.task_always_eager = True
    digest = customer_digest(batch)
    print(f"season-end customer settlement through {workers} worker process(es): {seconds:.2f} s "
          f"({batch.status}), load {load:.2f}, worker peak RSS {rss:.0f} MB; sum ${digest['sum']}, "
          f"sha256 {digest['sha256'][:16]}", flush=True)
    return {"workers": workers, "seconds": round(seconds, 2), "load": round(load, 2), "status": batch.status,
            "digest": digest, "worker_peak_rss_mb": round(rss)}


def profile_chunk(program, season, path: str) -> None:
    """cProfile of one chunk (the program's first ``CPM_CHUNK_SIZE`` accounts), recalculating the settlements the
    timed runs left, in a transaction rolled back afterwards."""
    import cProfile
    import pstats

    from django.conf import settings
    from django.db import transaction

    from settlement.choices import PeriodKind
    from settlement.models import SettlementBatch
    from settlement.services.customer_settlement import _accounts_for, customer_settle_chunk

    batch = SettlementBatch.objects.select_related("program", "season").get(program=program, kind="season")
    accounts = _accounts_for(program, batch.period_start, batch.period_end)[:settings.CPM_CHUNK_SIZE]

    class Rollback(Exception):
        pass

    prof = cProfile.Profile()
    try:
        with transaction.atomic():
            # As the batch found them: no settlement yet for these accounts (removed, then put back by the rollback).
            from django.db import connection
            with connection.cursor() as c:
                c.execute("DELETE FROM settlement_settlementline WHERE customer_settlement_id IN (SELECT id FROM "
                          "settlement_customersettlement WHERE batch_id = %s AND account_id BETWEEN %s AND %s)",
                          [batch.pk, accounts[0], accounts[-1]])
                c.execute("DELETE FROM settlement_customersettlement WHERE batch_id = %s AND account_id BETWEEN %s "
                          "AND %s", [batch.pk, accounts[0], accounts[-1]])
            timed: dict[str, list[float]] = {}

            def timer(execute, sql, params, many, context):
                t = time.perf_counter()
                try:
                    return execute(sql, params, many, context)
                finally:
                    timed.setdefault(" ".join(sql.split())[:110], []).append(time.perf_counter() - t)

            cpu0, t0 = cpu_now(), time.perf_counter()
            prof.enable()
            with connection.execute_wrapper(timer):
                customer_settle_chunk(batch=batch, account_first=accounts[0], account_last=accounts[-1],
                                      period_kind=PeriodKind.SEASON_END, now=SEASON_END_NOW, actor=bench_actor())
            prof.disable()
            for sql, times in sorted(timed.items(), key=lambda kv: -sum(kv[1]))[:15]:
                print(f"{sum(times):7.3f} s  x{len(times):<3} {sql}")
            t = time.perf_counter()
            with connection.cursor() as c:  # what COMMIT would check: the deferred foreign keys
                c.execute("SET CONSTRAINTS ALL IMMEDIATE")
            print(f"{time.perf_counter() - t:7.3f} s  the deferred foreign-key checks (SET CONSTRAINTS ALL IMMEDIATE)")
            cpu = cpu_since(cpu0)
            print(f"profiled chunk of {len(accounts)} accounts: {time.perf_counter() - t0:.2f} s wall, process CPU "
                  f"{cpu['process_s']:.2f} s (with the profiler), backend CPU {cpu['backend_s']:.2f} s")
            raise Rollback
    except Rollback:
        pass
    prof.dump_stats(path)
    stats = pstats.Stats(path)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3,
                        help="Timed season settlements (default 3; 0 with --profile: only the profile).")
    parser.add_argument("--profile", default="", help="Also profile one chunk with cProfile into this file.")
    parser.add_argument("--workers", type=int, default=0,
                        help="Also run it through K real Celery worker processes (after the eager runs; the digest "
                             "must be the same).")
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER),
                        help=f"Redis broker for --workers (default {DEFAULT_BROKER}).")
    args = parser.parse_args(argv)
    if args.workers:
        # Before Django settings load: a broker makes Celery non-eager (cpm.settings); the eager runs set it back.
        os.environ["CELERY_BROKER_URL"] = os.environ["CELERY_RESULT_BACKEND"] = args.broker
    setup_django()
    import logging

    from cpm.celery import app
    from programs.models import Season

    from .seed import settled_event

    app.conf.task_always_eager = True
    logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
    event, _, _ = settled_event(6)
    program = event.program
    season = Season.objects.get(program=program)
    results = [run_once(program, season) for _ in range(args.runs)]
    digests = {r["digest"]["sha256"] for r in results}
    if len(digests) > 1:
        raise SystemExit(f"the runs wrote different settlements: {digests}")
    scaled = []
    for k in sorted({1, args.workers}) if args.workers else ():
        scaled.append(run_workers(program, season, workers=k))
        if results and scaled[-1]["digest"] != results[0]["digest"]:
            raise SystemExit(f"{k} worker(s) wrote different settlements: {scaled[-1]['digest']}")
    if args.profile:
        profile_chunk(program, season, args.profile)
    best = min(results, key=lambda r: r["seconds"], default=None)
    emit({"step": "customer_settlement", "runs": results, "best_s": best and best["seconds"],
          "cpu_process_s": [r["cpu"]["process_s"] for r in results],
          "cpu_backend_s": [r["cpu"]["backend_s"] for r in results], "digest": best and best["digest"],
          "workers": scaled})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
