"""The benchmarks' shared seeded generator: a utility-sized population written straight into PostgreSQL by COPY.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.seed --n 100000

``seed_population(n)`` writes, deterministically for a given ``n``: one active thermostat DR program (America/
Los_Angeles, summer season, a participation rule with season/week/rest/consecutive-day limits and an opt-out
allowance), 4 aggregators, and per customer i = 1..n one premise, service point (meter), customer, open account,
service agreement, active enrollment, thermostat (2 % offline, 1 % inactive, 0.5-3.0 kW) installed at the service
point, and an exclusive program subscription; then ``history`` completed past events of the season, each calling
~60 % of the devices (1 in 23 opted out) as participations. Names come from lists of common US first and last
names so a CSR search by last name finds many customers, as in a real utility.

Interval data: ``load_shapes`` parses the Green Button samples (``../shared/data/greenbutton``, 8,760 hourly Wh of
2011 per file; NAESB REQ.21 ESPI) with ``settlement.meterdata.greenbutton`` and ``hourly_kwh`` gives each service point
one of those shapes (shifted by 780 weeks, so weekdays line up, to 2026), scaled per customer with a little noise;
without the files, a synthetic summer shape (evening peak) is used. ``write_interval_csv`` streams a meter CSV of them.

The benchmark owns its database: seeding truncates the program, device, enrollment, event and settlement tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from cpm.base.paths import green_button_dir

LA = ZoneInfo("America/Los_Angeles")
NOW = dt.datetime(2026, 7, 14, 16, tzinfo=dt.UTC)  # the benchmarks' "now": mid-season, before the bench event
PROGRAM_CODE = "bench-ac"
PROGRAM_NAME = "Bench smart thermostats (seed v2)"  # a new name makes older populations re-seed
RESPONSE = 0.30  # simulated response: share of its load a participating thermostat sheds in event hours


GREENBUTTON_DIR = green_button_dir()
SHIFT_DAYS = 780 * 7  # 2026 date -> 2011 date with the same weekday
TABLES = ["settlement_settlementline", "settlement_customersettlement", "settlement_eventsettlement",
          "settlement_settlementbatch", "settlement_intervalday", "settlement_meterdataload",
          "events_reservation", "events_participation", "events_optout", "events_dispatchmessage",
          "events_eventrevision", "events_unavailability", "events_event_target_devices", "events_event",
          "enrollments_programsubscription", "enrollments_enrollment",
          "enrollments_serviceagreement", "enrollments_account", "enrollments_customer",
          "devices_deviceinstallation", "devices_device", "devices_servicepoint", "devices_premise",
          "devices_aggregator", "programs_participationrule", "programs_incentiverule", "programs_season",
          "programs_program", "cpm_auditentry"]
FIRST_NAMES = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
               "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Maria", "Karen",
               "Jose", "Nancy", "Daniel", "Lisa", "Wei", "Sandra", "Anthony", "Ashley", "Kevin", "Priya"]
LAST_NAMES = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
              "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
              "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
              "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
              "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Chen",
              "Patel", "Kim", "Singh", "Tran", "Wong", "Okafor", "Kowalski", "Novak", "Schmidt"]
STREETS = ["Main St", "Oak Ave", "Pine St", "Maple Dr", "Cedar Ln", "Elm St", "Washington Blvd", "Lake Rd",
           "Hill St", "Park Ave"]


def account_number(i: int) -> str:
    return f"8{i:09d}"


def service_point_code(i: int) -> str:
    return f"SP{i:08d}"


def last_name(i: int) -> str:
    return LAST_NAMES[(i * 7919) % len(LAST_NAMES)]


def copy_rows(cursor, table: str, columns: list[str], rows) -> int:
    """COPY rows (tuples of str, tab-separated text format) into ``table`` in 8 MB blocks; returns the count."""
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buf = io.StringIO()
        for row in rows:
            buf.write("\t".join(row))
            buf.write("\n")
            count += 1
            if buf.tell() > 8_000_000:
                copy.write(buf.getvalue())
                buf = io.StringIO()
        copy.write(buf.getvalue())
    return count


def settle_writes(table: str = "") -> None:
    """After seeding, before anything is timed: VACUUM ANALYZE (statistics, and the hint bits a first reader would
    otherwise write while it is being measured) and a CHECKPOINT (the seeded gigabytes flushed now, not during the
    next measurement). ``table``: one table, or the whole database."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute(f"VACUUM ANALYZE {table}".strip())
        try:
            c.execute("CHECKPOINT")
        except Exception as exc:  # noqa: BLE001 - needs superuser or pg_checkpoint; the figures are only noisier
            print(f"CHECKPOINT skipped: {exc}")


