"""Streamed CSV loads (issue 8): a file read in several blocks and merged partition by partition gives exactly the
result of the same file read and merged at once (values, versions, counts, row-numbered errors)."""

from __future__ import annotations

import datetime as dt
import tempfile

import numpy as np
import pytest
from django.db import transaction
from django.test import TestCase

from cpm.base.errors import DomainValidationError
from settlement.meterdata import intervals
from settlement.meterdata import loaders as meterdata
from settlement.meterdata.loaders import meter_csv_load, meter_data_load_run, meter_data_load_submit
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, ServicePointFactory

pytestmark = pytest.mark.django_db
HEADER = "service_point_id,channel,interval_start,interval_minutes,kwh,device"
DUPLICATE = "duplicate reading for this interval in the same load"  # before issue 15: the first row won


def conflict(other: int, here: str, there: str) -> str:
    """Issue 15: two rows of one key with different values are both rejected, each naming the other."""
    return (f"conflicting duplicate of row {other}: {here} here, {there} there, for the same service point, device, "
            "channel and interval start (neither is loaded)")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # partition files land here: checked empty


@pytest.fixture
def spy(monkeypatch):
    """Counts the blocks parsed, the partition count chosen and the partitions merged."""
    calls = {"blocks": 0, "k": [], "merged": 0}
    parse, init, merge = meterdata.parse_csv, meterdata._Spill.__init__, meterdata._apply_partition

    def parse_spy(*args, **kwargs):
        calls["blocks"] += 1
        return parse(*args, **kwargs)

    def init_spy(self, directory, k):
        calls["k"].append(k)
        init(self, directory, k)

    def merge_spy(r, **kwargs):
        calls["merged"] += 1
        merge(r, **kwargs)

    monkeypatch.setattr(meterdata, "parse_csv", parse_spy)
    monkeypatch.setattr(meterdata._Spill, "__init__", init_spy)
    monkeypatch.setattr(meterdata, "_apply_partition", merge_spy)
    return calls


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(meterdata, "BLOCK_BYTES", 400)
    monkeypatch.setattr(meterdata, "PARTITION_READINGS", 40)


def population():
    sps = [ServicePointFactory(service_point_id=f"SP-{i}") for i in range(1, 7)]
    DeviceFactory(serial_number="BAT-1")
    return sps


def utility_csv() -> tuple[str, dict[str, int]]:
    """Six service points x 2 days hourly, sorted by service point (so each day spans several 400-byte blocks), then
    the awkward rows at the end, in later blocks. Returns the text and the line of each awkward row."""
    lines = ["\ufeff" + HEADER]
    for i in range(1, 7):
        for day in (14, 15):
            for h in range(24):
                kwh = "" if (i, day, h) == (4, 15, 7) else f"{i + h / 100:.2f}"  # one gap: not a reading
                lines.append(f"SP-{i},delivered,2026-05-{day}T{h:02d}:00:00Z,60,{kwh},")
        if i == 3:
            lines.append("")  # a blank line still counts as a line of the file
            lines.append("SP-3,delivered,2026-05-16T01:00:00Z,60,9,")  # shorter length later in the file wins
            lines.append("SP-404,delivered,2026-05-14T00:00:00Z,60,1,")
    at = {}
    for name, row in (("device", "SP-5,received,2026-05-14T05:00:00Z,15,0.5,BAT-1"),
                      ("dup", "SP-1,delivered,2026-05-14T00:00:00Z,60,99,"),  # conflicts with line 2: both rejected
                      ("bad", "SP-2,delivered,yesterday,60,1,"),
                      ("quarter", "SP-3,delivered,2026-05-16T01:15:00Z,15,2,"),
                      ("serial", "SP-6,delivered,2026-05-14T03:00:00Z,60,1,BAT-404")):
        lines.append(row)
        at[name] = len(lines)
    at["sp404"] = 1 + lines.index("SP-404,delivered,2026-05-14T00:00:00Z,60,1,")
    at["hourly"] = 1 + lines.index("SP-3,delivered,2026-05-16T01:00:00Z,60,9,")
    return "\n".join(lines) + "\n", at


def snapshot() -> list[tuple]:
    return sorted((sp, dev or "", *rest, bytes(values)) for sp, dev, *rest, values in IntervalDay.objects.values_list(
        "service_point__service_point_id", "device__serial_number", "channel", "day", "interval_minutes", "version",
        "is_current", "received_at", "values"))


def isolated(fn):
    """Run a load in a savepoint rolled back afterwards: (summary, errors, IntervalDay rows as it left them)."""
    with transaction.atomic():
        load = fn()
        result = (load.status, load.summary, load.errors, snapshot())
        transaction.set_rollback(True)
    return result


