"""OpenADR 3 benchmark: one event targeted at N reserved devices across 10 VENs, published by the VTN and read by
every VEN (and by business logic).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench_oa3 python -m bench.openadr3 --n 100000

Seeds the population of ``bench.seed`` (N customers with one thermostat each), spreads the devices over 10
aggregators, registers each as a VEN (``cpm.openadr3.services.ven_create``: its devices become its resources) with
client credentials, and writes one scheduled event whose N participations are all reserved (COPY: the reservation
itself is measured by ``bench.reservation``). Then it measures, with time, SQL queries and peak memory:

- ``publish``: ``oadr_event_publish`` (the OpenADR view of the event: body, one target row per VEN with its
  resource names, the notifications of a business-logic and a VEN subscription each);
- ``ven reads``: each of the 10 VENs gets a bearer token at ``/openadr3/auth/token`` and reads the event
  (``GET /openadr3/events``) through cpm's whole HTTP stack (Django's in-process client: middleware, OAuth bearer
  authentication, scopes, view), checking it sees exactly its own N/10 resources;
- ``bl read``: the business-logic client reads the event with all N resources.

Its own database by default (``cpm_bench_oa3``): the main harness owns ``cpm_bench``. Prints ``BENCH_JSON {...}``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import time

from .common import emit, peak_rss_mb, setup_django

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cpm_bench_oa3"
VENS = 10
NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


def _queries(fn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return result, seconds, len(ctx.captured_queries)


def prepare(n: int) -> dict:
    """The population, 10 aggregators with API users and credentials, the VENs, the event and its N reserved
    participations."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from cpm.openadr3 import services
    from devices.models import Aggregator
    from programs.models import Program

    from .common import bench_actor
    from .seed import PROGRAM_CODE, reserved_event, seed_population

    t0 = time.perf_counter()
    seed_population(n, history=0)
    with connection.cursor() as c:
        c.execute("TRUNCATE openadr3_notification, openadr3_subscription, openadr3_report, openadr3_resource, "
                  "openadr3_oadreventtarget, openadr3_oadrevent, openadr3_ven, oauth2_provider_accesstoken, "
                  "oauth2_provider_application RESTART IDENTITY CASCADE")
    actor = bench_actor()
    group = Group.objects.get(name="Aggregator")
    aggs = list(Aggregator.objects.order_by("pk"))
    for i in range(len(aggs), VENS):
        aggs.append(Aggregator.objects.create(code=f"agg-{i}", name=f"Aggregator {i}"))
    user_model = get_user_model()
    user_model.objects.filter(username__startswith="bench-ven-").delete()
    creds = {}
    for i, agg in enumerate(aggs):
        user = user_model.objects.create_user(f"bench-ven-{i}", password=None)
        user.groups.add(group)
        Aggregator.objects.filter(pk=agg.pk).update(api_user=user)
        agg.refresh_from_db()
        creds[agg.code] = services.credentials_issue(aggregator=agg, now=NOW, actor=actor)
    with connection.cursor() as c:
        c.execute("UPDATE devices_device SET aggregator_id = (%s::bigint[])[1 + id %% %s]",
                  [[a.pk for a in aggs], VENS])
    for agg in aggs:
        services.ven_create(data={"venName": f"ven-{agg.code}"}, client_id=creds[agg.code][0], now=NOW,
                            actor=agg.api_user)
    program = Program.objects.get(code=PROGRAM_CODE)
    event = reserved_event(program, name="OpenADR bench event", start=dt.datetime(2026, 7, 15, 22, tzinfo=dt.UTC))
    with connection.cursor() as c:
        c.execute("ANALYZE")
    bl_user = user_model.objects.filter(username="bench-bl").first() or user_model.objects.create_superuser(
        "bench-bl", "bl@example.com", None)
    from oauth2_provider.models import Application

    secret = "bench-bl-secret-0123456789"
    bl = Application.objects.create(name="bench BL", user=bl_user, client_type="confidential",
                                    authorization_grant_type="client-credentials", client_secret=secret)
    creds["bl"] = (bl.client_id, secret)
    from cpm.openadr3.models import Subscription

    hook = [{"objects": ["EVENT"], "operations": ["POST"], "callbackUrl": "http://127.0.0.1:9/hook",
             "bearerToken": None}]
    Subscription.objects.create(client_id="bl", client_name="bench-bl", object_operations=hook, created_at=NOW,
                                updated_at=NOW)
    Subscription.objects.create(aggregator=aggs[0], client_id="ven0", client_name="ven-0", object_operations=hook,
                                created_at=NOW, updated_at=NOW)
    return {"event_id": event.pk, "creds": creds, "prepare_s": round(time.perf_counter() - t0, 1)}