def population_present(n: int, history: int) -> bool:
    """True when the database already holds ``seed_population(n, history)`` (so a step can reuse it)."""
    from devices.models import Device
    from events.models import Event
    from programs.models import Program

    program = Program.objects.filter(code=PROGRAM_CODE).first()
    return bool(program and program.name == PROGRAM_NAME and Device.objects.count() == n
                and Event.objects.filter(program=program, name__startswith="Past ").count() == history)


def seed_population(n: int, *, history: int = 6) -> dict:
    """Truncate the domain tables and seed ``n`` customers (see the module docstring). Returns counts and seconds."""
    from django.db import connection

    from devices.models import Aggregator
    from enrollments.models import name_key
    from events.models import Event
    from programs.models import IncentiveRule, ParticipationRule, Program, Season

    t0 = time.perf_counter()
    with connection.cursor() as c:
        c.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    program = Program.objects.create(code=PROGRAM_CODE, name=PROGRAM_NAME, program_type="thermostat_dr",
                                     time_zone="America/Los_Angeles", status="active",
                                     eligible_device_types=["thermostat"], settlement_timing="season_end")
    season = Season.objects.create(program=program, name="Summer 2026", start_date=dt.date(2026, 6, 1),
                                   end_date=dt.date(2026, 9, 30))
    ParticipationRule.objects.create(program=program, effective_from=dt.date(2026, 1, 1), window_start=dt.time(14),
                                     window_end=dt.time(21), max_events_per_season=10, max_events_per_week=3,
                                     max_event_hours_per_season=40, min_rest_minutes=12 * 60,
                                     max_consecutive_event_days=3, opt_out_allowance_kind="count",
                                     opt_out_allowance_count=3)
    IncentiveRule.objects.create(program=program, kind="performance_kwh", basis="per_kwh", amount="1.25")
    IncentiveRule.objects.create(program=program, kind="seasonal", basis="flat", amount="20", season=season,
                                 min_participation_share="0.5")
    aggs = [Aggregator.objects.create(code=f"agg-{i}", name=f"Aggregator {i}") for i in range(4)]
    ts = NOW.isoformat()
    pid = str(program.pk)
    rng = range(1, n + 1)
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as c:
        copy_rows(c, "devices_premise", ["id", "premise_id", "address_line1", "address_line2", "city", "state",
                                         "postal_code", "service_territory", "substation", "feeder", "transformer"],
                  ((str(i), f"P{i:08d}", f"{100 + i % 9900} {STREETS[i % len(STREETS)]}", "", "Springfield", "CA",
                    f"9{i % 10000:04d}", "NORTH" if i % 3 else "SOUTH", f"SUB-{i % 20}", f"FDR-{i % 200}", "")
                   for i in rng))
        copy_rows(c, "devices_servicepoint", ["id", "service_point_id", "meter_number", "customer_class",
                                              "rate_code", "is_active", "net_metered", "premise_id"],
                  ((str(i), service_point_code(i), f"M{i:08d}", "residential", "TOU-D", "t", "f", str(i))
                   for i in rng))
        # COPY bypasses Customer.save: the CSR search keys of the names are written here (enrollments.models.name_key).
        keys = {name: name_key(name) for name in FIRST_NAMES + LAST_NAMES}
        copy_rows(c, "enrollments_customer", ["id", "cis_person_id", "first_name", "last_name", "email", "phone",
                                              "life_support", "first_name_key", "last_name_key"],
                  ((str(i), f"PER{i:08d}", FIRST_NAMES[i % len(FIRST_NAMES)], last_name(i),
                    f"customer{i}@example.com", f"555-{i % 10000:04d}", "t" if i % 500 == 0 else "f",
                    keys[FIRST_NAMES[i % len(FIRST_NAMES)]], keys[last_name(i)]) for i in rng))
        copy_rows(c, "enrollments_account", ["id", "account_number", "status", "opened_on", "customer_id"],
                  ((str(i), account_number(i), "open", "2020-01-01", str(i)) for i in rng))
        copy_rows(c, "enrollments_serviceagreement", ["id", "agreement_id", "account_id", "service_point_id",
                                                      "start_date"],
                  ((str(i), f"SA{i:08d}", str(i), str(i), "2020-01-01") for i in rng))
        copy_rows(c, "enrollments_enrollment", ["id", "status", "source", "requested_at", "reason_code",
                                                "reason_text", "answers", "created_at", "updated_at", "account_id",
                                                "program_id", "service_point_id", "effective_date"],
                  ((str(i), "active", "bulk_import", ts, "", "", "{}", ts, ts, str(i), pid, str(i), "2026-01-01")
                   for i in rng))
        # 2% offline (last seen 3 days ago), 1% inactive devices; capacities 0.5-3.0 kW.
        offline = (NOW - dt.timedelta(days=3)).isoformat()
        copy_rows(c, "devices_device", ["id", "device_type", "manufacturer", "model", "serial_number",
                                        "aggregator_device_id", "ownership", "capacity_kw", "firmware_version",
                                        "status", "created_at", "updated_at", "aggregator_id", "last_seen_at"],
                  ((str(i), "thermostat", "Acme", "T1", f"SN{i:08d}", f"d{i}", "customer_owned",
                    f"{0.5 + (i % 6) * 0.5}", "", "inactive" if i % 100 == 0 else "active", ts, ts,
                    str(aggs[i % 4].pk), offline if i % 50 == 1 else ts) for i in rng))
        copy_rows(c, "devices_deviceinstallation", ["id", "device_id", "service_point_id", "installed_on"],
                  ((str(i), str(i), str(i), "2025-05-01") for i in rng))
        copy_rows(c, "enrollments_programsubscription", ["id", "start_date", "end_reason", "exclusive",
                                                         "enrollment_id", "device_id"],
                  ((str(i), "2026-01-01", "", "t", str(i), str(i)) for i in rng))
    past = []
    for k in range(history):
        start = dt.datetime(2026, 6, 2 + 4 * k, 15, tzinfo=LA)
        past.append(Event.objects.create(program=program, name=f"Past {k}", start=start,
                                         end=start + dt.timedelta(hours=3),
                                         notification_at=start - dt.timedelta(hours=2), status="completed"))

    def parts():
        pk = 0
        for k, ev in enumerate(past):
            s, e = ev.start.isoformat(), ev.end.isoformat()
            for i in rng:
                if k == history - 1 or (i * 7 + k) % 5 < 3:  # ~60% of devices per event, all in the last one
                    pk += 1
                    status = "opted_out" if (i + k) % 23 == 0 else "participated"
                    yield (str(pk), status, s, e, ts, ts, str(i), str(ev.pk), str(i), str(i), str(i))

    with raw.cursor() as c:
        rows = copy_rows(c, "events_participation", ["id", "status", "start", "\"end\"", "created_at", "updated_at",
                                                     "enrollment_id", "event_id", "service_point_id",
                                                     "subscription_id", "device_id"], parts())
        for table in ("devices_premise", "devices_servicepoint", "enrollments_customer", "enrollments_account",
                      "enrollments_serviceagreement", "enrollments_enrollment", "devices_device",
                      "devices_deviceinstallation", "enrollments_programsubscription", "events_participation"):
            c.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    settle_writes()
    return {"program_id": program.pk, "history_participations": rows, "seed_s": time.perf_counter() - t0}


