"""Event-notice benchmark: N customers taking part in one event (``bench.seed``), their notices planned, rendered
and handed to the e-mail backend; time, peak memory, and no duplicate when a worker is killed mid-run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cpm_bench .venv/bin/python -m bench.notices --n 100000
    ... --workers 2 --kill     # also send through 2 Celery workers and kill -9 one of them mid-run

Steps: seed (child process, reused when there), one SCHEDULED event with a RESERVED participation per subscription
(COPY), then ``services.event_notices_plan`` (N messages, ``INSERT ... ON CONFLICT DO NOTHING``) and the sending,
chunk by chunk of ``--chunk`` messages in-process (``services.messages_send``, each chunk one transaction, as a
worker runs it): rendering (program template, signed opt-out link), the hand-off to Django's e-mail framework
(``OutboxEmailBackend``: one ``.eml`` file per message key, created exclusively) and the status updates with their
audit entries. The backend here also appends every hand-off's key to a log, so a message handed twice is counted.

With ``--workers K --kill``: the messages are planned again, sent as a job (``tasks.send_due``) through K real
worker processes (broker ``$BENCH_BROKER_URL``, default redis://127.0.0.1:6379/8), and once a few chunks are done
the pool process of one worker is killed with SIGKILL. Its chunk's transaction never commits (its messages stay
QUEUED); the message returns to the broker (``acks_late``, ``reject_on_worker_lost``) or the job sweeper sends it
again; the chunk runs again on a live worker and hands the same keys again, which the backend writes once. Reported:
messages sent, files written, hand-offs, keys handed more than once, files per key (must be 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .common import emit, loadavg, peak_rss_mb, setup_django
from .seed import LA, NOW, PROGRAM_CODE, reserved_event

EVENT_NAME = "Bench notice event"
SEND_AT = dt.datetime(2026, 7, 15, 20, 0, tzinfo=dt.UTC)  # 13:00 PDT, the event's notification time
DEFAULT_BROKER = "redis://127.0.0.1:6379/8"
ROOT = Path(__file__).resolve().parents[1]


def _backend_class():
    from cpm.notifications.channels import KEY_HEADER, OutboxEmailBackend

    class CountingOutboxBackend(OutboxEmailBackend):
        """The outbox backend, logging every hand-off's key (one line each, appended) before writing the file."""

        log = None

        def send_messages(self, email_messages) -> int:
            from django.conf import settings

            cls = type(self)
            path = Path(settings.CPM_NOTIFY_OUTBOX_DIR) / "handoffs.log"
            if cls.log is None or cls.log.name != str(path):
                cls.log = open(path, "a", buffering=1)  # noqa: SIM115 - kept open by the process, line-buffered
            for m in email_messages:
                cls.log.write(m.extra_headers.get(KEY_HEADER, "") + "\n")
            return super().send_messages(email_messages)

    return CountingOutboxBackend


_BACKEND = []


def __getattr__(name: str):
    """``bench.notices.CountingOutboxBackend`` (what ``MAILERS`` names), built once Django is set up."""
    if name == "CountingOutboxBackend":
        if not _BACKEND:
            _BACKEND.append(_backend_class())
        return _BACKEND[0]
    raise AttributeError(name)


def _configure(outbox: Path) -> None:
    """Point the notifications mailer at the counting outbox backend (this process and the workers: env vars)."""
    os.environ["CPM_NOTIFY_EMAIL_BACKEND"] = "bench.notices.CountingOutboxBackend"
    os.environ["CPM_NOTIFY_OUTBOX_DIR"] = str(outbox)
    shutil.rmtree(outbox, ignore_errors=True)
    (outbox / "email").mkdir(parents=True)
    from django.conf import settings

    if settings.configured and hasattr(settings, "MAILERS"):
        settings.MAILERS = {**settings.MAILERS, "notifications": {"BACKEND": "bench.notices.CountingOutboxBackend"}}
        settings.CPM_NOTIFY_OUTBOX_DIR = str(outbox)


