"""The bookkeeping around one settlement chunk (issue 14): claiming the job chunk, its "done" mark, the job's and
the batch's counters take a small fixed number of queries whatever the chunk holds, so that a batch of many chunks
is not dominated by them (the benchmark counts settlement queries per chunk)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.models import Job, JobChunk
from settlement import services
from settlement.choices import BatchStatus
from settlement.tasks import settle_event_chunk
from tests.actors import TEST_ACTOR

from .test_settlement_jobs import NOW, _event

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_chunks_bookkeeping_takes_a_fixed_handful_of_queries(settings, monkeypatch):
    settings.CPM_CHUNK_SIZE = 2
    event = _event(4)
    bodies: list[int] = []

    def empty_body(**kw):  # the chunk's own work replaced by nothing: what is left is the bookkeeping
        bodies.append(kw["sp_first"])
        return {"calculated": 0}

    monkeypatch.setattr(services, "event_settle_chunk", empty_body)
    sent: list[dict] = []
    monkeypatch.setattr("cpm.base.jobs._send", lambda chunk: sent.append({**chunk.kwargs, "job_chunk_id": chunk.pk}))
    batch = services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    assert len(sent) == 2
    with CaptureQueriesContext(connection) as first:
        settle_event_chunk.apply(kwargs=sent[0]).get()
    with CaptureQueriesContext(connection) as last:
        settle_event_chunk.apply(kwargs=sent[1]).get()
    batch.refresh_from_db()
    assert (batch.status, batch.chunks_done, len(bodies)) == (BatchStatus.COMPLETED, 2, 2)
    assert Job.objects.get(pk=batch.job_id).status == Job.Status.COMPLETED
    assert list(JobChunk.objects.filter(job_id=batch.job_id).values_list("status", "attempts")) == [("done", 1)] * 2
    statements = [q["sql"] for q in first.captured_queries
                  if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT"))]
    # Claim (one UPDATE ... RETURNING), the job alive, the chunk's row lock, the body's read of its batch, the chunk
    # done, the job's counter, the batch's row lock and counters: 8 statements (13 before issue 14's follow-up), no
    # savepoint.
    assert len(statements) == 8, statements
    assert not any(q["sql"].startswith("SAVEPOINT") for q in first.captured_queries)
    # The last chunk also completes the batch: its transition and the audit entry.
    assert len(last) - len(first) <= 3