def settled_event(history: int):
    """The past event the settlement benchmark settles (the last one, which called every device) and the UTC days
    of interval data it needs: the 45-day baseline lookback, the event day and the next UTC day."""
    from events.models import Event

    event = Event.objects.select_related("program").get(program__code=PROGRAM_CODE, name=f"Past {history - 1}")
    last = (event.end - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date()
    first = event.start.astimezone(LA).date() - dt.timedelta(days=46)
    return event, first, (last - first).days + 1


def reserved_event(program, *, name: str, start: dt.datetime, hours: int = 3):
    """A SCHEDULED event of ``program`` (``[start, start + hours)``, notified 2 h before) with a RESERVED
    participation per active subscription, written by one ``INSERT ... SELECT`` (what the notice and OpenADR 3
    benchmarks need: the reservation itself is ``bench.reservation``'s to measure)."""
    from django.db import connection

    from events.models import Event

    event = Event.objects.create(program=program, name=name, start=start, end=start + dt.timedelta(hours=hours),
                                 notification_at=start - dt.timedelta(hours=2), status="scheduled", reserved_at=NOW)
    with connection.cursor() as c:
        c.execute("""
            INSERT INTO events_participation (status, start, "end", created_at, updated_at, enrollment_id, event_id,
                                              service_point_id, subscription_id, device_id)
            SELECT 'reserved', %s, %s, %s, %s, s.enrollment_id, %s, e.service_point_id, s.id, s.device_id
            FROM enrollments_programsubscription s JOIN enrollments_enrollment e ON e.id = s.enrollment_id
            WHERE e.program_id = %s AND e.status = 'active'""",
                  [event.start, event.end, NOW, NOW, event.pk, program.pk])
        c.execute("ANALYZE events_participation")
    return event


def interval_days_present(n: int, first_day: dt.date, days: int) -> bool:
    from settlement.models import IntervalDay

    last = first_day + dt.timedelta(days=days - 1)
    return all(IntervalDay.objects.filter(day=d, is_current=True).count() == n for d in (first_day, last))


def seed_interval_days(n: int, *, first_day: dt.date, days: int, block: int = 5000) -> int:
    """Hourly delivered ``IntervalDay`` rows of service points 1..n for ``days`` UTC days from ``first_day``.

    Load shapes from the Green Button samples (``hourly_kwh``) with a simulated response: a participation that
    PARTICIPATED in a past event sheds ``RESPONSE`` of its load in the event's hours (opted-out ones shed nothing).
    Written by ``settlement.meterdata.loaders.interval_days_insert`` (binary COPY) in blocks of ``block`` service
    points, under one ``MeterDataLoad`` record; the days are cleared first. Returns the number of rows."""
    from django.db import connection

    from events.models import Participation
    from settlement.meterdata.loaders import interval_days_insert
    from settlement.models import MeterDataLoad

    _, shapes = load_shapes()
    t0 = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    t1 = t0 + dt.timedelta(days=days)
    with connection.cursor() as c:
        c.execute("DELETE FROM settlement_intervalday WHERE day >= %s AND day < %s",
                  [first_day, first_day + dt.timedelta(days=days)])
    load = MeterDataLoad.objects.create(source="api", file_name="bench seed (Green Button shapes)", created_at=NOW,
                                        status="completed", readings_new=n * days * 24, finished_at=NOW)
    day0 = (first_day - dt.date(1970, 1, 1)).days
    rows = 0
    for lo in range(1, n + 1, block):
        ids = np.arange(lo, min(n, lo + block - 1) + 1, dtype=np.int64)
        kwh = hourly_kwh(shapes, ids, first_day, days).reshape(len(ids), days * 24)
        shed = Participation.objects.filter(service_point_id__gte=int(ids[0]), service_point_id__lte=int(ids[-1]),
                                            status="participated", start__gte=t0, end__lte=t1)
        for sp, start, end in shed.values_list("service_point_id", "start", "end"):
            h0, h1 = int((start - t0).total_seconds() // 3600), -(-int((end - t0).total_seconds()) // 3600)
            kwh[sp - lo, h0:h1] *= 1 - RESPONSE
        interval_days_insert(sp=np.repeat(ids, days), dev=np.zeros(len(ids) * days, dtype=np.int64),
                           ch=np.zeros(len(ids) * days, dtype=np.int64), day=np.tile(day0 + np.arange(days), len(ids)),
                           minutes=60, values=np.round(kwh, 3).reshape(len(ids) * days, 24),
                           version=np.ones(len(ids) * days, dtype=np.int64), load=load)
        rows += len(ids) * days
    settle_writes("settlement_intervalday")
    return rows


def seed_event_settlements(*, event_id: int) -> int:
    """One calculated event settlement per participation of ``event_id`` (a completed past event), by one INSERT ...
    SELECT (list-page data for the pages benchmark; the amounts are placeholders, not a settlement run)."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("DELETE FROM settlement_eventsettlement WHERE event_id = %s", [event_id])
        c.execute(
            "INSERT INTO settlement_eventsettlement (event_id, participation_id, program_id, enrollment_id, account_id,"
            " service_point_id, device_id, status, measurement_status, method, kwh_avoided, kw_drop_avg,"
            " participation_fraction, opted_out, amount, posted_amount, components, inputs, explanation, fingerprint,"
            " revision, event_day, calculated_at, created_at, updated_at)"
            " SELECT p.event_id, p.id, ev.program_id, p.enrollment_id, en.account_id, p.service_point_id, p.device_id,"
            " 'calculated', 'ok', 'caiso-10-in-10', (p.id %% 30) / 10.0, (p.id %% 30) / 30.0, 1,"
            " p.status = 'opted_out', (p.id %% 30) / 8.0, 0, '[]', '{}', '', md5(p.id::text), 1,"
            " (ev.start AT TIME ZONE 'America/Los_Angeles')::date, %s, %s, %s"
            " FROM events_participation p JOIN events_event ev ON ev.id = p.event_id"
            " JOIN enrollments_enrollment en ON en.id = p.enrollment_id WHERE p.event_id = %s",
            [NOW, NOW, NOW, event_id])
        count = c.rowcount
        c.execute("ANALYZE settlement_eventsettlement")
    return count


# ----------------------------------------------------------------------------------------------------- load shapes
def load_shapes(directory: Path = GREENBUTTON_DIR) -> tuple[list[str], np.ndarray]:
    """Hourly kWh shapes by UTC hour of 2011 (``(K, 8760)``, each normalised to a mean of 1 kWh/h) parsed from the
    full-year Green Button samples in ``directory``; a synthetic shape (K = 1) when there are none."""
    names, shapes = [], []
    if directory.is_dir():
        from settlement.meterdata.greenbutton import parse_green_button

        origin = int(dt.datetime(2011, 1, 1, tzinfo=dt.UTC).timestamp())
        for path in sorted(directory.glob("*_Jan_1_2011_to_Jan_1_2012_*.xml")):
            for up in parse_green_button(path.read_bytes()).usage_points:
                hourly = (up.minutes == 60) & (up.channel == 0)
                idx = (up.start[hourly] - origin) // 3600
                keep = (idx >= 0) & (idx < 8760)
                year = np.full(8760, np.nan)
                year[idx[keep]] = up.kwh[hourly][keep]
                if np.isnan(year).mean() > 0.05:
                    continue
                # The few hours the file does not cover (before the first local midnight): the same hour a day later.
                for h in np.flatnonzero(np.isnan(year)):
                    year[h] = year[(h + 24) % 8760] if not np.isnan(year[(h + 24) % 8760]) else np.nanmean(year)
                shapes.append(year / year.mean())
                names.append(path.name.split("_Jan_1")[0])
    if not shapes:
        hours = np.arange(8760)
        local = (hours - 8) % 24  # Pacific standard time
        day = hours // 24
        summer = 1 + 0.6 * np.exp(-((day - 200) / 45.0) ** 2)
        daily = 0.7 + 0.5 * np.exp(-((local - 18) / 3.0) ** 2) + 0.2 * np.exp(-((local - 8) / 2.0) ** 2)
        year = summer * daily
        shapes, names = [year / year.mean()], ["synthetic"]
    return names, np.vstack(shapes)


def shapes_note(directory: Path = GREENBUTTON_DIR) -> str:
    """Which load shapes the generator uses, for the benchmark's output."""
    names, _ = load_shapes(directory)
    if names == ["synthetic"]:
        return f"synthetic evening-peak shape (no full-year Green Button sample in {directory}; set GREENBUTTON_DIR)"
    return f"{len(names)} Green Button samples from {directory}"


def hourly_kwh(shapes: np.ndarray, customer_ids: np.ndarray, first_day: dt.date, days: int) -> np.ndarray:
    """``(len(customer_ids), days, 24)`` hourly kWh of UTC days from ``first_day``: customer i gets shape
    ``i % K`` scaled by a per-customer mean of 0.5-2.0 kWh/h, times 5 % noise (seeded by the customer ids)."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    start = ((first_day - dt.timedelta(days=SHIFT_DAYS)) - dt.date(2011, 1, 1)).days % 365
    hours = (start * 24 + np.arange(days * 24)) % 8760
    base = shapes[ids % len(shapes)][:, hours].reshape(len(ids), days, 24)
    scale = 0.5 + 1.5 * ((ids * 2654435761) % 1000) / 1000.0
    noise = np.random.default_rng(int(ids[0]) if len(ids) else 0).normal(1.0, 0.05, size=base.shape)
    return np.round(base * scale[:, None, None] * noise, 3)


def write_interval_csv(path: Path, *, n: int, first_day: dt.date, days: int) -> int:
    """Write the meter CSV of service points 1..n (``SP00000001``...), hourly readings of ``days`` UTC days from
    ``first_day``, in the ``settlement.meterdata.csvreadings`` format. Returns the number of readings."""
    _, shapes = load_shapes()
    t0 = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    stamps = np.array([(t0 + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(days * 24)])
    with open(path, "w") as f:
        f.write("service_point_id,channel,interval_start,interval_minutes,kwh\n")
        for lo in range(1, n + 1, 5000):
            ids = np.arange(lo, min(n, lo + 4999) + 1)
            kwh = hourly_kwh(shapes, ids, first_day, days).reshape(len(ids), days * 24)
            lines = []
            for row, i in enumerate(ids):
                sp = service_point_code(int(i))
                lines.extend(f"{sp},delivered,{s},60,{v:.3f}\n" for s, v in zip(stamps, kwh[row], strict=True))
            f.write("".join(lines))
    return n * days * 24


def main() -> None:
    from .common import emit, setup_django

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--force", action="store_true", help="Re-seed even when the population is there.")
    args = parser.parse_args()
    setup_django()
    if not args.force and population_present(args.n, args.history):
        emit({"step": "seed", "n": args.n, "reused": True})
        return
    result = seed_population(args.n, history=args.history)
    emit({"step": "seed", "n": args.n, "reused": False, **result})


if __name__ == "__main__":
    main()
