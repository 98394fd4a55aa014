"""The Celery app.

Tasks are autodiscovered from each app's ``tasks.py``. Periodic work is a beat schedule of UTC ticks defined here in
code; each tick reads what is due from the database (never far-future ETAs on the broker, which Redis redelivers).
Tasks are enqueued only after the surrounding transaction commits (``cpm.base.tasks.enqueue_on_commit``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cpm.settings")

app = Celery("cpm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Moves events through DISPATCHED / ACTIVE / COMPLETED and hands completed events to settlement.
    "events-tick": {"task": "events.tick", "schedule": 60.0},
    # Creates customer settlements that have come due (billing periods, season ends).
    "settlement-tick": {"task": "settlement.tick", "schedule": 3600.0},
    # Activates auto-activate draft programs whose enrollment window has opened (local date of each program).
    "programs-activate-due": {"task": "programs.activate_due", "schedule": 3600.0},
    # Plans customer messages that came due and sends the due ones in chunks (cpm.notifications).
    "notifications-tick": {"task": "notifications.tick", "schedule": 60.0},
    # Sends again the chunks of jobs whose worker died (no progress for CPM_JOB_STALL_SECONDS), or fails the job.
    "sweep-jobs": {"task": "cpm.sweep_jobs", "schedule": 60.0},
    # Sends again the meter-data loads still PENDING CPM_JOB_STALL_SECONDS after they were sent (a lost message).
    "resend-pending-loads": {"task": "settlement.resend_pending_loads", "schedule": 60.0},
    # Creates the monthly partitions of interval data ahead (this month and the next 3; PostgreSQL) and moves rows
    # that landed in the DEFAULT partition into their months.
    "interval-partitions": {"task": "settlement.interval_partitions_maintain", "schedule": 86400.0},
    # Archives and drops months of interval data older than CPM_INTERVAL_RETENTION_MONTHS (0: does nothing).
    "interval-retention": {"task": "settlement.interval_data_retire", "schedule": 86400.0},
}
