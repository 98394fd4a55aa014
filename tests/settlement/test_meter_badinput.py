"""Issue 15 for meter data: implausible readings refused with their row and field, the rest loaded; every load a job
that always ends (an unexpected exception fails the load and its job in words; a failed load can be retried);
two identical loads at once end as if run one after the other."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pytest
from django.db import connection
from django.test import TestCase

from cpm.base.errors import DomainValidationError
from cpm.models import Job
from settlement.meterdata import checks, intervals
from settlement.meterdata import loaders as meterdata
from settlement.meterdata.csvreadings import parse_csv
from settlement.meterdata.greenbutton import parse_green_button
from settlement.meterdata.loaders import (
    meter_csv_load,
    meter_data_load_retry,
    meter_data_load_run,
    meter_data_load_submit,
    meter_readings_load,
)
from settlement.models import IntervalDay, MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.badfiles.meter_corpus import _feed
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db
HEAD = "service_point_id,channel,interval_start,interval_minutes,kwh\n"
T0 = int(dt.datetime(2026, 5, 14, tzinfo=dt.UTC).timestamp())


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def load_csv(text: str, now) -> MeterDataLoad:
    return meter_csv_load(content=text.encode(), now=now, file_name="r.csv", actor=TEST_ACTOR)


def by_row(load) -> dict[int, tuple[str, str]]:
    return {e["row"]: (e["field"], e["message"]) for e in load.errors}


def values(sp, day=dt.date(2026, 5, 14), channel="delivered"):
    return intervals.decode(IntervalDay.objects.get(service_point=sp, day=day, channel=channel,
                                                    is_current=True).values)


def test_each_value_rule_names_row_and_field(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    load = load_csv(HEAD +
                    "SP-1,delivered,2026-05-14T00:00Z,60,1.5\n"       # 2 good
                    "SP-1,delivered,2026-05-14T01:00Z,60,NaN\n"       # 3 the text NaN
                    "SP-1,delivered,2026-05-14T02:00Z,60,-0.5\n"      # 4 negative delivered
                    "SP-1,received,2026-05-14T03:00Z,60,-0.25\n"      # 5 negative received
                    "SP-1,net,2026-05-14T04:00Z,60,-3\n"              # 6 negative net: kept
                    "SP-1,delivered,2026-05-14T05:00Z,60,1e308\n"     # 7 beyond the limit
                    "SP-1,delivered,2026-05-14T06:00Z,60,200\n"       # 8 at the limit: kept
                    "SP-1,delivered,2026-05-14T07:00Z,15,50.5\n"      # 9 a quarter hour allows 50 kWh
                    "SP-1,delivered,0001-01-01T00:00Z,60,1\n"         # 10 year 1
                    "SP-1,delivered,9999-12-31T23:00Z,60,1\n"         # 11 year 9999
                    "SP-1,delivered,2026-05-14T08:00Z,60,inf\n"       # 12 infinite
                    "SP-1,delivered,2026-05-14T09:00Z,60,\n", now)    # 13 empty: not provided, not rejected
    assert load.status == MeterDataLoad.Status.COMPLETED_WITH_ERRORS
    assert load.summary == "3 new, 0 unchanged, 0 corrected, 8 rejected"
    limit = "(CPM_MAX_KWH_PER_HOUR = 200 kWh per hour)"
    assert by_row(load) == {
        3: ("kwh", "not a number: 'NaN' (leave the field empty for a missing reading)"),
        4: ("kwh", "negative delivered energy (-0.5 kWh): only the net channel may be negative"),
        5: ("kwh", "negative received energy (-0.25 kWh): only the net channel may be negative"),
        7: ("kwh", f"1e+308 kWh in a 60-minute interval is beyond the plausible 200 kWh {limit}"),
        9: ("kwh", f"50.5 kWh in a 15-minute interval is beyond the plausible 50 kWh {limit}"),
        10: ("interval_start", "0001-01-01T00:00Z is outside the years 1900-2100"),
        11: ("interval_start", "9999-12-31T23:00Z is outside the years 1900-2100"),
        12: ("kwh", "must be finite"),
    }
    day = values(sp)
    assert (day[0], day[4], day[6]) == (1.5, -3.0, 200.0)
    assert np.isnan(day[[1, 2, 3, 5, 7, 8, 9]]).all()
    assert IntervalDay.objects.count() == 1


def test_limits_come_from_settings_and_customer_class(now, settings):
    ServicePointFactory(service_point_id="SP-1")
    ServicePointFactory(service_point_id="CI-1", customer_class="commercial_industrial")
    settings.CPM_MAX_KWH_PER_HOUR = 10
    settings.CPM_METER_YEARS = (2020, 2030)
    load = load_csv(HEAD + "SP-1,delivered,2026-05-14T00:00Z,60,10\nSP-1,delivered,2026-05-14T01:00Z,60,10.5\n"
                           "CI-1,delivered,2026-05-14T01:00Z,60,5000\nCI-1,delivered,2026-05-14T02:00Z,60,100001\n"
                           "SP-1,delivered,2019-12-31T23:00Z,60,1\n", now)
    assert load.summary == "2 new, 0 unchanged, 0 corrected, 3 rejected"
    assert by_row(load) == {
        3: ("kwh", "10.5 kWh in a 60-minute interval is beyond the plausible 10 kWh "
                   "(CPM_MAX_KWH_PER_HOUR = 10 kWh per hour)"),
        5: ("kwh", "100001 kWh in a 60-minute interval is beyond the plausible 100000 kWh "
                   "(CPM_MAX_KWH_PER_HOUR_CI = 100000 kWh per hour)"),
        6: ("interval_start", "2019-12-31T23:00Z is outside the years 2020-2030"),
    }
    assert checks.epoch_range((1900, 2100)) == (-2208988800, 4133980800)  # 1900-01-01, 2101-01-01 UTC


def test_nul_long_fields_and_csv_limit_are_row_errors():
    text = (HEAD + "SP-1\x00,delivered,2026-05-14T00:00Z,60,1\n" + "SP-1,delivered,2026-05-14T01:00Z,60," + "1" * 300
            + "\n" + 'SP-1,delivered,2026-05-14T02:00Z,60,"' + "9" * 140_000 + '"\n'
            + "SP-1,delivered,2026-05-14T03:00Z,60,1\n")
    parsed = parse_csv(text)
    assert [(e["row"], e["field"]) for e in parsed.errors] == [(2, "service_point_id"), (3, "kwh"), (4, "kwh")]
    assert parsed.errors[0]["message"] == "contains a NUL character"
    assert parsed.errors[1]["message"] == "is 300 characters long (at most 256)"
    # Past the csv module's default field limit (raised for the process by CpmConfig.ready): named by its column.
    assert parsed.errors[2]["message"] == "is 140,000 characters long (at most 256)"
    assert list(parsed.rows) == [5] and parsed.rejected == 3
    # the fast path hands such files to the general parser (it would strip trailing NULs silently)
    assert parse_csv(text.encode()).errors == parsed.errors


def test_text_nan_is_counted_on_the_fast_path_too():
    """'NaN' used to be taken for "not provided" by the vectorised path, with no rejected count."""
    parsed = parse_csv((HEAD + "SP-1,delivered,2026-05-14T00:00:00Z,60,NaN\nSP-1,delivered,2026-05-14T01:00:00Z,60,"
                               "\nSP-1,delivered,2026-05-14T02:00:00Z,60,2\n").encode())
    assert parsed.rejected == 1 and parsed.errors[0]["row"] == 2 and parsed.errors[0]["field"] == "kwh"
    assert list(parsed.rows) == [3, 4] and np.isnan(parsed.kwh[0]) and parsed.kwh[1] == 2


def test_green_button_parser_never_raises_on_a_bad_reading():
    feed = _feed([(str(T0), "3600", "500"), (str(T0 + 3600), "3600", "abc"), (str(T0 + 7200), "3600", "-5"),
                  (str(T0 + 10800), "3600", "NaN"), (str(T0 + 14400), "3600", "1e400"),
                  ("1" + "0" * 30, "3600", "1"), (str(T0 + 18000), "3600", None)])
    up = parse_green_button(feed).usage_points[0]
    assert [(e["row"], e["field"], e["message"]) for e in up.errors] == [
        (2, "value", "not a number: 'abc' (IntervalReading 2, in IntervalBlock 1)"),
        (3, "value", "negative delivered energy (-5 Wh x 10^0): only a net ReadingType (flowDirection 4) may be "
                     "negative (IntervalReading 3, in IntervalBlock 1)"),
        (4, "value", "not a number: 'NaN' (leave the value out for a missing reading) (IntervalReading 4, in "
                     "IntervalBlock 1)"),
        (5, "value", "1e400 Wh x 10^0 is not a finite number (IntervalReading 5, in IntervalBlock 1)"),
        (6, "timePeriod", "start 1000000000000000000000000000000 is outside the years 1900-2100 (IntervalReading 6, "
                          "in IntervalBlock 1)"),
    ]
    assert list(up.rows) == [1, 7] and up.kwh[0] == 0.5 and np.isnan(up.kwh[1])


def test_green_button_bad_value_completes_and_1e28_is_not_stored_as_a_correction(now):
    """Before: a <value> that is not a number left the load running for ever; negative and ~1e28 Wh values were
    stored as corrections over real readings."""
    sp = ServicePointFactory(service_point_id="SP-1")

    def load(readings) -> MeterDataLoad:
        with TestCase.captureOnCommitCallbacks(execute=True):
            submitted = meter_data_load_submit(source="green_button", content=_feed(readings).encode(), now=now,
                                               service_point_id="SP-1", actor=TEST_ACTOR)
        submitted.refresh_from_db()
        return submitted

    first = load([(str(T0), "3600", "500"), (str(T0 + 3600), "3600", "x")])
    assert (first.status, first.summary) == ("completed_with_errors", "1 new, 0 unchanged, 0 corrected, 1 rejected")
    again = load([(str(T0), "3600", "-500"), (str(T0), "3600", "1e28")])
    assert again.summary == "0 new, 0 unchanged, 0 corrected, 2 rejected"
    assert [(e["row"], e["field"]) for e in again.errors] == [(1, "value"), (2, "kwh")]
    assert values(sp)[0] == 0.5 and IntervalDay.objects.count() == 1


def test_bulk_api_refuses_implausible_values(admin_api, settings):
    settings.SECURE_SSL_REDIRECT = False
    sp = ServicePointFactory(service_point_id="SP-1")
    readings = [{"service_point_id": "SP-1", "interval_start": "2026-05-14T00:00:00Z", "kwh": 1.25},
                {"service_point_id": "SP-1", "interval_start": "2026-05-14T01:00:00Z", "kwh": 1e308},
                {"service_point_id": "SP-1", "interval_start": "2026-05-14T02:00:00Z", "kwh": -1},
                {"service_point_id": "SP-1", "interval_start": "1800-05-14T02:00:00Z", "kwh": 1}]
    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = admin_api.post("/api/v1/meter-data-loads/bulk/", {"readings": readings}, format="json")
    assert resp.status_code == 202, resp.content
    load = MeterDataLoad.objects.get(pk=resp.json()["id"])
    assert load.summary == "1 new, 0 unchanged, 0 corrected, 3 rejected"
    assert [(e["row"], e["field"]) for e in load.errors] == [(2, "kwh"), (3, "kwh"), (4, "interval_start")]
    assert values(sp)[0] == 1.25


def test_arrays_refuse_infinite_and_out_of_range(now):
    sp = ServicePointFactory(service_point_id="SP-1")
    load = meter_readings_load(now=now, arrays={
        "service_point": np.full(4, sp.pk), "start": np.array([T0, T0 + 3600, T0 + 7200, -2208988800 - 3600]),
        "kwh": np.array([1.0, np.inf, 1e300, 1.0]), "channel": np.array([0, 0, 0, 0])}, actor=TEST_ACTOR)
    assert load.summary == "1 new, 0 unchanged, 0 corrected, 3 rejected"
    assert [(e["row"], e["field"]) for e in load.errors] == [(2, "kwh"), (3, "kwh"), (4, "interval_start")]


# ------------------------------------------------------------------------------------------------------- jobs
def test_every_load_is_a_job(now):
    ServicePointFactory(service_point_id="SP-1")
    load = load_csv(HEAD + "SP-1,delivered,2026-05-14T00:00Z,60,1\n", now)
    job = Job.objects.get(kind="meter_data_load")
    assert (job.subject_type, job.subject_id, job.status, job.error) == ("settlement.meterdataload", str(load.pk),
                                                                         "completed", "")
    failed = load_csv("service_point_id,kwh\nSP-1,1\n", now)
    job = Job.objects.get(kind="meter_data_load", subject_id=str(failed.pk))
    assert (failed.status, job.status, job.error) == ("failed", "failed", "missing column: interval_start")


def test_unexpected_exception_fails_the_load_and_its_job_then_a_retry_works(now, monkeypatch):
    ServicePointFactory(service_point_id="SP-1")
    apply = meterdata._apply

    def broken(*args, **kwargs):
        raise RuntimeError("connection to the disk lost")

    monkeypatch.setattr(meterdata, "_apply", broken)
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="csv", content=(HEAD + "SP-1,delivered,2026-05-14T00:00Z,60,1\n").encode(),
                                      now=now, actor=TEST_ACTOR)
    load.refresh_from_db()
    assert load.status == MeterDataLoad.Status.FAILED  # not left running
    assert load.errors[0]["field"] == "load"
    assert load.errors[0]["message"].startswith("RuntimeError: connection to the disk lost (at ")
    job = Job.objects.get(subject_id=str(load.pk))
    assert job.status == "failed" and job.error == load.errors[0]["message"] and job.finished_at is not None
    assert IntervalDay.objects.count() == 0

    monkeypatch.setattr(meterdata, "_apply", apply)
    with TestCase.captureOnCommitCallbacks(execute=True):
        meter_data_load_retry(load_id=load.pk, now=now, actor=TEST_ACTOR)
    load.refresh_from_db()
    assert (load.status, load.summary, load.errors) == ("completed", "1 new, 0 unchanged, 0 corrected, 0 rejected", [])
    assert list(Job.objects.filter(subject_id=str(load.pk)).order_by("pk").values_list("status", flat=True)) == [
        "failed", "completed"]
    assert meter_data_load_run(load_id=load.pk, now=now, actor=TEST_ACTOR).status == "completed"  # idempotent
    with pytest.raises(DomainValidationError) as done:
        meter_data_load_retry(load_id=load.pk, now=now, actor=TEST_ACTOR)
    assert done.value.errors == {"status": ["only a failed load can be retried; this one is completed"]}


def test_synchronous_load_reraises_after_recording(now, monkeypatch):
    ServicePointFactory(service_point_id="SP-1")
    monkeypatch.setattr(meterdata, "_apply_partition", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        load_csv(HEAD + "SP-1,delivered,2026-05-14T00:00Z,60,1\n", now)
    load = MeterDataLoad.objects.get()
    assert load.status == "failed" and load.errors[0]["message"].startswith("ZeroDivisionError: division by zero")
    with pytest.raises(DomainValidationError) as no_file:
        meter_data_load_retry(load_id=load.pk, now=now, actor=TEST_ACTOR)
    assert no_file.value.errors == {"file": ["this load has no stored file to run again: load the file again"]}


def test_retry_through_the_api(admin_api, settings, now, monkeypatch):
    settings.SECURE_SSL_REDIRECT = False
    ServicePointFactory(service_point_id="SP-1")
    monkeypatch.setattr(meterdata, "_apply", lambda *a, **k: 1 / 0)
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="csv", content=(HEAD + "SP-1,delivered,2026-05-14T00:00Z,60,1\n").encode(),
                                      now=now, actor=TEST_ACTOR)
    monkeypatch.undo()  # the spooled file is still there
    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = admin_api.post(f"/api/v1/meter-data-loads/{load.pk}/retry/")
    assert resp.status_code == 202, resp.content
    assert MeterDataLoad.objects.get(pk=load.pk).summary == "1 new, 0 unchanged, 0 corrected, 0 rejected"
    again = admin_api.post(f"/api/v1/meter-data-loads/{load.pk}/retry/")
    assert again.status_code == 400 and "only a failed load" in again.content.decode()


# ------------------------------------------------------------------------------------------------ concurrency
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_identical_loads_at_once_end_as_if_one_after_the_other(now):
    sps = [ServicePointFactory(service_point_id=f"SP-{i}") for i in range(40)]
    text = HEAD + "".join(f"SP-{i},delivered,2026-05-14T{h:02d}:00:00Z,60,{i + h / 100}\n"
                          for i in range(40) for h in range(24))
    barrier = threading.Barrier(2)
    results, failures = [], []

    def run():
        try:
            barrier.wait()
            results.append(meter_csv_load(content=text.encode(), now=now, actor=TEST_ACTOR).summary)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(results) == ["0 new, 960 unchanged, 0 corrected, 0 rejected",
                               "960 new, 0 unchanged, 0 corrected, 0 rejected"]
    assert IntervalDay.objects.count() == 40 and set(IntervalDay.objects.values_list("version", flat=True)) == {1}
    assert values(sps[3])[5] == 3.05


def test_admin_retries_failed_loads(admin_client, settings, now, monkeypatch):
    settings.SECURE_SSL_REDIRECT = False
    ServicePointFactory(service_point_id="SP-1")
    monkeypatch.setattr(meterdata, "_apply", lambda *a, **k: 1 / 0)
    with TestCase.captureOnCommitCallbacks(execute=True):
        load = meter_data_load_submit(source="csv", content=(HEAD + "SP-1,delivered,2026-05-14T00:00Z,60,1\n").encode(),
                                      now=now, actor=TEST_ACTOR)
    monkeypatch.undo()
    page = admin_client.get("/admin/settlement/meterdataload/")
    assert page.status_code == 200 and b"Retry selected failed loads" in page.content
    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = admin_client.post("/admin/settlement/meterdataload/", {"action": "retry", "_selected_action": [load.pk]})
    assert resp.status_code == 302
    load.refresh_from_db()
    assert load.status == "completed" and load.readings_new == 1


def test_a_quoted_header_is_read_as_its_column_names(now):
    """A CSV written with every field quoted (spreadsheets, ``csv.QUOTE_ALL``) was refused as "missing columns:
    service_point_id, interval_start, kwh" although it has them (QA guard)."""
    sp = ServicePointFactory(service_point_id="SP-1")
    text = '"service_point_id","channel","interval_start","interval_minutes","kwh"\n' \
           '"SP-1","delivered","2026-05-14T00:00:00Z","60","1.5"\n'
    parsed = parse_csv(text.encode())
    assert (len(parsed), parsed.errors, list(parsed.kwh)) == (1, [], [1.5])
    load = load_csv(text, now)
    assert (load.status, load.readings_new) == ("completed", 1)
    assert values(sp)[0] == 1.5


