"""Past one machine (issue 20, item 4): a reservation and an event settlement split into chunks run by two Celery
worker processes (separate OS processes, as on separate hosts: all they share is the database and the broker) give
the ledger and the amounts of the same chunked run done in this process (eager), to the cent.

Needs PostgreSQL and Redis, e.g.
CELERY_BROKER_URL=redis://127.0.0.1:6379/8 DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_scale \
    .venv/bin/python -m pytest tests/workflows/test_many_workers.py -n 0
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from events.choices import EventStatus, ParticipationStatus
from events.models import Event, Participation, Reservation
from programs.choices import IncentiveKind
from settlement import services as settlement_services
from settlement.choices import BatchStatus
from settlement.models import EventSettlement, SettlementBatch
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, event_hours, write_hourly
from tests.workers import start_worker, stop_worker

RESERVE_NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)
SETTLE_NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
PARTICIPANTS, CHUNK = 14, 3  # five chunks of reservation, three of settlement (8 reserved)


def ledger_digest(event) -> tuple[str, dict]:
    """sha256 of the reservation ledger and the participations by subscription, and the counts by decision."""
    h, counts = hashlib.sha256(), {}
    for row in Reservation.objects.filter(event=event).order_by("subscription_id").values_list(
            "subscription_id", "device_id", "decision", "detail", "capacity_kw", "decided_at"):
        h.update(repr(row).encode())
        counts[row[2]] = counts.get(row[2], 0) + 1
    for row in Participation.objects.filter(event=event).order_by("subscription_id").values_list(
            "subscription_id", "status", "start", "end"):
        h.update(repr(row).encode())
    return h.hexdigest(), counts


def settlement_digest(event) -> tuple[int, Decimal, str]:
    """Rows, the sum of the amounts, and a hash of (subscription, status, kWh avoided, amount, inputs) per row."""
    h, total, rows = hashlib.sha256(), Decimal(0), 0
    for sub, status, kwh, amount, inputs in EventSettlement.objects.filter(event=event).order_by(
            "participation__subscription_id").values_list("participation__subscription_id", "status",
                                                          "kwh_avoided", "amount", "inputs"):
        h.update(f"{sub}:{status}:{kwh}:{amount}:{sorted(inputs.items())}\n".encode())
        total += amount
        rows += 1
    return rows, total, h.hexdigest()


def reserve_and_settle(event) -> tuple[tuple, tuple]:
    """The chunked reservation (``events.tasks.reserve_event_distributed``), the event completed, then the chunked
    event settlement; waits for both. Returns (ledger digest, settlement digest)."""
    from events.tasks import reserve_event_distributed

    handle = reserve_event_distributed(event_id=event.pk, chunk_size=CHUNK, now=RESERVE_NOW)
    handle.get(timeout=120)
    ledger = ledger_digest(event)
    Event.objects.filter(pk=event.pk).update(status=EventStatus.COMPLETED)
    Participation.objects.filter(event=event, status=ParticipationStatus.RESERVED).update(
        status=ParticipationStatus.PARTICIPATED)
    event.refresh_from_db()
    batch = settlement_services.event_settle(event=event, now=SETTLE_NOW, actor=TEST_ACTOR)
    deadline = time.monotonic() + 120
    while SettlementBatch.objects.get(pk=batch.pk).status == BatchStatus.RUNNING:
        assert time.monotonic() < deadline, "the settlement batch did not complete"
        time.sleep(0.2)
    batch.refresh_from_db()
    assert (batch.status, batch.chunks_done, batch.errors) == (BatchStatus.COMPLETED, batch.chunks_total, [])
    assert batch.chunks_total >= 3
    return ledger, settlement_digest(event)


def reset(event) -> None:
    EventSettlement.objects.filter(event=event).delete()
    SettlementBatch.objects.filter(event=event).delete()
    Reservation.objects.filter(event=event).delete()
    Participation.objects.filter(event=event).delete()
    Event.objects.filter(pk=event.pk).update(reserved_at=None, status=EventStatus.SCHEDULED)
    event.refresh_from_db()


def _worker(queue: str, name: str, log: Path):
    return start_worker("tests.workflows.recording_worker", queue=queue, name=name, new_session=True,
                        env={"CPM_CHUNK_SIZE": str(CHUNK), "CPM_TEST_TASK_LOG": str(log),
                             "CPM_TEST_TASK_DELAY": "0.3"})


@pytest.mark.postgres
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_reserve_and_settle_like_one_process(settings, tmp_path):
    from cpm.celery import app

    settings.CPM_CHUNK_SIZE = CHUNK
    program = ProgramFactory(code="many-workers")
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.25"))
    for n in range(PARTICIPANTS):
        sub = active_participant(program=program, device_kwargs={
            "last_seen_at": RESERVE_NOW - dt.timedelta(days=3 if n == 4 else 0), "capacity_kw": Decimal(n % 4 + 1)})
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), kwh=1.3 + 0.11 * n,
                     overrides={h: 0.17 + 0.07 * n for h in event_hours()})
    event = EventFactory(program=program, status=EventStatus.SCHEDULED, target_kw=Decimal("25"))

    # In this process: the same chunks, run eagerly one after the other.
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        ledger, settled = reserve_and_settle(event)
    finally:
        app.conf.task_always_eager = eager
    # largest first up to 25 kW: three 4 kW, three 3 kW and two 2 kW devices; the device not seen for 3 days is offline
    assert ledger[1] == {"reserved": 8, "target_met": 5, "offline": 1}
    assert settled[0] == 8 and settled[1] > Decimal("40")
    reset(event)

    # Two worker processes, this test's own queue; this process only enqueues and waits.
    queue = f"cpm-test-many-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "tasks.log"
    old_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    workers = [_worker(queue, f"w{k}-{queue}", log) for k in (1, 2)]
    try:
        deadline = time.monotonic() + 60
        while len({name for r in (app.control.ping(timeout=1.0) or []) for name in r if queue in name}) < 2:
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "workers did not start"
        assert not app.conf.task_always_eager
        distributed = reserve_and_settle(event)
    finally:
        app.conf.task_default_queue = old_queue
        # Celery builds its queue table on first use, with the default queue of that moment: if it was built here,
        # build it again for the tests that follow (an in-thread worker consumes the table's queues)
        for name in ("queues", "router", "default_queue"):
            app.amqp.__dict__.pop(name, None)
        for w in workers:
            stop_worker(w)

    assert distributed == (ledger, settled)  # identical ledger hash and counts, amounts to the cent, inputs
    ran = [line.split() for line in log.read_text().splitlines()]
    pids = {pid for pid, _ in ran}
    assert pids == {str(w.pid) for w in workers}  # both processes took chunks
    assert {name for _, name in ran} >= {"events.reserve_chunk", "settlement.settle_event_chunk"}
