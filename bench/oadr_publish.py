"""The OpenADR 3 publication of one reserved event (what every reservation, modification, dispatch and cancellation
runs through ``events.signals``), measured alone: time, CPU seconds (this process and its PostgreSQL backend),
Python peak memory (tracemalloc) and the sha256 of what it wrote.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.oadr_publish --n 100000

Needs the reservation benchmark's event (``python -m bench.reservation --n N`` first: the "Bench event" with its
reserved participations). Registers a VEN for every aggregator that has none (``ven_create``, as a utility running
OpenADR would: its devices become its resources), then deletes ``--missing`` per mille of those resources (devices
enrolled after their VEN registered: the publication creates them), and adds a business-logic subscription (3.0.1)
and a VEN subscription (3.1.0) to EVENT operations. Each run, in a transaction rolled back at the end:

- ``first``: the event's OpenADR view deleted, then published (target rows, missing resources, POST notifications);
- ``same``: published again, nothing changed (the dispatch of an unchanged event);
- ``changed``: 1 % of the participations cancelled, published again (target rows rewritten, PUT notifications).

The digest covers the target rows (aggregator, resource names), the resources created (in id order: VEN, name,
device), the notifications (subscription, operation, object, body) and the event's body and numbers. Prints
``BENCH_JSON {...}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import time
import tracemalloc

from .common import bench_actor, cpu_now, cpu_since, emit, loadavg, peak_rss_mb, setup_django

PUBLISH_NOW = dt.datetime(2026, 7, 14, 17, tzinfo=dt.UTC)


def prepare(missing_per_mille: int):
    from django.db import connection

    from cpm.openadr3 import services
    from cpm.openadr3.models import Resource, Subscription, Ven
    from devices.models import Aggregator
    from events.models import Event

    from .reservation import EVENT_NAME

    event = Event.objects.filter(name=EVENT_NAME).order_by("-pk").first()
    if event is None:
        raise SystemExit("No bench event: run python -m bench.reservation --n N first.")
    for agg in Aggregator.objects.filter(openadr3_ven__isnull=True).order_by("pk"):
        services.ven_create(data={"venName": agg.code}, client_id="bench", now=PUBLISH_NOW, actor=bench_actor())
    with connection.cursor() as c:  # the same resources missing on every run: devices whose id ends so
        c.execute("DELETE FROM openadr3_resource WHERE device_id %% 1000 < %s", [missing_per_mille])
    Subscription.objects.filter(client_id__startswith="bench-publish").delete()
    hook = [{"objects": ["EVENT"], "operations": ["POST", "PUT", "DELETE"], "callbackUrl": "http://127.0.0.1:9/h",
             "bearerToken": None}]
    Subscription.objects.create(client_id="bench-publish-bl", client_name="bl", object_operations=hook,
                                created_at=PUBLISH_NOW, updated_at=PUBLISH_NOW)
    first = Ven.objects.order_by("pk").first()
    Subscription.objects.create(aggregator_id=first.aggregator_id, client_id="bench-publish-ven", client_name="ven",
                                object_operations=hook, openadr_version="3.1.0", created_at=PUBLISH_NOW,
                                updated_at=PUBLISH_NOW)
    return event, Resource.objects.count()


def digest(event, first_resource: int, first_notification: int) -> str:
    from cpm.openadr3.models import Notification, OadrEvent, OadrEventTarget, Resource

    h = hashlib.sha256()
    oadr = OadrEvent.objects.filter(pk=event.pk).values_list("body", "revision", "modification_number",
                                                             "deleted_at", "created_at", "updated_at").first()
    h.update(repr(oadr).encode())
    for row in OadrEventTarget.objects.filter(oadr_event_id=event.pk).order_by("aggregator_id").values_list(
            "aggregator_id", "resource_names"):
        h.update(repr(row).encode())
    for row in Resource.objects.filter(pk__gt=first_resource).order_by("pk").values_list(
            "ven_id", "resource_name", "device_id", "attributes", "targets", "created_at", "updated_at").iterator():
        h.update(repr(row).encode())
    for row in Notification.objects.filter(pk__gt=first_notification).order_by("pk").values_list(
            "subscription__client_id", "callback_url", "object_type", "operation", "object_id", "body", "status"):
        h.update(repr(row).encode())
    return h.hexdigest()[:16]


def measure(fn) -> dict:

    tracemalloc.start()
    cpu0, t0 = cpu_now(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, cpu_since(cpu0)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"s": round(wall, 3), "cpu_s": cpu["process_s"], "backend_cpu_s": cpu["backend_s"],
            "tracemalloc_mb": round(peak, 1)}


def run_once(event) -> dict:
    from django.db import connection, transaction

    from cpm.openadr3 import services
    from cpm.openadr3.models import Notification, OadrEvent, Resource

    out = {}
    with transaction.atomic():
        OadrEvent.objects.filter(pk=event.pk).delete()
        last_r = Resource.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        last_n = Notification.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

        def publish():
            services.oadr_event_publish(event=event, now=PUBLISH_NOW, actor=bench_actor())

        out["first"] = measure(publish)
        out["first"]["created_resources"] = Resource.objects.filter(pk__gt=last_r).count()
        out["first"]["notifications"] = Notification.objects.filter(pk__gt=last_n).count()
        out["first"]["digest"] = digest(event, last_r, last_n)
        out["same"] = measure(publish)
        out["same"]["digest"] = digest(event, last_r, last_n)
        with connection.cursor() as c:
            c.execute("UPDATE events_participation SET status = 'cancelled' WHERE event_id = %s AND id %% 100 = 7 "
                      "AND status = 'reserved'", [event.pk])
        out["changed"] = measure(publish)
        out["changed"]["digest"] = digest(event, last_r, last_n)
        transaction.set_rollback(True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="(for the record: the seeded population's size)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--missing", type=int, default=100, help="resources deleted first, per mille of devices")
    args = parser.parse_args(argv)
    setup_django()
    from cpm.openadr3 import tasks

    tasks.deliver_notification.apply_async = lambda *a, **kw: None  # the webhooks are not sent
    event, resources = prepare(args.missing)
    runs = [run_once(event) for _ in range(args.runs)]
    result = {"step": "oadr_publish", "n": args.n, "resources_before": resources, "runs": runs,
              "peak_rss_mb": round(peak_rss_mb(), 1), "load": round(loadavg(), 2)}
    print(json.dumps(result, indent=1))
    emit(result)


if __name__ == "__main__":
    main()
