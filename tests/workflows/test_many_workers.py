"""Past one machine (issue 20, item 4): a reservation, an event settlement and the season-end customer settlement
split into chunks run by two Celery worker processes (separate OS processes, as on separate hosts: all they share is
the database and the broker) give the ledger and the amounts of the same chunked run done in this process (eager),
to the cent.

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
from programs.models import Season
from settlement import services as settlement_services
from settlement.choices import BatchStatus
from settlement.models import CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ParticipationRuleFactory, ProgramFactory, SeasonFactory
from tests.factories.settlement import EventFactory, event_hours, write_hourly
from tests.workers import start_worker, stop_worker

RESERVE_NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)
SETTLE_NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
SEASON_END_NOW = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)
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


def customer_digest(program) -> tuple[int, Decimal, list]:
    """Customer settlements, their total, and (account, status, total, lines (kind, amount)) per settlement."""
    rows = []
    for cs in CustomerSettlement.objects.filter(program=program).order_by("account_id").prefetch_related("lines"):
        rows.append((cs.account_id, cs.status, cs.total_amount, sorted((x.kind, x.amount) for x in cs.lines.all())))
    return len(rows), sum((r[2] for r in rows), Decimal(0)), rows


def _wait(batch) -> SettlementBatch:
    deadline = time.monotonic() + 120
    while SettlementBatch.objects.get(pk=batch.pk).status == BatchStatus.RUNNING:
        assert time.monotonic() < deadline, f"the {batch.kind} batch did not complete"
        time.sleep(0.2)
    batch.refresh_from_db()
    assert (batch.status, batch.chunks_done, batch.errors) == (BatchStatus.COMPLETED, batch.chunks_total, [])
    assert batch.chunks_total >= 3
    return batch


def reserve_and_settle(event) -> tuple[tuple, tuple, tuple]:
    """The chunked reservation (``events.tasks.reserve_event_distributed``), the event completed, then the chunked
    event settlement and the season-end customer settlement; waits for each. Returns (ledger digest, settlement
    digest, customer settlement digest)."""
    from events.tasks import reserve_event_distributed

    handle = reserve_event_distributed(event_id=event.pk, chunk_size=CHUNK, now=RESERVE_NOW)
    handle.get(timeout=120)
    ledger = ledger_digest(event)
    Event.objects.filter(pk=event.pk).update(status=EventStatus.COMPLETED)
    Participation.objects.filter(event=event, status=ParticipationStatus.RESERVED).update(
        status=ParticipationStatus.PARTICIPATED)
    event.refresh_from_db()
    _wait(settlement_services.event_settle(event=event, now=SETTLE_NOW, actor=TEST_ACTOR))
    season = Season.objects.get(program=event.program)
    _wait(settlement_services.season_settle(program=event.program, season=season, now=SEASON_END_NOW,
                                            actor=TEST_ACTOR))
    return ledger, settlement_digest(event), customer_digest(event.program)


def reset(event) -> None:
    SettlementLine.objects.filter(program=event.program).delete()
    CustomerSettlement.objects.filter(program=event.program).delete()
    EventSettlement.objects.filter(event=event).delete()
    SettlementBatch.objects.filter(program=event.program).delete()
    Reservation.objects.filter(event=event).delete()
    Participation.objects.filter(event=event).delete()
    Event.objects.filter(pk=event.pk).update(reserved_at=None, status=EventStatus.SCHEDULED)
    event.refresh_from_db()


def _worker(queue: str, name: str, log: Path):
    return start_worker("tests.workflows.recording_worker", queue=queue, name=name, new_session=True,
                        env={"CPM_CHUNK_SIZE": str(CHUNK), "CPM_TEST_TASK_LOG": str(log),
                             "CPM_TEST_TASK_DELAY": "0.3"})


def _world(code: str) -> Event:
    """14 participants with their meter data, a program paying $1.25/kWh and a $20 seasonal incentive, and a
    scheduled event with a 25 kW target."""
    program = ProgramFactory(code=code)
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.25"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.SEASONAL, amount=Decimal("20"))
    for n in range(PARTICIPANTS):
        sub = active_participant(program=program, device_kwargs={
            "last_seen_at": RESERVE_NOW - dt.timedelta(days=3 if n == 4 else 0), "capacity_kw": Decimal(n % 4 + 1)})
        write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 5, 25),
                     last=dt.date(2026, 7, 16), kwh=1.3 + 0.11 * n,
                     overrides={h: 0.17 + 0.07 * n for h in event_hours()})
    return EventFactory(program=program, status=EventStatus.SCHEDULED, target_kw=Decimal("25"))


@pytest.mark.postgres
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_reserve_and_settle_like_one_process(settings, tmp_path):
    from cpm.celery import app

    settings.CPM_CHUNK_SIZE = CHUNK
    event = _world("many-workers")

    # In this process: the same chunks, run eagerly one after the other.
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        ledger, settled, customers = reserve_and_settle(event)
    finally:
        app.conf.task_always_eager = eager
    # largest first up to 25 kW: three 4 kW, three 3 kW and two 2 kW devices; the device not seen for 3 days is offline
    assert ledger[1] == {"reserved": 8, "target_met": 5, "offline": 1}
    assert settled[0] == 8 and settled[1] > Decimal("40")
    # the $20 seasonal incentive to each of the 14 accounts (none opted out), in 5 chunks of 3 accounts
    assert customers[:2] == (14, Decimal("280.00"))
    assert {(status, total) for _, status, total, _ in customers[2]} == {("calculated", Decimal("20.00"))}
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

    # identical ledger hash and counts, event settlement amounts to the cent and inputs, customer settlements
    assert distributed == (ledger, settled, customers)
    ran = [line.split() for line in log.read_text().splitlines()]
    pids = {pid for pid, _ in ran}
    assert pids == {str(w.pid) for w in workers}  # both processes took chunks
    assert {name for _, name in ran} >= {"events.reserve_chunk", "settlement.settle_event_chunk",
                                         "settlement.settle_customer_chunk"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_threads_of_one_process_reserve_and_settle_like_one_after_the_other(settings, monkeypatch):
    """No broker (tasks eager), ``CPM_LOCAL_WORKERS`` = 2: a job's chunks run on two threads of this process, each
    with its own PostgreSQL connection (``cpm.base.jobs._run_locally``), and give the ledger, the event settlements
    and the customer settlements of the same chunks run one after the other, to the cent; both threads took chunks
    of each kind."""
    import threading

    from cpm.base import jobs
    from cpm.celery import app

    settings.CPM_CHUNK_SIZE = CHUNK
    event = _world("local-workers")
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    ran: list[tuple[str, str]] = []
    send = jobs._send

    def recording(chunk):
        ran.append((threading.current_thread().name, chunk.task_name))
        send(chunk)

    monkeypatch.setattr(jobs, "_send", recording)
    try:
        settings.CPM_LOCAL_WORKERS = 1
        one_by_one = reserve_and_settle(event)
        assert {name for name, _ in ran} == {threading.current_thread().name}
        reset(event)
        ran.clear()
        settings.CPM_LOCAL_WORKERS = 2
        threaded = reserve_and_settle(event)
    finally:
        app.conf.task_always_eager = eager
    assert one_by_one[0][1] == {"reserved": 8, "target_met": 5, "offline": 1}
    assert one_by_one[2][:2] == (14, Decimal("280.00"))
    assert threaded == one_by_one
    for task in ("events.reserve_chunk", "settlement.settle_event_chunk", "settlement.settle_customer_chunk"):
        threads = {name for name, t in ran if t == task}
        assert len(threads) == 2 and all(name.startswith("cpm-chunk") for name in threads), (task, threads)
