"""Reservation benchmark: seed N enrolled devices with season history in PostgreSQL (COPY), then time one
reservation, count its SQL queries and report peak memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench_events .venv/bin/python -m bench.reservation --n 100000

Options: ``--n`` devices (default 100,000); ``--history`` past events in the season (default 6, each calling ~60%
of the devices); ``--target-kw`` to exercise the rotation; ``--chunk`` to run the chunked path. The benchmark owns
its database: it truncates the program, device, enrollment and event tables before seeding.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time
import tracemalloc
from zoneinfo import ZoneInfo

from .common import peak_rss_mb, setup_django

LA = ZoneInfo("America/Los_Angeles")
TABLES = ["events_reservation", "events_participation", "events_optout", "events_dispatchmessage",
          "events_eventrevision", "events_unavailability", "events_event_target_devices", "events_event",
          "events_historicalevent", "enrollments_programsubscription", "enrollments_enrollment",
          "enrollments_serviceagreement", "enrollments_account", "enrollments_customer",
          "devices_deviceinstallation", "devices_device", "devices_servicepoint", "devices_premise",
          "devices_aggregator", "programs_participationrule", "programs_season", "programs_program", "cpm_auditentry"]


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    """COPY rows (tuples of str) into ``table`` in 8 MB blocks."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buf = io.StringIO()
        for row in rows:
            buf.write("\t".join(row))
            buf.write("\n")
            if buf.tell() > 8_000_000:
                copy.write(buf.getvalue())
                buf = io.StringIO()
        copy.write(buf.getvalue())


def seed(n: int, history: int) -> dict:
    from django.db import connection

    from devices.models import Aggregator
    from events.models import Event
    from programs.models import ParticipationRule, Program, Season

    t0 = time.perf_counter()
    with connection.cursor() as c:
        c.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    program = Program.objects.create(code="bench-ac", name="Bench smart thermostats", program_type="thermostat_dr",
                                     time_zone="America/Los_Angeles", status="active",
                                     eligible_device_types=["thermostat"])
    Season.objects.create(program=program, name="Summer 2026", start_date=dt.date(2026, 6, 1),
                          end_date=dt.date(2026, 9, 30))
    ParticipationRule.objects.create(program=program, effective_from=dt.date(2026, 1, 1), window_start=dt.time(14),
                                     window_end=dt.time(21), max_events_per_season=10, max_events_per_week=3,
                                     max_event_hours_per_season=40, min_rest_minutes=12 * 60,
                                     max_consecutive_event_days=3, opt_out_allowance_kind="count",
                                     opt_out_allowance_count=3)
    aggs = [Aggregator.objects.create(code=f"agg-{i}", name=f"Aggregator {i}") for i in range(4)]
    now = dt.datetime(2026, 7, 14, 16, tzinfo=dt.UTC)
    ts = now.isoformat()
    pid = str(program.pk)
    raw = connection.connection  # psycopg connection
    with raw.cursor() as c:
        _copy(c, "devices_premise", ["id", "premise_id", "address_line1", "address_line2", "city", "state",
                                     "postal_code", "service_territory", "substation", "feeder", "transformer"],
              ((str(i), f"P{i}", f"{i} Main St", "", "Springfield", "CA", "90001", "NORTH", f"SUB-{i % 20}",
                f"FDR-{i % 200}", "") for i in range(1, n + 1)))
        _copy(c, "devices_servicepoint", ["id", "service_point_id", "meter_number", "customer_class", "rate_code",
                                          "is_active", "net_metered", "premise_id"],
              ((str(i), f"SP{i}", f"M{i}", "residential", "TOU-D", "t", "f", str(i)) for i in range(1, n + 1)))
        _copy(c, "enrollments_customer", ["id", "cis_person_id", "first_name", "last_name", "email", "phone",
                                          "life_support"],
              ((str(i), f"PER{i}", "Pat", f"C{i}", "", "", "f") for i in range(1, n + 1)))
        _copy(c, "enrollments_account", ["id", "account_number", "status", "opened_on", "customer_id"],
              ((str(i), f"A{i}", "open", "2020-01-01", str(i)) for i in range(1, n + 1)))
        _copy(c, "enrollments_enrollment", ["id", "status", "source", "requested_at", "reason_code", "reason_text",
                                            "answers", "created_at", "updated_at", "account_id", "program_id",
                                            "service_point_id", "effective_date"],
              ((str(i), "active", "bulk_import", ts, "", "", "{}", ts, ts, str(i), pid, str(i), "2026-01-01")
               for i in range(1, n + 1)))
        # 2% offline, 1% inactive devices; capacities 0.5-3.0 kW.
        _copy(c, "devices_device", ["id", "device_type", "manufacturer", "model", "serial_number",
                                    "aggregator_device_id", "ownership", "capacity_kw", "firmware_version", "status",
                                    "created_at", "updated_at", "aggregator_id", "last_seen_at"],
              ((str(i), "thermostat", "Acme", "T1", f"SN{i}", f"d{i}", "customer_owned", f"{0.5 + (i % 6) * 0.5}",
                "", "inactive" if i % 100 == 0 else "active", ts, ts, str(aggs[i % 4].pk),
                (now - dt.timedelta(days=3)).isoformat() if i % 50 == 1 else ts) for i in range(1, n + 1)))
        _copy(c, "enrollments_programsubscription", ["id", "start_date", "end_reason", "exclusive", "enrollment_id",
                                                     "device_id"],
              ((str(i), "2026-01-01", "", "t", str(i), str(i)) for i in range(1, n + 1)))
    past = []
    for k in range(history):
        start = dt.datetime(2026, 6, 2 + 4 * k, 15, tzinfo=LA)
        past.append(Event.objects.create(program=program, name=f"Past {k}", start=start,
                                         end=start + dt.timedelta(hours=3),
                                         notification_at=start - dt.timedelta(hours=2), status="completed"))
    rows = 0
    with raw.cursor() as c:
        def parts():
            nonlocal rows
            pk = 0
            for k, ev in enumerate(past):
                s, e = ev.start.isoformat(), ev.end.isoformat()
                for i in range(1, n + 1):
                    if (i * 7 + k) % 5 < 3:  # ~60% of devices per event
                        pk += 1
                        status = "opted_out" if (i + k) % 23 == 0 else "participated"
                        yield (str(pk), status, s, e, ts, ts, str(i), str(ev.pk), str(i), str(i), str(i))
            rows = pk

        _copy(c, "events_participation", ["id", "status", "start", "\"end\"", "created_at", "updated_at",
                                          "enrollment_id", "event_id", "service_point_id", "subscription_id",
                                          "device_id"], parts())
        for table in ("devices_premise", "devices_servicepoint", "enrollments_customer", "enrollments_account",
                      "enrollments_enrollment", "devices_device", "enrollments_programsubscription",
                      "events_participation"):
            c.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        c.execute("ANALYZE")
    return {"program": program, "now": now, "history_rows": rows, "seconds": time.perf_counter() - t0}