def _seed(n: int) -> None:
    subprocess.run([sys.executable, "-m", "bench.seed", "--n", str(n), "--history", "1"], check=True,
                   capture_output=True, text=True, env=os.environ.copy(), cwd=ROOT)


def _fresh_event():
    """Drop earlier notice runs and create the bench event (15:00-18:00 PDT, notified 13:00) with a RESERVED
    participation per subscription, and a policy without reminder or weekly cap (notices only)."""
    from django.db import connection

    from cpm.notifications.models import NotificationPolicy
    from events.models import Event
    from programs.models import Program

    program = Program.objects.get(code=PROGRAM_CODE)
    with connection.cursor() as c:
        c.execute("TRUNCATE notifications_message, notifications_planmark, cpm_jobchunk, cpm_job CASCADE")
        c.execute("DELETE FROM cpm_auditentry WHERE object_type = 'notifications.message'")
        old = list(Event.objects.filter(program=program, name=EVENT_NAME).values_list("pk", flat=True))
        if old:
            c.execute("DELETE FROM events_participation WHERE event_id = ANY(%s)", [old])
            c.execute("DELETE FROM events_event WHERE id = ANY(%s)", [old])
    NotificationPolicy.objects.update_or_create(program=program, defaults={
        "reminder_lead_minutes": None, "weekly_cap": None, "updated_at": NOW})
    return reserved_event(program, name=EVENT_NAME, start=dt.datetime(2026, 7, 15, 15, tzinfo=LA))


def _outcome(outbox: Path) -> dict:
    from cpm.notifications.models import Message

    handoffs = Counter((outbox / "handoffs.log").read_text().split()) if (outbox / "handoffs.log").exists() \
        else Counter()
    files = sum(1 for _ in (outbox / "email").iterdir())
    sent = Message.objects.filter(status="sent").count()
    return {"sent": sent, "files": files, "handoffs": sum(handoffs.values()),
            "keys_handed_more_than_once": sum(1 for v in handoffs.values() if v > 1),
            "attempts_max": max((Message.objects.order_by("-attempts").values_list("attempts", flat=True)[:1]),
                                default=0)}


def run(args) -> dict:
    outbox = ROOT / "var" / "bench" / "outbox"
    _configure(outbox)
    setup_django()
    _configure(outbox)
    from django.db import connection, transaction

    from cpm.notifications import services
    from cpm.notifications.models import Message

    _seed(args.n)
    if args.only_kill:
        return {"step": "notices", "n": args.n, "kill": _kill_run(args, outbox.with_name("outbox-kill"), None)}
    event = _fresh_event()
    load0 = loadavg()
    t0 = time.perf_counter()
    services.event_notices_plan(event=event, now=NOW)
    plan_s = time.perf_counter() - t0
    total = Message.objects.count()
    ids = list(Message.objects.order_by("pk").values_list("pk", flat=True))
    connection.queries_log.clear()
    t1 = time.perf_counter()
    for i in range(0, len(ids), args.chunk):
        with transaction.atomic():
            services.messages_send(first_id=ids[i], last_id=ids[min(i + args.chunk, len(ids)) - 1], now=SEND_AT)
    send_s = time.perf_counter() - t1
    out = _outcome(outbox)
    sample = Message.objects.order_by("pk").first()
    result = {"step": "notices", "n": args.n, "messages": total, "plan_s": round(plan_s, 2),
              "send_s": round(send_s, 2), "per_s": round(total / send_s), "chunk": args.chunk,
              "peak_rss_mb": round(peak_rss_mb(), 1), "load": round((load0 + loadavg()) / 2, 2), **out,
              "sample_subject": sample.subject, "sample_body_chars": len(sample.body)}
    print(f"{total} notices planned in {plan_s:.2f}s; rendered and handed to the e-mail backend in {send_s:.2f}s "
          f"({total / send_s:.0f}/s, chunks of {args.chunk}); peak RSS {peak_rss_mb():.0f} MB; {out}")
    if args.workers:
        result["kill"] = _kill_run(args, outbox.with_name("outbox-kill"), event)
    return result