def test_multi_block_load_equals_one_block_load(now, spy, monkeypatch, tmp_path):
    population()
    meter_csv_load(content=b"service_point_id,interval_start,kwh\nSP-1,2026-05-14T05:00Z,7\nSP-2,2026-05-15T05:00Z,"
                           b"2.05\n", now=now,
                           actor=TEST_ACTOR)  # stored before: SP-1 05:00 corrected, SP-2 05:00 unchanged
    text, at = utility_csv()
    path = tmp_path / "readings.csv"
    path.write_text(text)
    spy.update(blocks=0, merged=0)

    whole = isolated(lambda: meter_csv_load(path=path, now=now, actor=TEST_ACTOR))
    assert spy["blocks"] == 1 and spy["k"] == [] and spy["merged"] == 1  # one block: merged as it is

    monkeypatch.setattr(meterdata, "BLOCK_BYTES", 400)
    monkeypatch.setattr(meterdata, "PARTITION_READINGS", 40)
    spy.update(blocks=0, merged=0)
    streamed = isolated(lambda: meter_csv_load(path=path, now=now, actor=TEST_ACTOR))
    assert spy["blocks"] > 20 and spy["k"] == [7] and spy["merged"] == 6  # ~280 lines estimated / 40; 6 service points
    assert streamed == whole

    status, summary, errors, _ = streamed
    assert status == MeterDataLoad.Status.COMPLETED_WITH_ERRORS
    # 6 x 48 - 1 gap - 1 conflicting duplicate = 286 hourly, + 1 quarter-hour + 1 device reading; 2 of them stored
    # before (issue 15: the duplicate of line 2 with another value rejects both; the first row won before)
    assert summary == "286 new, 1 unchanged, 1 corrected, 6 rejected"
    assert errors == [
        {"row": 2, "field": "interval_start", "message": conflict(at["dup"], "1 kWh", "99 kWh")},
        {"row": at["hourly"], "field": "interval_minutes",
         "message": "60-minute reading on a day already given in 15-minute intervals"},
        {"row": at["sp404"], "field": "service_point_id", "message": "unknown service point 'SP-404'"},
        {"row": at["dup"], "field": "interval_start", "message": conflict(2, "99 kWh", "1 kWh")},
        {"row": at["bad"], "field": "interval_start", "message": "not an ISO 8601 date-time: 'yesterday'"},
        {"row": at["serial"], "field": "device", "message": "unknown device serial 'BAT-404'"},
    ]
    assert (at["hourly"], at["sp404"], at["dup"]) == (147, 148, 294)

    # the streamed load for real, then the checks on what it wrote
    load = meter_csv_load(path=path, now=now, actor=TEST_ACTOR)
    assert load.summary == summary
    sp1 = IntervalDay.objects.get(service_point__service_point_id="SP-1", day=dt.date(2026, 5, 14), is_current=True)
    values = intervals.decode(sp1.values)
    # both rows of hour 0 rejected (1.0 and 99: issue 15; before, the first row's 1.0 was kept)
    assert sp1.version == 2 and np.isnan(values[0]) and values[5] == 1.05 and values[23] == 1.23
    sp4 = IntervalDay.objects.get(service_point__service_point_id="SP-4", day=dt.date(2026, 5, 15))
    assert np.isnan(intervals.decode(sp4.values)[7]) and intervals.decode(sp4.values)[8] == 4.08
    sp3 = IntervalDay.objects.get(service_point__service_point_id="SP-3", day=dt.date(2026, 5, 16))
    assert sp3.interval_minutes == 15 and intervals.decode(sp3.values)[5] == 2.0
    dev = IntervalDay.objects.get(device__serial_number="BAT-1")
    assert dev.channel == "received" and intervals.decode(dev.values)[20] == 0.5
    assert IntervalDay.objects.filter(is_current=True).count() == 6 * 2 + 2
    assert list((tmp_path / "tmp").iterdir()) == []  # partition files removed

    again = meter_csv_load(path=path, now=now + dt.timedelta(hours=1), actor=TEST_ACTOR)
    assert again.summary == "0 new, 288 unchanged, 0 corrected, 6 rejected"
    assert again.errors == errors
    assert IntervalDay.objects.count() == 6 * 2 + 2 + 2  # nothing new: the first versions of SP-1 and SP-2 besides


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_autumn_repeated_hour_across_blocks(now, small_blocks, spy, newline):
    """The two 01:00 of 2026-11-01 (America/Los_Angeles) of one service point fall in different blocks."""
    sps = population()
    lines = ["service_point_id,interval_start,kwh"]
    lines += [f"SP-1,2026-11-01T0{h}:00:00,{h + 1}" for h in range(2)]  # 00:00 PDT, first 01:00 = PDT
    lines += [f"SP-2,2026-11-0{d}T{h:02d}:00:00,1" for d in (2, 3) for h in range(24)]  # filler: several blocks
    lines += ["SP-1,2026-11-01T01:00:00,3", "SP-1,2026-11-01T02:00:00,4"]  # second 01:00 = PST, 02:00 PST
    lines += [f"SP-3,2026-11-0{d}T{h:02d}:00:00,1" for d in (2, 3) for h in range(24)]
    lines += ["SP-1,2026-11-01T01:00:00,5", "SP-1,2026-03-08T02:30:00,1"]  # a third 01:00; a spring-gap time
    text = newline.join(lines) + newline
    load = meter_csv_load(content=text, now=now, tz="America/Los_Angeles", actor=TEST_ACTOR)
    assert spy["blocks"] > 5 and spy["k"]
    assert load.summary == "100 new, 0 unchanged, 0 corrected, 2 rejected"
    assert load.errors == [
        {"row": 102, "field": "interval_start", "message": "2026-11-01T01:00:00 occurs more than twice for this "
                                                           "service point"},
        {"row": 103, "field": "interval_start", "message": "2026-03-08T02:30:00 does not exist in "
                                                           "America/Los_Angeles (skipped by the daylight-saving "
                                                           "change)"}]
    values = intervals.decode(IntervalDay.objects.get(service_point=sps[0], day=dt.date(2026, 11, 1)).values)
    assert list(values[7:11]) == [1, 2, 3, 4]  # 07:00Z 00:00 PDT, 08:00Z 01:00 PDT, 09:00Z 01:00 PST, 10:00Z 02:00