def _token(client, creds: tuple[str, str]) -> str:
    basic = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    response = client.post("/openadr3/auth/token", {"grant_type": "client_credentials"},
                           HTTP_AUTHORIZATION=f"Basic {basic}", secure=True)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def run(n: int) -> dict:
    from django.db import transaction
    from django.test import Client

    from cpm.openadr3 import services
    from cpm.openadr3.models import Notification, OadrEventTarget, Resource
    from events.models import Event

    from .common import bench_actor

    ids = prepare(n)
    event = Event.objects.get(pk=ids["event_id"])
    # Deliveries are enqueued after the commit; the benchmark measures the VTN, not a webhook: the task is not sent.
    from cpm.openadr3 import tasks

    enqueued = []
    tasks.deliver_notification.apply_async = lambda *a, **kw: enqueued.append(kw)

    def publish():
        with transaction.atomic():
            return services.oadr_event_publish(event=event, now=NOW, actor=bench_actor())

    rss0 = peak_rss_mb()
    oadr, publish_s, publish_q = _queries(publish)
    targets = OadrEventTarget.objects.filter(oadr_event=oadr).count()
    targeted = sum(len(t) for t in OadrEventTarget.objects.filter(oadr_event=oadr).values_list("resource_names",
                                                                                                flat=True))
    client = Client(HTTP_HOST="localhost")
    reads, sizes, queries = [], [], []
    for code, creds in ids["creds"].items():
        if code == "bl":
            continue
        token = _token(client, creds)

        def read(token=token):
            return client.get("/openadr3/events", HTTP_AUTHORIZATION=f"Bearer {token}", secure=True)

        response, seconds, q = _queries(read)
        body = response.json()
        assert response.status_code == 200 and len(body) == 1, response.content[:300]
        names = body[0]["targets"][1]["values"]
        assert len(names) == n // VENS or abs(len(names) - n // VENS) <= 1, len(names)
        reads.append(seconds)
        sizes.append(len(response.content))
        queries.append(q)
    bl_token = _token(client, ids["creds"]["bl"])
    response, bl_s, bl_q = _queries(lambda: client.get(f"/openadr3/events/{event.pk}",
                                                       HTTP_AUTHORIZATION=f"Bearer {bl_token}", secure=True))
    assert response.status_code == 200 and len(response.json()["targets"][1]["values"]) == targeted
    return {
        "step": "openadr3", "n": n, "vens": VENS, "prepare_s": ids["prepare_s"],
        "targeted_resources": targeted, "target_rows": targets, "resources": Resource.objects.count(),
        "notifications": Notification.objects.count(), "deliveries_enqueued": len(enqueued),
        "publish_s": round(publish_s, 2), "publish_queries": publish_q,
        "ven_read_s_median": round(sorted(reads)[len(reads) // 2], 3), "ven_read_s_max": round(max(reads), 3),
        "ven_read_s_total": round(sum(reads), 2), "ven_read_queries": max(queries),
        "ven_response_kb": round(max(sizes) / 1024, 1),
        "bl_read_s": round(bl_s, 2), "bl_read_queries": bl_q, "bl_response_kb": round(len(response.content) / 1024),
        "peak_rss_mb_before_publish": round(rss0), "peak_rss_mb": round(peak_rss_mb()),
        "load_avg": round(os.getloadavg()[0], 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    setup_django(DEFAULT_URL)
    result = run(args.n)
    print(json.dumps(result, indent=2))
    emit(result)


if __name__ == "__main__":
    main()
