"""Two senders on the same due messages at once (two workers given overlapping chunks, or a chunk redelivered while
its first run is still going): every message is handed to the channel once."""

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from cpm.notifications import services
from cpm.notifications.channels import LocmemSmsBackend
from cpm.notifications.models import Message

from .conftest import queued_sms_notices

SENT_AT = dt.datetime(2026, 7, 15, 20, 0, tzinfo=dt.UTC)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_hand_each_message_once(program):
    ids = queued_sms_notices(program, 40, now=SENT_AT)
    assert len(ids) == 40
    handed: list[str] = []
    original = LocmemSmsBackend.send

    def slow_send(self, items):  # record every hand-off, slowly, so the two transactions overlap
        handed.extend(i.key for i in items)
        threading.Event().wait(0.3)
        return original(self, items)

    results = []

    def sender():
        try:
            with transaction.atomic():
                results.append(services.messages_send(ids=ids, now=SENT_AT))
        finally:
            connection.close()

    LocmemSmsBackend.send = slow_send
    try:
        threads = [threading.Thread(target=sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        LocmemSmsBackend.send = original
    assert len(results) == 2 and sum(r["sent"] for r in results) == 40
    assert len(handed) == 40 and len(set(handed)) == 40
    assert Message.objects.filter(status="sent").count() == 40