def test_path_and_content_give_the_same_result(now, small_blocks, tmp_path):
    population()
    text, _ = utility_csv()
    path = tmp_path / "readings.csv"
    path.write_bytes(text.encode())
    by_path = isolated(lambda: meter_csv_load(path=str(path), now=now, actor=TEST_ACTOR))
    by_bytes = isolated(lambda: meter_csv_load(content=text.encode(), now=now, actor=TEST_ACTOR))
    by_text = isolated(lambda: meter_csv_load(content=text, now=now, actor=TEST_ACTOR))
    assert by_path == by_bytes == by_text
    assert by_path[1] == "288 new, 0 unchanged, 0 corrected, 6 rejected"  # issue 15: the conflicting pair rejected


def test_content_or_path_exactly_one(now, tmp_path):
    with pytest.raises(DomainValidationError) as neither:
        meter_csv_load(now=now, actor=TEST_ACTOR)
    assert neither.value.errors == {"content": ["give either content or path"]}
    with pytest.raises(DomainValidationError) as both:
        meter_csv_load(content=b"x", path=tmp_path / "r.csv", now=now, actor=TEST_ACTOR)
    assert both.value.errors == {"content": ["give either content or path, not both"]}
    with pytest.raises(DomainValidationError) as missing:
        meter_csv_load(path=tmp_path / "missing.csv", now=now, actor=TEST_ACTOR)
    assert missing.value.errors == {"path": [f"cannot read {tmp_path / 'missing.csv'}: No such file or directory"]}
    with pytest.raises(DomainValidationError) as submit:
        meter_data_load_submit(source="csv", now=now, actor=TEST_ACTOR)
    assert submit.value.errors == {"content": ["give either content or path"]}
    assert MeterDataLoad.objects.count() == 0


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"\xef\xbb\xbfservice_point_id,kwh\n" + b"SP-1,1\n" * 200, "missing column: interval_start"),
    # A byte that is not UTF-8 on line 150, in a later block: its line in the file, nothing written (blocks before
    # it parsed fine).
    (b"service_point_id,interval_start,kwh\n" + b"SP-1,2026-05-14T00:00:00Z,1\n" * 148
     + b"SP-\xff,2026-05-14T01:00:00Z,1\n" + b"SP-1,2026-05-14T02:00:00Z,1\n" * 50,
     "line 150: not UTF-8 text (save the file as UTF-8)"),
    (b"service_point_id,interval_start,kwh\xe9\n", "line 1: not UTF-8 text (save the file as UTF-8)"),
])
def test_file_level_problem_fails_and_writes_nothing(now, small_blocks, tmp_path, content, message):
    population()
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    load = meter_csv_load(path=path, now=now, actor=TEST_ACTOR)
    assert load.status == MeterDataLoad.Status.FAILED
    assert load.errors == [{"row": None, "field": "file", "message": message}]
    assert IntervalDay.objects.count() == 0


