"""A submitted meter-data load whose task message never reached a worker (the broker was down or lost it) stayed
PENDING for good: it has no job yet, so the jobs sweeper never saw it. The beat task ``settlement.resend_pending_loads``
sends it again once it has waited ``CPM_JOB_STALL_SECONDS``; the load task is idempotent (QA, issue 15)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import TestCase

from settlement.meterdata.loaders import meter_data_load_submit, meter_data_loads_resend
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 5, 15, 16, 0, tzinfo=dt.UTC)
CSV = b"service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1.5\n"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.CPM_JOB_STALL_SECONDS = 600


def test_a_load_whose_message_was_lost_is_sent_again_after_the_stall_time_once():
    ServicePointFactory(service_point_id="SP-1")
    load = meter_data_load_submit(source="csv", content=CSV, now=T0, file_name="ami.csv", actor=TEST_ACTOR)
    # the commit's send never reached a worker: the callbacks are not run
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert meter_data_loads_resend(now=T0 + dt.timedelta(minutes=5)) == 0  # still in the queue, maybe
    load.refresh_from_db()
    assert load.status == MeterDataLoad.Status.PENDING
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert meter_data_loads_resend(now=T0 + dt.timedelta(minutes=11)) == 1
    load.refresh_from_db()
    assert (load.status, load.summary) == (MeterDataLoad.Status.COMPLETED,
                                           "1 new, 0 unchanged, 0 corrected, 0 rejected")
    assert IntervalDay.objects.count() == 1
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert meter_data_loads_resend(now=T0 + dt.timedelta(minutes=30)) == 0


def test_a_pending_load_is_sent_at_most_once_per_stall_time():
    ServicePointFactory(service_point_id="SP-1")
    meter_data_load_submit(source="csv", content=CSV, now=T0, file_name="ami.csv", actor=TEST_ACTOR)
    with TestCase.captureOnCommitCallbacks(execute=False):  # sent, and lost again
        assert meter_data_loads_resend(now=T0 + dt.timedelta(minutes=11)) == 1
    assert meter_data_loads_resend(now=T0 + dt.timedelta(minutes=15)) == 0
    assert meter_data_loads_resend(now=T0 + dt.timedelta(minutes=22)) == 1


def test_the_beat_runs_the_resend():
    from cpm.celery import app

    assert any(entry["task"] == "settlement.resend_pending_loads" for entry in app.conf.beat_schedule.values())
    assert "settlement.resend_pending_loads" in app.tasks
