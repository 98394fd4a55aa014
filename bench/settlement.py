"""Benchmark: settle one event for N service points with hourly interval data over the 45-day lookback.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench_credits .venv/bin/python -m bench.settlement --n 100000

Seeds (once per N, in a child process so its memory does not count) N service points, accounts, enrollments,
subscriptions and participations of one completed weekday event, and 46 UTC days x N ``IntervalDay`` rows of 24
float64 by PostgreSQL COPY. Then, in this process: settles the event (``services.event_settle``: chunks of
``CPM_CHUNK_SIZE`` service points, Celery group run eagerly), reads the same readings with plain SQL, and prints
settle time, SQL read time, their ratio (target <= 3x), peak RSS (target < 1 GB, flat in N) and query count.
Targets at N = 100,000: <= 60 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
    from programs.models import IncentiveRule, Program

    call_command("migrate", verbosity=0)
    program = Program.objects.filter(code=CODE).first()
    from settlement.models import IntervalDay

    last = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    if (program and Participation.objects.filter(event__program=program).count() == n
            and IntervalDay.objects.filter(day=FIRST_DAY).count() == n
            and IntervalDay.objects.filter(day=last).count() == n):
        print(f"seed: {n} service points already there", file=sys.stderr)
        return
    with connection.cursor() as cur:
        cur.execute("TRUNCATE settlement_intervalday, settlement_settlementline, settlement_customersettlement, "
                    "settlement_eventsettlement, settlement_settlementbatch, events_participation, events_event, "
                    "enrollments_programsubscription, enrollments_enrollment, enrollments_account, "
                    "enrollments_customer, devices_servicepoint, devices_premise, programs_incentiverule, "
                    "programs_program CASCADE")
    t0 = time.perf_counter()
    with transaction.atomic():
        program = Program.objects.create(code=CODE, name="Bench peak-time rebate", status="active",
                                         program_type=ProgramType.PEAK_TIME_REBATE, requires_device=False,
                                         time_zone="America/Los_Angeles")
        IncentiveRule.objects.create(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis="per_kwh",
                                     amount="1.25")
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


def run(n: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from cpm.celery import app
    from events.models import Event
    from settlement import services
    from settlement.models import EventSettlement, SettlementBatch, SettlementLine

    app.conf.task_always_eager = True
    event = Event.objects.select_related("program").get(program__code=CODE)
    SettlementLine.objects.filter(program=event.program).delete()
    EventSettlement.objects.filter(event=event).delete()
    SettlementBatch.objects.filter(event=event).delete()
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
    batch.refresh_from_db()
    settled = EventSettlement.objects.filter(event=event, status="calculated").count()
    total = EventSettlement.objects.filter(event=event).count()

    # Plain SQL read of the same readings, in the same chunks of service points.
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
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sample = EventSettlement.objects.filter(event=event).order_by("pk").first()
    print(f"N={n} service points, {rows} IntervalDay rows read")
    print(f"settle: {settle_s:.1f} s  ({batch.status}, {batch.chunks_done}/{batch.chunks_total} chunks of {chunk}, "
          f"{settled}/{total} calculated)")
    print(f"plain SQL read of the same readings: {read_s:.1f} s")
    print(f"ratio settle / read: {settle_s / read_s:.2f}x (target <= 3x)")
    print(f"peak memory (RSS): {peak_mb:.0f} MB (target < 1024 MB)")
    print(f"queries during settle: {queries} ({queries / max(1, batch.chunks_total):.1f} per chunk)")
    print(f"sample: {sample.method}, {sample.kwh_avoided} kWh avoided, ${sample.amount}, "
          f"{len(sample.inputs['selected_days'])} selected days, adjustment {sample.inputs['adjustment']}")
    print(f"target <= 60 s at N=100,000: {'met' if settle_s <= 60 * max(1, n / 100000) else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100000, help="Service points (default 100,000).")
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
    run(args.n)


if __name__ == "__main__":
    main()
