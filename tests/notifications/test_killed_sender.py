"""A sender killed mid-chunk (issue 19): everything handed before the batch in flight is recorded SENT, everything
after it is still QUEUED, and only that one batch is "in doubt" (SENDING). The chunk run again hands only what was
never handed; the in-doubt batch goes again, under the same keys, only once the stall time has passed."""

import datetime as dt

import pytest

from cpm.notifications import channels, services
from cpm.notifications.choices import MessageStatus
from cpm.notifications.models import Message

from .conftest import queued_sms_notices

pytestmark = pytest.mark.django_db
SENT_AT = dt.datetime(2026, 7, 15, 20, 0, tzinfo=dt.UTC)


class Killed(BaseException):
    """What ``kill -9`` does to a worker, as far as the database can tell: nothing after it runs."""


def test_a_killed_sender_leaves_one_batch_in_doubt_and_nothing_is_handed_twice(program, settings, monkeypatch):
    settings.CPM_NOTIFY_SEND_BATCH = 4
    ids = queued_sms_notices(program, 10, now=SENT_AT)
    assert len(ids) == 10
    handed: list[str] = []
    real_send = channels.send
    batches = {"n": 0}

    def dying_send(items):
        batches["n"] += 1
        handed.extend(i.key for i in items)
        if batches["n"] == 2:
            raise Killed  # handed to the provider, then the worker is gone before anything is recorded
        return real_send(items)

    monkeypatch.setattr(channels, "send", dying_send)
    with pytest.raises(Killed):
        services.messages_send(first_id=ids[0], last_id=ids[-1], now=SENT_AT)
    status = dict(Message.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [status[i] for i in ids] == [MessageStatus.SENT] * 4 + [MessageStatus.SENDING] * 4 + [
        MessageStatus.QUEUED] * 2
    assert len(handed) == 8

    # The chunk sent again at once (the broker's redelivery): only the two never handed go.
    monkeypatch.setattr(channels, "send", lambda items: (handed.extend(i.key for i in items), real_send(items))[1])
    assert services.messages_send(first_id=ids[0], last_id=ids[-1], now=SENT_AT) == {
        "sent": 2, "failed": 0, "suppressed": 0}
    assert len(handed) == 10 and len(set(handed)) == 10  # nothing handed twice
    in_doubt = list(Message.objects.filter(status=MessageStatus.SENDING).values_list("key", flat=True))
    assert len(in_doubt) == 4

    # The next tick's job, past the stall time: the in-doubt four go again under their own keys (the providers'
    # idempotency keys), rendered as they were; nothing else.
    later = SENT_AT + dt.timedelta(minutes=11)
    recover = later - dt.timedelta(seconds=settings.CPM_JOB_STALL_SECONDS)
    assert services.messages_due(now=later, recover_before=recover) == ids[4:8]
    before = {m.key: m.body for m in Message.objects.filter(status=MessageStatus.SENDING)}
    assert services.messages_send(ids=ids, now=later, recover_before=recover) == {
        "sent": 4, "failed": 0, "suppressed": 0}
    assert sorted(handed[10:]) == sorted(in_doubt)
    assert Message.objects.filter(pk__in=ids, status=MessageStatus.SENT).count() == 10
    assert {m.key: m.body for m in Message.objects.filter(key__in=in_doubt)} == before
    assert services.messages_due(now=later, recover_before=recover) == []