def test_header_only_and_long_lines(now, monkeypatch):
    """A block smaller than a line grows until it has a line end; BOM split over reads is still dropped."""
    sp = population()[0]
    monkeypatch.setattr(meterdata, "BLOCK_BYTES", 2)
    assert meter_csv_load(content=b"service_point_id,interval_start,kwh", now=now, actor=TEST_ACTOR).summary == \
        "0 new, 0 unchanged, 0 corrected, 0 rejected"
    load = meter_csv_load(content=b"\xef\xbb\xbfservice_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1\n\n"
                                  b"SP-1,2026-05-14T01:00Z,2\nSP-1,2026-05-14T01:00Z,3", now=now, actor=TEST_ACTOR)
    # issue 15: lines 4 and 5 give one interval two values: both rejected (before: line 4's value kept)
    assert load.summary == "1 new, 0 unchanged, 0 corrected, 2 rejected"
    assert load.errors == [{"row": 4, "field": "interval_start", "message": conflict(5, "2 kWh", "3 kWh")},
                           {"row": 5, "field": "interval_start", "message": conflict(4, "3 kWh", "2 kWh")}]
    values = intervals.decode(IntervalDay.objects.get(service_point=sp).values)
    assert values[0] == 1 and np.isnan(values[1])


def test_error_in_a_later_partition_writes_nothing(now, small_blocks, spy, monkeypatch, tmp_path):
    population()
    text, _ = utility_csv()
    chunk = meterdata._apply_chunk
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        chunk(*args, **kwargs)

    monkeypatch.setattr(meterdata, "_apply_chunk", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        meter_csv_load(content=text, now=now, actor=TEST_ACTOR)
    assert len(spy["k"]) == 1 and IntervalDay.objects.count() == 0  # the first two partitions rolled back too
    assert list((tmp_path / "tmp").iterdir()) == []


def test_kept_errors_are_the_lowest_rows(now, small_blocks, monkeypatch):
    population()
    monkeypatch.setattr(meterdata, "MAX_ERRORS", 3)
    rows = [f"SP-9{k},delivered,2026-05-14T00:00:00Z,60,1," for k in range(20)]  # unknown: rejected at resolve
    rows[15] = "SP-1,delivered,2026-05-14T00:00:00Z,60,x,"  # rejected at parse, in a later block
    rows[1] = "SP-1,delivered,2026-05-14T01:00:00Z,60,1,"
    rows[2] = "SP-1,delivered,2026-05-14T01:00:00Z,60,2,"  # conflicting duplicate: both rejected at merge
    load = meter_csv_load(content="\n".join([HEADER, *rows]) + "\n", now=now, actor=TEST_ACTOR)
    assert load.summary == "0 new, 0 unchanged, 0 corrected, 20 rejected"
    assert load.errors == [{"row": 2, "field": "service_point_id", "message": "unknown service point 'SP-90'"},
                           {"row": 3, "field": "interval_start", "message": conflict(4, "1 kWh", "2 kWh")},
                           {"row": 4, "field": "interval_start", "message": conflict(3, "2 kWh", "1 kWh")}]


def test_job_streams_the_spooled_file(now, small_blocks, spy, tmp_path):
    population()
    text, at = utility_csv()
    path = tmp_path / "readings.csv"
    path.write_text(text)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the job runs after commit
        load = meter_data_load_submit(source="csv", path=path, now=now, file_name="r.csv", row_offset=-1,
                                      actor=TEST_ACTOR)
    load.refresh_from_db()
    assert spy["blocks"] > 20 and spy["k"] == [7]
    assert load.status == MeterDataLoad.Status.COMPLETED_WITH_ERRORS
    assert load.summary == "288 new, 0 unchanged, 0 corrected, 6 rejected"
    assert [e["row"] for e in load.errors] == [1, at["hourly"] - 1, at["sp404"] - 1, at["dup"] - 1, at["bad"] - 1,
                                               at["serial"] - 1]  # row_offset kept
    assert list((tmp_path / "tmp").iterdir()) == []
    assert meter_data_load_run(load_id=load.pk, now=now, actor=TEST_ACTOR).summary == load.summary  # idempotent

    with TestCase.captureOnCommitCallbacks(execute=True):
        again = meter_data_load_submit(source="csv", content=text.encode(), now=now, actor=TEST_ACTOR)
    again.refresh_from_db()
    assert again.summary == "0 new, 288 unchanged, 0 corrected, 6 rejected"
    assert [e["row"] for e in again.errors] == [2, at["hourly"], at["sp404"], at["dup"], at["bad"], at["serial"]]


def test_job_missing_header_column_fails(now, small_blocks):
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="csv", content=b"service_point_id,kwh\n" + b"SP-1,1\n" * 100, now=now,
                                      actor=TEST_ACTOR)
    load.refresh_from_db()
    assert load.status == MeterDataLoad.Status.FAILED
    assert load.errors == [{"row": None, "field": "file", "message": "missing column: interval_start"}]