def run(n: int, history: int, target_kw: float | None, chunk: int | None, trace: bool) -> None:
    from decimal import Decimal

    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from events import services
    from events.models import Event, Participation, Reservation

    seeded = seed(n, history)
    program, now = seeded["program"], seeded["now"]
    start = dt.datetime(2026, 7, 15, 15, tzinfo=LA)
    event = Event.objects.create(program=program, name="Bench event", start=start, end=start + dt.timedelta(hours=3),
                                 notification_at=start - dt.timedelta(hours=2), status="scheduled",
                                 target_kw=Decimal(str(target_kw)) if target_kw else None)
    rss_before = peak_rss_mb()
    if trace:
        tracemalloc.start()
    with CaptureQueriesContext(connection) as ctx:
        t0 = time.perf_counter()
        counts = services.event_reserve(event=event, now=now, chunk_size=chunk)
        elapsed = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if trace:
        tracemalloc.stop()
    # A second run (idempotent re-run) for the same event.
    t1 = time.perf_counter()
    with transaction.atomic():
        again = services.event_reserve(event=event, now=now, chunk_size=chunk)
    rerun = time.perf_counter() - t1
    assert again == counts, (again, counts)
    reads = sum(1 for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("SELECT"))
    print(f"n={n:,} history_events={history} history_participations={seeded['history_rows']:,} "
          f"seed={seeded['seconds']:.1f}s")
    print(f"reservation: {elapsed:.2f}s, SQL queries={len(ctx.captured_queries)} (SELECT {reads}), "
          f"re-run {rerun:.2f}s")
    print("decisions:", dict(sorted((str(k), v) for k, v in counts.items())))
    print(f"rows: reservations={Reservation.objects.filter(event=event).count():,} "
          f"participations={Participation.objects.filter(event=event).count():,}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (before reservation {rss_before:.0f} MB)"
          + (f"; tracemalloc peak during reservation {traced:.0f} MB" if traced is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--target-kw", type=float, default=None)
    parser.add_argument("--chunk", type=int, default=None)
    parser.add_argument("--tracemalloc", action="store_true", help="Trace Python allocations (slower).")
    args = parser.parse_args()
    setup_django("postgres://postgres@127.0.0.1:5432/cpm_bench_events")
    run(args.n, args.history, args.target_kw, args.chunk, args.tracemalloc)


if __name__ == "__main__":
    main()
