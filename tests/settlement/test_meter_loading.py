"""Interval data loading: CSV and programmatic loads, versions, idempotence, DST, row errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.test import TestCase

from settlement.meterdata import intervals
from settlement.meterdata.loaders import meter_data_load_submit, meter_readings_load
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, ServicePointFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def csv_load(text: str, now, tz=None) -> MeterDataLoad:
    with TestCase.captureOnCommitCallbacks(execute=True):  # the job is enqueued after commit
        load = meter_data_load_submit(source="csv", content=text.encode(), now=now, file_name="r.csv", tz=tz,
                                      actor=TEST_ACTOR)
    load.refresh_from_db()
    return load


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def day_values(sp, day, channel="delivered", current=True):
    row = IntervalDay.objects.get(service_point=sp, day=day, channel=channel, is_current=current,
                                  device__isnull=True)
    return intervals.decode(row.values)


def test_csv_load_then_identical_reload_changes_nothing(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    sp2 = ServicePointFactory(service_point_id="SP-2")
    text = ("service_point_id,channel,interval_start,interval_minutes,kwh\n"
            "SP-1,delivered,2026-05-14T00:00:00Z,60,1.5\n"
            "SP-1,delivered,2026-05-14T01:00:00+00:00,60,2.25\n"
            "SP-1,received,2026-05-14T12:00:00-07:00,60,0.75\n"
            "SP-2,net,2026-05-14T23:00:00Z,60,-0.5\n")
    load = csv_load(text, now)
    assert load.status == MeterDataLoad.Status.COMPLETED
    assert load.summary == "4 new, 0 unchanged, 0 corrected, 0 rejected"
    values = day_values(sp, dt.date(2026, 5, 14))
    assert values[0] == 1.5 and values[1] == 2.25
    assert np.isnan(values[2:]).all()  # gaps stay gaps, never zeros
    assert day_values(sp, dt.date(2026, 5, 14), channel="received")[19] == 0.75  # 12:00-07:00 = 19:00Z
    assert day_values(sp2, dt.date(2026, 5, 14))[23] == -0.5  # negative net value kept
    assert IntervalDay.objects.count() == 3

    again = csv_load(text, now + dt.timedelta(hours=1))
    assert again.summary == "0 new, 4 unchanged, 0 corrected, 0 rejected"
    assert IntervalDay.objects.count() == 3
    assert set(IntervalDay.objects.values_list("version", flat=True)) == {1}


def test_correction_creates_new_version_and_keeps_old(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    csv_load("service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1.5\nSP-1,2026-05-14T01:00Z,2\n", now)
    later = now + dt.timedelta(days=1)
    load = csv_load("service_point_id,interval_start,kwh\nSP-1,2026-05-14T01:00Z,2.5\nSP-1,2026-05-14T02:00Z,3\n",
                    later)
    assert load.summary == "1 new, 0 unchanged, 1 corrected, 0 rejected"
    rows = list(IntervalDay.objects.filter(service_point=sp).order_by("version"))
    assert [(r.version, r.is_current) for r in rows] == [(1, False), (2, True)]
    old, new = intervals.decode(rows[0].values), intervals.decode(rows[1].values)
    assert list(old[:3][:2]) == [1.5, 2.0] and np.isnan(old[2])
    assert list(new[:3]) == [1.5, 2.5, 3.0]  # partial day merged: hour 0 kept from the first load
    assert rows[1].received_at == later and rows[0].received_at == now
    assert rows[1].load_id == load.pk


def test_csv_local_times_spring_gap_rejected_with_row_numbers(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    text = ["service_point_id,interval_start,kwh"]
    for h in range(5):  # 2026-03-08 00:00 .. 04:00 local: 02:00 does not exist in America/Los_Angeles
        text.append(f"SP-1,2026-03-08T{h:02d}:00:00,{h + 1}")
    load = csv_load("\n".join(text) + "\n", now, tz="America/Los_Angeles")
    assert load.status == MeterDataLoad.Status.COMPLETED_WITH_ERRORS
    assert load.summary == "4 new, 0 unchanged, 0 corrected, 1 rejected"
    assert load.errors == [{"row": 4, "field": "interval_start", "message":
                            "2026-03-08T02:00:00 does not exist in America/Los_Angeles "
                            "(skipped by the daylight-saving change)"}]
    values = day_values(sp, dt.date(2026, 3, 8))
    # 00:00 PST = 08:00Z, 01:00 PST = 09:00Z, 03:00 PDT = 10:00Z, 04:00 PDT = 11:00Z
    assert list(values[8:12]) == [1, 2, 4, 5]


def test_csv_autumn_repeated_hour_resolved_by_order(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    text = ("service_point_id,interval_start,kwh\n"
            "SP-1,2026-11-01T00:00:00,1\n"
            "SP-1,2026-11-01T01:00:00,2\n"  # first 01:00 = PDT = 08:00Z
            "SP-1,2026-11-01T01:00:00,3\n"  # second 01:00 = PST = 09:00Z
            "SP-1,2026-11-01T02:00:00,4\n")  # 02:00 PST = 10:00Z
    load = csv_load(text, now, tz="America/Los_Angeles")
    assert load.summary == "4 new, 0 unchanged, 0 corrected, 0 rejected"
    values = day_values(sp, dt.date(2026, 11, 1))
    assert list(values[7:11]) == [1, 2, 3, 4]


def test_unknown_flow_direction_and_other_row_errors(now):
    ServicePointFactory(service_point_id="SP-1")
    text = ("service_point_id,channel,interval_start,interval_minutes,kwh\n"
            "SP-1,sideways,2026-05-14T00:00Z,60,1\n"
            "SP-9,delivered,2026-05-14T00:00Z,60,1\n"
            "SP-1,delivered,2026-05-14T00:30Z,60,1\n"
            "SP-1,delivered,2026-05-14T00:00Z,45,1\n"
            "SP-1,delivered,yesterday,60,1\n"
            "SP-1,delivered,2026-05-14T00:00,60,1\n"
            "SP-1,delivered,2026-05-14T03:00Z,60,abc\n"
            "SP-1,delivered,2026-05-14T05:00Z,60,1\n")
    load = csv_load(text, now)
    assert load.summary == "1 new, 0 unchanged, 0 corrected, 7 rejected"
    by_row = {e["row"]: (e["field"], e["message"]) for e in load.errors}
    assert by_row[2] == ("channel", "unknown flow direction 'sideways' (delivered, received or net)")
    assert by_row[3] == ("service_point_id", "unknown service point 'SP-9'")
    assert by_row[4] == ("interval_start", "does not start a 60-minute interval")
    assert by_row[5] == ("interval_minutes", "must be 5, 15, 30 or 60, not '45'")
    assert by_row[6][0] == "interval_start" and "not an ISO 8601" in by_row[6][1]
    assert by_row[7] == ("interval_start", "has no UTC offset and the load declares no time zone")
    assert by_row[8] == ("kwh", "not a number: 'abc'")


def test_missing_header_fails_the_load(now):
    load = csv_load("service_point_id,kwh\nSP-1,1\n", now)
    assert load.status == MeterDataLoad.Status.FAILED
    assert load.errors == [{"row": None, "field": "file", "message": "missing column: interval_start"}]


def test_empty_kwh_is_not_a_reading_and_keeps_old_value(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    csv_load("service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1.5\n", now)
    load = csv_load("service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,\n", now)
    assert load.summary == "0 new, 0 unchanged, 0 corrected, 0 rejected"
    assert day_values(sp, dt.date(2026, 5, 14))[0] == 1.5


def test_programmatic_rows_and_arrays(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    device = DeviceFactory(serial_number="BAT-1")
    load = meter_readings_load(now=now, rows=[
        {"service_point_id": "SP-1", "interval_start": dt.datetime(2026, 5, 14, 0, 15, tzinfo=UTC),
         "interval_minutes": 15, "kwh": 0.25},
        {"service_point": sp.pk, "interval_start": dt.datetime(2026, 5, 14, 0, 30, tzinfo=UTC),
         "interval_minutes": 15, "kwh": 0.5, "device": "BAT-1"},
        {"service_point_id": "SP-1", "channel": "upward", "interval_start": "2026-05-14T00:00Z", "kwh": 1},
    ], actor=TEST_ACTOR)
    assert load.summary == "2 new, 0 unchanged, 0 corrected, 1 rejected"
    assert load.errors[0]["row"] == 3 and load.errors[0]["field"] == "channel"
    assert day_values(sp, dt.date(2026, 5, 14))[1] == 0.25
    dev_row = IntervalDay.objects.get(device=device)
    assert intervals.decode(dev_row.values)[2] == 0.5 and dev_row.interval_minutes == 15

    start = int(dt.datetime(2026, 5, 15, tzinfo=UTC).timestamp())
    arrays = {"service_point": np.full(24, sp.pk), "start": start + 3600 * np.arange(24), "kwh": np.arange(24.0)}
    first = meter_readings_load(now=now, arrays=arrays, source="api", actor=TEST_ACTOR)
    assert first.summary == "24 new, 0 unchanged, 0 corrected, 0 rejected"
    arrays["kwh"] = arrays["kwh"].copy()
    arrays["kwh"][5] = 99.0
    second = meter_readings_load(now=now, arrays=arrays, source="api", actor=TEST_ACTOR)
    assert second.summary == "0 new, 23 unchanged, 1 corrected, 0 rejected"
    assert day_values(sp, dt.date(2026, 5, 15))[5] == 99.0


def test_mixed_interval_lengths_on_one_day_rejected(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    csv_load("service_point_id,interval_start,interval_minutes,kwh\nSP-1,2026-05-14T00:00Z,60,1\n", now)
    load = csv_load("service_point_id,interval_start,interval_minutes,kwh\nSP-1,2026-05-14T02:00Z,15,1\n", now)
    assert load.summary == "0 new, 0 unchanged, 0 corrected, 1 rejected"
    assert load.errors == [{"row": 2, "field": "interval_minutes",
                            "message": "15-minute readings for a day stored in another interval length"}]
    # within one load: the readings of a day in a second interval length are rejected (the shorter length wins)
    load = csv_load("service_point_id,interval_start,interval_minutes,kwh\nSP-1,2026-05-16T02:00Z,60,1\n"
                    "SP-1,2026-05-16T02:15Z,15,1\n", now)
    assert load.summary == "1 new, 0 unchanged, 0 corrected, 1 rejected"
    assert load.errors[0]["field"] == "interval_minutes" and load.errors[0]["row"] == 2
    assert IntervalDay.objects.get(service_point=sp, day=dt.date(2026, 5, 14), is_current=True).interval_minutes == 60


def test_duplicate_rows_in_one_load(now):
    ServicePointFactory(service_point_id="SP-1")
    load = csv_load("service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1\nSP-1,2026-05-14T00:00Z,2\n", now)
    # issue 15: two values for one interval reject both rows, each naming the other (before: the first was kept,
    # "1 new, 1 rejected")
    assert load.summary == "0 new, 0 unchanged, 0 corrected, 2 rejected"
    tail = "there, for the same service point, device, channel and interval start (neither is loaded)"
    assert load.errors == [
        {"row": 2, "field": "interval_start", "message": f"conflicting duplicate of row 3: 1 kWh here, 2 kWh {tail}"},
        {"row": 3, "field": "interval_start", "message": f"conflicting duplicate of row 2: 2 kWh here, 1 kWh {tail}"}]
    assert IntervalDay.objects.count() == 0
    # identical duplicates count once; an empty duplicate does not conflict
    load = csv_load("service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1\nSP-1,2026-05-14T00:00Z,1\n"
                    "SP-1,2026-05-14T01:00Z,\nSP-1,2026-05-14T01:00Z,4\n", now)
    assert load.summary == "2 new, 0 unchanged, 0 corrected, 0 rejected"
    assert list(intervals.decode(IntervalDay.objects.get().values)[:2]) == [1, 4]


def test_run_is_idempotent(now):
    from settlement.meterdata.loaders import meter_data_load_run

    ServicePointFactory(service_point_id="SP-1")
    load = csv_load("service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1\n", now)
    again = meter_data_load_run(load_id=load.pk, now=now, actor=TEST_ACTOR)
    assert again.status == MeterDataLoad.Status.COMPLETED and IntervalDay.objects.count() == 1


def test_fast_and_general_parsers_agree():
    from settlement.meterdata.csvreadings import _parse_fast, parse_csv

    text = ("service_point_id,channel,interval_start,interval_minutes,kwh,device\n"
            "SP-2,delivered,2026-05-14T00:00:00Z,60,1.5,\n"
            "SP-1,received,2026-05-14T01:00:00+02:00,15,2.25,BAT-1\n"
            "\n"
            "SP-2,net,2026-05-14T00:15:00-07:00,15,,BAT-1\n"
            "SP-1,delivered,2026-05-14T03:00:00Z,30,1e-3,\n")
    fast = _parse_fast(text.encode())
    slow = parse_csv(text)  # text goes through the general per-row parser
    assert fast is not None
    for name in ("channel", "start", "minutes", "rows"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    np.testing.assert_array_equal(fast.kwh, slow.kwh)  # NaN == NaN here
    assert [fast.sp_unique[c] for c in fast.sp_code] == [slow.sp_unique[c] for c in slow.sp_code]
    assert [fast.device_unique[c] if c >= 0 else "" for c in fast.device_code] == \
        [slow.device_unique[c] if c >= 0 else "" for c in slow.device_code]
    assert list(fast.rows) == [2, 3, 5, 6]
    # anything needing a row message falls back to the general parser
    assert _parse_fast(text.replace("net", "sideways").encode()) is None
    assert _parse_fast(text.replace("15,2.25", "15,-2.25").encode()) is None  # negative received (issue 15)
    assert _parse_fast(b"service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00,1\n") is None


def test_fast_parser_reads_kwh_bit_for_bit_as_float():
    """The vectorised reading of plain decimals gives exactly float()'s value (no rounding difference in the last
    bit); other spellings go through the conversion row by row; text that is no number leaves the fast path."""
    from settlement.meterdata.csvreadings import _parse_fast

    values = ["0.1", "0.3", "1.234", "12.345", "0.000", "7", "5.", ".5", "0007.50", "123456789012345",
              "1234567890.12345", "0.123456789012345", "0.1234567890123456789", "1234567890123456", "1e-3", "2E2",
              " 1.5", "1.5 ", "199.999999999999999", "", "3.14159265358979"]
    text = "service_point_id,channel,interval_start,kwh\n" + "".join(
        f"SP-1,delivered,2026-05-14T{h:02d}:00:00Z,{v}\n" for h, v in enumerate(values))
    fast = _parse_fast(text.encode())
    assert fast is not None
    expected = np.array([float(v) if v.strip() else np.nan for v in values])
    assert fast.kwh.tobytes() == expected.tobytes()
    negative = _parse_fast(text.replace("delivered", "net").replace(",0.000\n", ",-0.000\n")
                           .replace(",12.345\n", ",-12.345\n").encode())
    assert negative is not None
    assert negative.kwh[3] == -12.345 and np.signbit(negative.kwh[4]) and negative.kwh[4] == 0
    for bad in ("1.2.3", "-", "abc", "NaN", "1,5"):
        assert _parse_fast(text.replace(",7\n", f",{bad}\n").encode()) is None


def test_load_intervals_command(tmp_path, now):
    from io import StringIO

    from django.core.management import call_command

    ServicePointFactory(service_point_id="SP-1")
    path = tmp_path / "r.csv"
    path.write_text("service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1\nSP-1,2026-05-14T00:00Z,2\n")
    out = StringIO()
    call_command("load_intervals", str(path), stdout=out)
    # issue 15: the two values of one interval are both rejected (before: "1 new", line 3 rejected as a duplicate)
    assert "completed_with_errors: 0 new, 0 unchanged, 0 corrected, 2 rejected" in out.getvalue()
    assert "row 3: interval_start: conflicting duplicate of row 2: 2 kWh here, 1 kWh there" in out.getvalue()


def test_parse_csv_counts_lines_and_shares_occurrences():
    """What a block-by-block reader needs: the lines numbered (header and blank lines included) and the autumn
    repeated hour's order of appearance carried from one call to the next."""
    from settlement.meterdata.csvreadings import parse_csv

    header = "service_point_id,interval_start,kwh\n"
    assert parse_csv((header + "SP-1,2026-05-14T00:00Z,1\n\nSP-1,2026-05-14T01:00Z,2\n").encode()).lines == 4  # fast
    assert parse_csv(header + "SP-1,2026-05-14T00:00Z,1\r\n\r\n").lines == 3  # general parser
    assert parse_csv(header).lines == 1
    seen: dict = {}
    first = parse_csv(header + "SP-1,2026-11-01T01:00:00,1\n", tz="America/Los_Angeles", occurrences=seen)
    second = parse_csv(header + "SP-1,2026-11-01T01:00:00,2\n", tz="America/Los_Angeles", occurrences=seen)
    alone = parse_csv(header + "SP-1,2026-11-01T01:00:00,2\n", tz="America/Los_Angeles")
    assert seen == {("SP-1", "", 0, "2026-11-01T01:00:00"): 2}
    assert second.start[0] - first.start[0] == 3600 and alone.start[0] == first.start[0]  # PST after PDT


