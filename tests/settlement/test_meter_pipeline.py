"""Interval loads merged chunk by chunk while the previous chunk's rows are inserted (issue 20, item 3:
``settlement.meterdata.loaders._Pipe``): the same rows, versions and counts as merging the whole load at once, and on
PostgreSQL the order that overlaps this process's merge with the database's insert."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from cpm.base import bulk
from settlement.meterdata import loaders as meterdata
from settlement.meterdata.loaders import meter_csv_load
from settlement.models import IntervalDay
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db
HEADER = "service_point_id,channel,interval_start,interval_minutes,kwh"


def readings(doubled: tuple[int, ...] = ()) -> str:
    """Five service points, both channels, two days, hourly (the service points ``doubled`` with twice the kWh): per
    service point the groups (channel, day) are delivered 14th, delivered 15th, received 14th, received 15th, so
    with chunks of 3 groups one (service point, day) has its channels in two chunks."""
    lines = [HEADER]
    for i in range(1, 6):
        for channel in ("delivered", "received"):
            for day in (14, 15):
                for h in range(24):
                    kwh = (i + h / 100) * (2 if i in doubled else 1)
                    lines.append(f"SP-{i},{channel},2026-05-{day}T{h:02d}:00:00Z,60,{kwh:.3f}")
    return "\n".join(lines) + "\n"


def stored() -> list[tuple]:
    return sorted((sp, ch, day, version, current, bytes(values)) for sp, ch, day, version, current, values in
                  IntervalDay.objects.values_list("service_point__service_point_id", "channel", "day", "version",
                                                  "is_current", "values"))


def load_and_correct(now) -> tuple[list[str], list[tuple]]:
    """Load the readings, then load them again with SP-2 and SP-4 corrected (their days superseded, version 2) and
    the others unchanged: the summaries and the rows left, in a savepoint rolled back afterwards."""
    with transaction.atomic():
        first = meter_csv_load(content=readings(), now=now, actor=TEST_ACTOR)
        second = meter_csv_load(content=readings(doubled=(2, 4)), now=now + dt.timedelta(hours=1), actor=TEST_ACTOR)
        result = ([first.summary, second.summary], stored())
        transaction.set_rollback(True)
    return result


def test_chunked_load_equals_one_chunk(now, monkeypatch):
    """Twenty groups in chunks of 3 (seven chunks, each merged while the one before is inserted) store exactly what
    one chunk of every group stores: the same counts, values, versions and current rows."""
    for i in range(1, 6):
        ServicePointFactory(service_point_id=f"SP-{i}")
    monkeypatch.setattr(meterdata, "CHUNK_GROUPS", 10**6)
    whole = load_and_correct(now)
    monkeypatch.setattr(meterdata, "CHUNK_GROUPS", 3)
    chunked = load_and_correct(now)
    assert whole[0] == ["480 new, 0 unchanged, 0 corrected, 0 rejected",
                        "0 new, 288 unchanged, 192 corrected, 0 rejected"]
    assert chunked == whole
    assert sum(1 for row in whole[1] if row[3] == 2) == 8  # SP-2 and SP-4: 2 channels x 2 days at version 2
    assert len(whole[1]) == 28  # 20 days at version 1 (8 of them superseded), 8 at version 2


@pytest.mark.postgres
def test_a_chunk_is_merged_while_the_one_before_is_inserted(now, monkeypatch):
    """The order of one load in chunks (PostgreSQL): each chunk's current rows are read, then the chunk before it
    is written (its COPY started, not waited for), then this chunk is merged and its writes held back; the COPY is
    waited for only when the connection is needed again. So chunk k + 1's merge runs while chunk k is inserted."""
    for i in range(1, 6):
        ServicePointFactory(service_point_id=f"SP-{i}")
    monkeypatch.setattr(meterdata, "CHUNK_GROUPS", 8)  # 20 groups: chunks of 8, 8 and 4
    log: list[str] = []
    fetch, hold, start, finish = (meterdata._fetch_current, meterdata._Pipe.hold, bulk.copy_binary_start,
                                  bulk.StartedInsert.finish)

    def logged(name, fn):
        def wrapper(*args, **kwargs):
            log.append(name)
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(meterdata, "_fetch_current", logged("read", fetch))
    monkeypatch.setattr(meterdata._Pipe, "hold", logged("merged", hold))
    monkeypatch.setattr(bulk, "copy_binary_start", logged("insert started", start))

    def finish_logged(self):
        if self._cursor is not None:
            log.append("insert done")
        return finish(self)

    monkeypatch.setattr(bulk.StartedInsert, "finish", finish_logged)
    load = meter_csv_load(content=readings(), now=now, actor=TEST_ACTOR)
    assert load.summary == "480 new, 0 unchanged, 0 corrected, 0 rejected"
    assert log == ["read", "merged",                                   # chunk 1
                   "read", "insert started", "merged",                 # chunk 2 merged while chunk 1 is inserted
                   "insert done", "read", "insert started", "merged",  # chunk 3 merged while chunk 2 is inserted
                   "insert done", "insert started", "insert done"]     # the end: chunk 3 written and waited for
    assert IntervalDay.objects.filter(is_current=True).count() == 20