def _kill_run(args, outbox: Path, event) -> dict:
    from django.conf import settings

    from cpm.base.jobs import JobHandle, jobs_sweep
    from cpm.models import Job, JobChunk
    from cpm.notifications import services
    from cpm.notifications.models import Message
    from cpm.notifications.tasks import send_due

    from .reservation import _children, start_workers, stop_workers

    os.environ.setdefault("CELERY_BROKER_URL", os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
    from cpm.celery import app

    app.conf.broker_url = os.environ["CELERY_BROKER_URL"]
    app.conf.task_always_eager = False
    _configure(outbox)
    event = _fresh_event()
    t_plan = time.perf_counter()
    services.event_notices_plan(event=event, now=NOW)
    plan_s = time.perf_counter() - t_plan
    print(f"planned again in {plan_s:.2f}s")
    procs = start_workers(args.workers, f"notices-{os.getpid()}")
    killed = None
    try:
        t0 = time.perf_counter()
        handle: JobHandle = send_due(now=SEND_AT, chunk_size=args.chunk)
        job_id = handle.job_id
        while JobChunk.objects.filter(job_id=job_id, status="done").count() < 3:
            time.sleep(0.05)
        # The pool process of the first worker that is running a chunk now: SIGKILL mid-chunk.
        while killed is None:
            running = JobChunk.objects.filter(job_id=job_id, status="running").exists()
            if running:
                kid = _children(procs[0].pid)
                if kid:
                    os.kill(kid[0], signal.SIGKILL)
                    killed = time.perf_counter() - t0
            time.sleep(0.02)
        print(f"killed worker 0's pool process (SIGKILL) {killed:.1f}s into the run")
        deadline = time.monotonic() + 900
        while True:
            job = Job.objects.get(pk=job_id)
            if job.status in ("completed", "failed") or time.monotonic() > deadline:
                break
            # The beat's sweeper (every minute in production): a chunk with no progress for the stall time (here
            # 120 s) is sent again; the killed chunk itself comes back at once (reject_on_worker_lost).
            jobs_sweep(now=dt.datetime.now(dt.UTC), stall_seconds=120)
            time.sleep(1)
        seconds = time.perf_counter() - t0
        chunks = list(JobChunk.objects.filter(job_id=job_id).values_list("attempts", flat=True))
        left = Message.objects.filter(status="queued").count()
        # The next beat tick sends whatever is still QUEUED (its own job), as production would.
        ticks = 0
        while Message.objects.filter(status="queued").exists() and ticks < 5:
            ticks += 1
            nxt = send_due(now=SEND_AT, chunk_size=args.chunk)
            if nxt is not None:
                nxt.get(timeout=600)
        # The batch the killed worker had in the channel's hands is "in doubt" (SENDING); the first tick after the
        # stall time hands it again under the same keys (the outbox backend writes a key once).
        in_doubt = Message.objects.filter(status="sending").count()
        if in_doubt:
            after_stall = SEND_AT + dt.timedelta(seconds=settings.CPM_JOB_STALL_SECONDS + 60)
            nxt = send_due(now=after_stall, chunk_size=args.chunk)
            if nxt is not None:
                nxt.get(timeout=600)
    finally:
        worker_peak = stop_workers(procs)
    out = _outcome(outbox)
    result = {"workers": args.workers, "plan_s": round(plan_s, 2), "job_status": job.status, "s": round(seconds, 2),
              "killed_at_s": round(killed, 2), "chunks": len(chunks),
              "chunks_run_twice": sum(1 for a in chunks if a > 1), "queued_when_job_ended": left,
              "next_ticks": ticks, "in_doubt_after_the_job": in_doubt,
              "worker_peak_rss_mb": round(worker_peak, 1), **out}
    print(f"with {args.workers} workers, one killed: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=0, help="Also send through K workers and kill one.")
    parser.add_argument("--kill", action="store_true", help="(with --workers) kill -9 a worker mid-run")
    parser.add_argument("--only-kill", action="store_true", help="Only the run through workers with a kill.")
    args = parser.parse_args()
    emit(run(args))


if __name__ == "__main__":
    main()