def test_load_intervals_command_passes_the_path(tmp_path, now, monkeypatch):
    from io import StringIO

    from django.core.management import CommandError, call_command

    from settlement.meterdata import loaders as meterdata

    ServicePointFactory(service_point_id="SP-1")
    monkeypatch.setattr(meterdata, "BLOCK_BYTES", 40)  # several blocks
    path = tmp_path / "r.csv"
    path.write_text("service_point_id,interval_start,kwh\n" + "".join(f"SP-1,2026-05-14T{h:02d}:00Z,{h}\n"
                                                                      for h in range(24)) + "SP-1,nope,1\n")
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("the file was read whole"))
    out = StringIO()
    call_command("load_intervals", str(path), stdout=out)
    assert "completed_with_errors: 24 new, 0 unchanged, 0 corrected, 1 rejected" in out.getvalue()
    assert "row 26: interval_start: not an ISO 8601 date-time: 'nope'" in out.getvalue()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("load_intervals", str(path), "--queue", stdout=out)
    assert MeterDataLoad.objects.order_by("-pk").first().summary == "0 new, 24 unchanged, 0 corrected, 1 rejected"
    with pytest.raises(CommandError, match="file: cannot read"):
        call_command("load_intervals", str(tmp_path / "missing.csv"))


def test_a_worker_killed_before_the_load_is_marked_done_leaves_nothing_written(now, monkeypatch):
    """The readings and the load's COMPLETED status are one transaction: a worker killed between the two (here the
    process exits as ``_finish`` starts) writes nothing, as the sweeper then says ("nothing of it was written.
    Retry it."), instead of leaving the readings written under a load that never completed."""
    from settlement.meterdata import loaders

    ServicePointFactory(service_point_id="SP-1")

    def killed(*args, **kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(loaders, "_finish", killed)
    with pytest.raises(SystemExit):
        csv_load("service_point_id,channel,interval_start,interval_minutes,kwh\n"
                 "SP-1,delivered,2026-05-14T00:00:00Z,60,1.5\n", now)
    assert IntervalDay.objects.count() == 0
    assert MeterDataLoad.objects.get().status == MeterDataLoad.Status.RUNNING  # the sweeper's to fail, retryable
