"""Page benchmark: admin changelists, API list endpoints and the CSR pages against the seeded N-size database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.pages --n 100000

In process with the Django test ``Client``, logged in as a superuser, ``SECURE_SSL_REDIRECT=False``: each page is
requested once to warm up, once with its SQL captured by an execute wrapper (count, time, slowest query), then
``--repeat`` times (default 20); prints the median and p95 in ms, the SQL query count and SQL time. Target: median
<= 300 ms, and query counts that do not grow with N (``python -m bench`` compares them across N).

Data: the ``bench.seed`` population (seeded in a child process when missing), the reservation benchmark's event
when it has run, interval days of the loading benchmark (run in a child when there are none), and one event
settlement per participation of the first past event (``bench.seed.seed_event_settlements``). Last line:
``BENCH_JSON {...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from .common import emit, loadavg, peak_rss_mb, setup_django

ADMIN = [("programs", "program"), ("devices", "servicepoint"), ("devices", "device"), ("devices", "premise"),
         ("enrollments", "customer"), ("enrollments", "account"), ("enrollments", "enrollment"),
         ("enrollments", "programsubscription"), ("events", "event"), ("events", "reservation"),
         ("events", "participation"), ("settlement", "eventsettlement"), ("settlement", "customersettlement"),
         ("settlement", "settlementline"), ("settlement", "intervalday"), ("cpm", "auditentry")]
API = ["programs", "service-points", "devices", "premises", "customers", "accounts", "enrollments", "subscriptions",
       "events", "reservations", "participations", "event-settlements", "customer-settlements", "interval-days"]


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", *args], check=True, capture_output=True, text=True,
                         env=os.environ.copy())
    lines = [x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")]
    return json.loads(lines[-1].removeprefix("BENCH_JSON ")) if lines else {}


def prepare(n: int, history: int) -> dict:
    """Make sure the N-size data set is there; returns the ids the CSR pages use."""
    from enrollments.models import Account, Customer
    from events.models import Event
    from settlement.models import EventSettlement, IntervalDay

    from .seed import PROGRAM_CODE, seed_event_settlements

    _child("bench.seed", "--n", str(n), "--history", str(history))
    if not IntervalDay.objects.exists():
        _child("bench.loading", "--n", str(n), "--history", str(history))
    first_past = Event.objects.filter(program__code=PROGRAM_CODE, name="Past 0").first()
    if first_past and not EventSettlement.objects.exists():
        seed_event_settlements(event_id=first_past.pk)
    customer = Customer.objects.get(pk=n // 2)
    account = Account.objects.filter(customer=customer).first()
    return {"customer_id": customer.pk, "last_name": customer.last_name, "account_number": account.account_number}


def pages(ids: dict) -> list[tuple[str, str]]:
    from django.urls import reverse

    out = [(f"admin {app}.{model}", reverse(f"admin:{app}_{model}_changelist")) for app, model in ADMIN]
    out += [(f"api {name}", f"/api/v1/{name}/") for name in API]
    out += [("csr customer page", f"/csr/customers/{ids['customer_id']}/"),
            ("csr search last name", f"/csr/?q={ids['last_name']}"),
            ("csr search account", f"/csr/?q={ids['account_number']}")]
    return out


def measure(client, url: str, repeat: int) -> dict:
    from django.db import connection

    sql: list[tuple[float, str, tuple]] = []

    def capture(execute, query, params, many, context):  # (CaptureQueriesContext is reset by request_started)
        t = time.perf_counter()
        try:
            return execute(query, params, many, context)
        finally:
            sql.append(((time.perf_counter() - t) * 1000, query, tuple(params or ())))

    client.get(url)  # warm-up
    with connection.execute_wrapper(capture):
        response = client.get(url)
    status = response.status_code
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"status": status, "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)], 1),
            "queries": len(sql), "sql_ms": round(sum(ms for ms, _, _ in sql), 1),
            "slowest_sql_ms": round(max((ms for ms, _, _ in sql), default=0), 1),
            "sql": sorted(sql, key=lambda q: q[0], reverse=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--only", help="Only pages whose name contains this text.")
    parser.add_argument("--explain", action="store_true", help="With --show-sql: EXPLAIN ANALYZE queries over 20 ms.")
    parser.add_argument("--show-sql", action="store_true", help="Print the SQL (slowest first) of pages over 300 ms "
                        "(of every page with --only).")
    args = parser.parse_args()
    os.environ["SECURE_SSL_REDIRECT"] = "False"
    setup_django()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    ids = prepare(args.n, args.history)
    user, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_superuser": True,
                                                                                       "is_staff": True})
    client = Client()
    client.force_login(user)
    results = {}
    load = loadavg()
    print(f"{'page':40} {'status':>6} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {'SQL ms':>7} {'slowest':>8}")
    for name, url in pages(ids):
        if args.only and args.only not in name:
            continue
        r = measure(client, url, args.repeat)
        sql = r.pop("sql")
        results[name] = {"url": url, **r}
        flag = "  SLOW" if r["median_ms"] > 300 else ""
        print(f"{name:40} {r['status']:>6} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} {r['queries']:>8} "
              f"{r['sql_ms']:>7.1f} {r['slowest_sql_ms']:>8.1f}{flag}")
        if args.show_sql and (flag or args.only):
            for ms, q, params in sql:
                print(f"    {ms:8.1f} ms  {q[:600]}")
                if args.explain and ms > 20 and q.lstrip().upper().startswith("SELECT"):
                    from django.db import connection

                    with connection.cursor() as cur:
                        cur.execute("EXPLAIN (ANALYZE, COSTS OFF) " + q, params)
                        print("\n".join("        " + row[0] for row in cur.fetchall()))
    slow = [k for k, v in results.items() if v["median_ms"] > 300 or v["status"] != 200]
    emit({"step": "pages", "n": args.n, "load": round(load, 2), "pages": results, "slow": slow,
          "max_median_ms": max((v["median_ms"] for v in results.values()), default=None),
          "peak_rss_mb": round(peak_rss_mb(), 1)})


if __name__ == "__main__":
    main()
