"""Benchmark: settle one event for N service points with hourly interval data over the 45-day lookback.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench_settleperf .venv/bin/python -m bench.settlement \
        --n 100000 [--workers 2] [--broker redis://127.0.0.1:6379/6]

Seeds (once per N, in a child process so its memory does not count) N service points, accounts, enrollments,
subscriptions and participations of one completed weekday event of a season-end program (per-kWh performance and a
seasonal incentive), and 46 UTC days x N ``IntervalDay`` rows of 24 float64 by PostgreSQL COPY. Then, in this
process: settles the event (``services.event_settle``: chunks of ``CPM_CHUNK_SIZE`` service points, the Celery group
run eagerly), reads the same readings with plain SQL, and prints settle time, SQL read time, their ratio (target <= 3x),
peak RSS (target < 1 GB, flat in N) and query count; then the season-end customer settlement of the N accounts.

``--workers K`` then settles the event again through real Celery workers (``celery -A cpm worker --concurrency 1``,
started here against ``--broker``): once with 1 worker and once with K, checks that the amounts are identical to the
cent (sum and a hash of every row's amount) and prints the speed-up.
The last line is ``BENCH_JSON {...}`` (n, settle_s, plain_read_s, ratio, peak_rss_mb, queries,
customer_settlement_s, workers, speedup, ...) for a harness. Targets at N = 100,000: <= 60 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpm.settings")

EVENT_START = dt.datetime(2026, 7, 15, 23, 0, tzinfo=dt.UTC)  # Wed 16:00 PDT
EVENT_END = dt.datetime(2026, 7, 16, 2, 0, tzinfo=dt.UTC)
FIRST_DAY = dt.date(2026, 6, 1)  # 46 UTC days through 2026-07-16: the lookback and the event window
DAYS = 46
CODE = "bench-settlement"
NAME = "Bench peak-time rebate (season end, v2)"  # a new name re-seeds older data sets
DEFAULT_BROKER = "redis://127.0.0.1:6379/6"


def _ensure_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("The benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    conninfo = dict(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                    password=db["PASSWORD"] or None, dbname="postgres", autocommit=True)
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v is not None}) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def seed(n: int) -> None:
    """Seed the data set for ``n`` service points (skipped when it is already there)."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from devices.models import Premise, ServicePoint
    from enrollments.models import Account, Customer, Enrollment, ProgramSubscription
    from events.models import Event, Participation
    from programs.choices import IncentiveKind, ProgramType
    from programs.models import IncentiveRule, Program, Season

    call_command("migrate", verbosity=0)
    program = Program.objects.filter(code=CODE).first()
    from settlement.models import IntervalDay

    last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    if (program and program.name == NAME and Participation.objects.filter(event__program=program).count() == n
            and IntervalDay.objects.filter(day=FIRST_DAY).count() == n
            and IntervalDay.objects.filter(day=last).count() == n):
        print(f"seed: {n} service points already there", file=sys.stderr)
        return
    with connection.cursor() as cur:
        cur.execute("TRUNCATE settlement_intervalday, settlement_settlementline, settlement_customersettlement, "
                    "settlement_eventsettlement, settlement_settlementbatch, programs_season, events_participation, "
                    "events_event, "
                    "enrollments_programsubscription, enrollments_enrollment, enrollments_account, "
                    "enrollments_customer, devices_servicepoint, devices_premise, programs_incentiverule, "
                    "programs_program CASCADE")
    t0 = time.perf_counter()
    with transaction.atomic():
        program = Program.objects.create(code=CODE, name=NAME, status="active",
                                         program_type=ProgramType.PEAK_TIME_REBATE, requires_device=False,
                                         time_zone="America/Los_Angeles", settlement_timing="season_end")
        season = Season.objects.create(program=program, name="Summer 2026", start_date=dt.date(2026, 6, 1),
                                       end_date=dt.date(2026, 9, 30))
        IncentiveRule.objects.create(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis="per_kwh",
                                     amount="1.25")
        IncentiveRule.objects.create(program=program, kind=IncentiveKind.SEASONAL, basis="flat", amount="20",
                                     season=season, min_participation_share="0.5")
        event = Event.objects.create(program=program, name="Bench event", start=EVENT_START, end=EVENT_END,
                                     notification_at=EVENT_START - dt.timedelta(hours=2), status="completed")
        size = 10000
        for lo in range(0, n, size):
            hi = min(n, lo + size)
            premises = Premise.objects.bulk_create([Premise(premise_id=f"BP{i:08d}", address_line1=f"{i} Bench St",
                                                            city="Springfield") for i in range(lo, hi)])
            sps = ServicePoint.objects.bulk_create([ServicePoint(service_point_id=f"BSP{i:08d}", premise=p)
                                                    for i, p in zip(range(lo, hi), premises, strict=True)])
            customers = Customer.objects.bulk_create([Customer(cis_person_id=f"BC{i:08d}", last_name=f"B{i}")
                                                      for i in range(lo, hi)])
            accounts = Account.objects.bulk_create([Account(account_number=f"BA{i:08d}", customer=c,
                                                            opened_on=dt.date(2020, 1, 1))
                                                    for i, c in zip(range(lo, hi), customers, strict=True)])
            enrollments = Enrollment.objects.bulk_create([
                Enrollment(account=a, service_point=sp, program=program, status="active", source="bulk_import",
                           requested_at=EVENT_START - dt.timedelta(days=200), effective_date=dt.date(2026, 1, 1))
                for a, sp in zip(accounts, sps, strict=True)])
            subs = ProgramSubscription.objects.bulk_create([ProgramSubscription(enrollment=e, start_date=dt.date(
                2026, 1, 1)) for e in enrollments])
            Participation.objects.bulk_create([Participation(
                event=event, subscription=s, enrollment=e, service_point=sp, status="participated",
                start=EVENT_START, end=EVENT_END) for s, e, sp in zip(subs, enrollments, sps, strict=True)])
        sp_ids = list(ServicePoint.objects.filter(service_point_id__startswith="BSP").order_by("pk")
                      .values_list("pk", flat=True))
    print(f"seed: {n} participants in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    t0 = time.perf_counter()
    rng = np.random.default_rng(7)
    event_hours = {(EVENT_START + dt.timedelta(hours=h)) for h in range(3)}
    received = dt.datetime(2026, 7, 17, tzinfo=dt.UTC)
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cur:
        with cur.copy("COPY settlement_intervalday (service_point_id, channel, day, interval_minutes, \"values\", "
                      "version, is_current, received_at) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "varchar", "date", "int2", "bytea", "int4", "bool", "timestamptz"])
            for block in range(0, len(sp_ids), 2000):
                ids = sp_ids[block:block + 2000]
                base = rng.uniform(0.5, 3.0, size=(len(ids), 1, 1))
                shape = 1.0 + 0.5 * np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))
                noise = rng.normal(1.0, 0.05, size=(len(ids), DAYS, 24))
                data = base * shape * noise
                for d in range(DAYS):
                    day = FIRST_DAY + dt.timedelta(days=d)
                    hours = [h.hour for h in event_hours if h.date() == day]
                    if hours:
                        data[:, d, hours] *= 0.4  # the event: 60 % less load
                    for i, sp in enumerate(ids):
                        copy.write_row((sp, "delivered", day, 60, data[i, d].tobytes(), 1, True, received))
    with connection.cursor() as cur:
        cur.execute("ANALYZE settlement_intervalday")
    print(f"seed: {n * DAYS} IntervalDay rows by COPY in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


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


def _reset(event) -> None:
    from settlement.models import CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine

    SettlementLine.objects.filter(program=event.program).delete()
    CustomerSettlement.objects.filter(program=event.program).delete()
    EventSettlement.objects.filter(event=event).delete()
    SettlementBatch.objects.filter(program=event.program).delete()


def _wait(batch, timeout: float = 3600.0):
    from settlement.models import SettlementBatch

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        b = SettlementBatch.objects.get(pk=batch.pk)
        if b.status in ("completed", "completed_with_errors", "failed"):
            return b
        time.sleep(0.05)
    sys.exit(f"batch {batch.pk} did not finish in {timeout:.0f} s")


def _rss_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a process and its children, MB (Linux /proc)."""
    total = 0.0
    pids = [pid]
    try:
        pids += [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    total = max(total, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return total


def run_workers(event, *, workers: int, broker: str, now) -> dict:
    """Settle ``event`` through ``workers`` real Celery worker processes; returns time, digest, worker peak RSS."""
    from cpm.celery import app
    from settlement import services

    env = {**os.environ, "CELERY_BROKER_URL": broker, "CELERY_RESULT_BACKEND": broker}
    app.conf.task_always_eager = False
    app.conf.broker_url = app.conf.result_backend = broker
    app.control.purge()
    procs = [subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "cpm", "worker",
                               "--concurrency", "1", "-n", f"bench{i}-{os.getpid()}@%h", "--without-gossip",
                               "--without-mingle", "-l", "warning"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i in range(workers)]
    try:
        deadline = time.perf_counter() + 120
        while len(app.control.ping(timeout=0.5) or []) < workers:
            if time.perf_counter() > deadline or any(p.poll() is not None for p in procs):
                sys.exit("Celery workers did not start (is Redis running at the broker URL?)")
        _reset(event)
        t0 = time.perf_counter()
        batch = services.event_settle(event=event, now=now, actor="bench")
        batch = _wait(batch)
        seconds = time.perf_counter() - t0
        rss = max(_rss_mb(p.pid) for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        app.conf.task_always_eager = True
    return {"seconds": seconds, "status": batch.status, "digest": _digest(event), "worker_peak_rss_mb": rss}


def run(n: int, *, workers: int = 0, broker: str = DEFAULT_BROKER) -> dict:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from cpm.celery import app
    from events.models import Event
    from programs.models import Season
    from settlement import services
    from settlement.models import CustomerSettlement, EventSettlement

    app.conf.task_always_eager = True
    event = Event.objects.select_related("program").get(program__code=CODE)
    _reset(event)
    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    now = dt.datetime(2026, 7, 20, 12, tzinfo=dt.UTC)
    t0 = time.perf_counter()
    with connection.execute_wrapper(count):
        batch = services.event_settle(event=event, now=now, actor="bench")
    settle_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batch.refresh_from_db()
    settled = EventSettlement.objects.filter(event=event).exclude(status="pending").count()
    total = EventSettlement.objects.filter(event=event).count()
    eager_digest = _digest(event)

    # Plain SQL read of the same readings (the whole lookback), in the same chunks of service points.
    sp_ids = list(event.participations.order_by("service_point_id").values_list("service_point_id", flat=True))
    chunk = settings.CPM_CHUNK_SIZE
    t0 = time.perf_counter()
    rows = 0
    with connection.cursor() as cur:
        for i in range(0, len(sp_ids), chunk):
            cur.execute("SELECT service_point_id, day, interval_minutes, \"values\" FROM settlement_intervalday "
                        "WHERE is_current AND device_id IS NULL AND channel = 'delivered' AND day BETWEEN %s AND %s "
                        "AND service_point_id BETWEEN %s AND %s",
                        [FIRST_DAY - dt.timedelta(days=1), FIRST_DAY + dt.timedelta(days=DAYS),
                         sp_ids[i], sp_ids[min(i + chunk, len(sp_ids)) - 1]])
            rows += len(cur.fetchall())
    read_s = time.perf_counter() - t0
    sample = EventSettlement.objects.filter(event=event).order_by("pk").first()
    print(f"N={n} service points, {rows} IntervalDay rows read by the plain SQL read")
    print(f"settle: {settle_s:.1f} s  ({batch.status}, {batch.chunks_done}/{batch.chunks_total} chunks of {chunk}, "
          f"{settled}/{total} settled)")
    print(f"plain SQL read of the same readings: {read_s:.1f} s")
    print(f"ratio settle / read: {settle_s / read_s:.2f}x (target <= 3x)")
    print(f"peak memory (RSS): {peak_mb:.0f} MB (target < 1024 MB)")
    print(f"queries during settle: {queries} ({queries / max(1, batch.chunks_total):.1f} per chunk)")
    print(f"sample: {sample.method}, {sample.kwh_avoided} kWh avoided, ${sample.amount}, "
          f"{len(sample.inputs['selected_days'])} selected days, adjustment {sample.inputs['adjustment']}")
    print(f"amounts: sum ${eager_digest['sum']}, sha256 {eager_digest['sha256'][:16]}")
    print(f"target <= 60 s at N=100,000: {'met' if settle_s <= 60 * max(1, n / 100000) else 'NOT met'}")

    # Season-end customer settlement of the N accounts (the deferred event settlements + the seasonal incentive).
    season = Season.objects.get(program=event.program)
    t0 = time.perf_counter()
    cbatch = services.season_settle(program=event.program, season=season,
                                     now=dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC), actor="bench")
    customer_s = time.perf_counter() - t0
    cbatch.refresh_from_db()
    cs_total = sum(CustomerSettlement.objects.filter(batch=cbatch).values_list("total_amount", flat=True))
    print(f"season-end customer settlement: {customer_s:.1f} s for {cbatch.items_total} accounts "
          f"({cbatch.status}, total ${cs_total})")
    out = {"n": n, "settle_s": round(settle_s, 2), "plain_read_s": round(read_s, 2),
           "ratio": round(settle_s / read_s, 2), "peak_rss_mb": round(peak_mb), "queries": queries,
           "chunks": batch.chunks_total, "customer_settlement_s": round(customer_s, 2),
           "customer_accounts": cbatch.items_total, "amount_sum": eager_digest["sum"],
           "amount_sha256": eager_digest["sha256"], "workers": workers or None, "speedup": None}
    if workers:
        one = run_workers(event, workers=1, broker=broker, now=now)
        print(f"1 worker: {one['seconds']:.1f} s ({one['status']}), sum ${one['digest']['sum']}, "
              f"worker peak RSS {one['worker_peak_rss_mb']:.0f} MB")
        out.update(settle_1_worker_s=round(one["seconds"], 2), worker_peak_rss_mb=round(one["worker_peak_rss_mb"]))
        identical = one["digest"] == eager_digest
        if workers > 1:
            many = run_workers(event, workers=workers, broker=broker, now=now)
            speedup = one["seconds"] / many["seconds"]
            identical = identical and many["digest"] == one["digest"]
            print(f"{workers} workers: {many['seconds']:.1f} s ({many['status']}), sum ${many['digest']['sum']}; "
                  f"speed-up {speedup:.2f}x")
            out.update({f"settle_{workers}_workers_s": round(many["seconds"], 2), "speedup": round(speedup, 2)})
        print(f"amounts identical to the cent across runs (sum and per-row hash): {identical}")
        out["identical"] = identical
    print("BENCH_JSON " + json.dumps(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100000, help="Service points (default 100,000).")
    parser.add_argument("--workers", type=int, default=0,
                        help="Also settle through 1 and K real Celery workers and compare (default: no workers).")
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER),
                        help=f"Redis broker for --workers (default {DEFAULT_BROKER}).")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import django

    django.setup()
    _ensure_database()
    if args.seed_only:
        seed(args.n)
        return
    # Seed in a child process so the seeding's memory does not count in this process's peak.
    subprocess.run([sys.executable, "-m", "bench.settlement", "--n", str(args.n), "--seed-only"], check=True)
    run(args.n, workers=args.workers, broker=args.broker)


if __name__ == "__main__":
    main()