@pytest.mark.parametrize("header", ["service_point_id,interval_start,kwh,kwh",
                                    "service_point_id,interval_start,KWH,kwh ",
                                    "service_point_id,interval_start,kwh,Service_Point_Id"])
def test_a_column_named_twice_refuses_the_file(header, now):
    """Two ``kwh`` columns give one reading two values: the first was taken silently (QA guard); the file is
    refused naming the column, as the CIS and device importers do, and nothing is loaded."""
    from settlement.meterdata.csvreadings import CsvFormatError

    ServicePointFactory(service_point_id="SP-1")
    row = "SP-1,2026-05-14T00:00:00Z,1.5,9\n"
    for source in (header + "\n" + row, (header + "\n" + row).encode()):
        with pytest.raises(CsvFormatError, match="named twice"):
            parse_csv(source)
    load = load_csv(header + "\n" + row, now)
    assert load.status == "failed" and "named twice" in str(load.errors)
    assert not IntervalDay.objects.exists()


@pytest.mark.parametrize("text", ["", "service_point_id,kwh\nSP-1,1\n"])
def test_a_file_problem_fails_the_load_as_its_actor_without_a_traceback(text, now, caplog):
    """A file-level problem failed the job first, whose signal failed the load as ``system:jobs``; the loader's own
    failure of the load then met a load no longer running (TransitionNotAllowed, logged with its traceback as "job
    N failed" for every empty or header-less file) (QA guard). The load fails once, as the caller, naming the
    file."""
    from cpm.models import AuditEntry

    with caplog.at_level("ERROR"):
        load = load_csv(text, now)
    assert load.status == "failed" and load.errors[0]["field"] == "file"
    assert not [r for r in caplog.records if r.levelname == "ERROR"], [r.getMessage() for r in caplog.records]
    failed = AuditEntry.objects.get(object_type="settlement.meterdataload", object_id=str(load.pk),
                                    to_status="failed")
    assert failed.actor_label == str(TEST_ACTOR)
    job = Job.objects.get(kind="meter_data_load", subject_id=str(load.pk))
    assert job.status == "failed" and job.error == load.errors[0]["message"]


def test_an_unknown_zone_is_refused_naming_tz_before_any_load(now):
    """``load_intervals --tz Mars/Base`` (``meter_csv_load``) and the readings service took any zone name and failed
    the load with "'No time zone found with key Mars/Base'" (QA guard); like the upload, they refuse it naming
    ``tz`` and make no load."""
    for call in (lambda: meter_csv_load(content=HEAD.encode(), tz="Mars/Base",
                                        now=now, actor=TEST_ACTOR),
                 lambda: meter_readings_load(rows=[], tz="Mars/Base", now=now, actor=TEST_ACTOR)):
        with pytest.raises(DomainValidationError) as refused:
            call()
        assert "tz" in refused.value.errors
    assert not MeterDataLoad.objects.exists()
