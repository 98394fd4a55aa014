"""kW-drop files (issue 18.5): aggregator-reported performance per event and service point, loaded as a meter-data
load job: natural keys, blanks kept as missing, versions, idempotence, row errors naming line and column, file-level
failures writing nothing, the job path, the upload API and the admin upload page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from cpm.base.errors import DomainValidationError
from devices.choices import CustomerClass
from settlement.meterdata.kwdrop import kw_drop_file_load
from settlement.meterdata.loaders import meter_data_load_submit
from settlement.models import MeterDataLoad, ReportedKwDrop
from tests.actors import TEST_ACTOR
from tests.factories.devices import ServicePointFactory
from tests.factories.enrollments import active_participant
from tests.factories.kwdrop import HEADER, kw_drop_file, record
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EVENT_START, EventFactory, ParticipationFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 17, 9, 0, tzinfo=dt.UTC)
UTC = dt.UTC
# 16:00-19:00 PDT in 15-minute intervals: 12 values, three blank (not reported)
VALUES = [2.0, 2.0, None, 2.0, 1.5, 1.5, 1.5, 1.5, None, None, 1.0, 1.0]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def world():
    program = ProgramFactory(code="BYOT-26", performance_measurement="aggregator_reported")
    event = EventFactory(program=program, name="Heat wave 1")
    sps = {}
    for code, cls in (("SP-1", CustomerClass.RESIDENTIAL), ("SP-2", CustomerClass.RESIDENTIAL),
                      ("CI-1", CustomerClass.COMMERCIAL_INDUSTRIAL)):
        sp = ServicePointFactory(service_point_id=code, customer_class=cls)
        ParticipationFactory(event=event, subscription=active_participant(program=program, service_point=sp))
        sps[code] = sp
    sps["SP-9"] = ServicePointFactory(service_point_id="SP-9")  # takes no part in the event
    return program, event, sps


def load(data: bytes, now=NOW) -> MeterDataLoad:
    return kw_drop_file_load(content=data, now=now, file_name="kwdrop.csv", actor=TEST_ACTOR)


def current(event, sp) -> ReportedKwDrop:
    return ReportedKwDrop.objects.get(event=event, service_point=sp, is_current=True)


def test_load_keeps_blanks_as_missing_and_reloading_changes_nothing(world):
    program, event, sps = world
    data = kw_drop_file([record(event=event, service_point=sps["SP-1"], values=VALUES),
                         record(event=event, service_point=sps["SP-2"], values=[1.25] * 12)])
    first = load(data)
    assert first.status == MeterDataLoad.Status.COMPLETED, first.errors
    assert first.source == "kw_drop"
    assert first.summary == "2 new, 0 unchanged, 0 corrected, 0 rejected"
    r = current(event, sps["SP-1"])
    assert r.kw_drop == VALUES  # blanks are None, never 0
    assert (r.intervals_reported, r.intervals_missing) == (9, 3)
    assert (r.actual_start, r.actual_end) == (EVENT_START, EVENT_START + dt.timedelta(hours=3))
    assert r.interval_seconds == 900 and r.max_kw_drop == Decimal("2.0000") and r.version == 1
    assert r.load_id == first.pk and r.line == 2 and r.received_at == NOW

    again = load(data, now=NOW + dt.timedelta(hours=1))
    assert again.summary == "0 new, 2 unchanged, 0 corrected, 0 rejected"
    assert ReportedKwDrop.objects.count() == 2


def test_corrected_file_supersedes_and_keeps_the_old_version(world):
    program, event, sps = world
    load(kw_drop_file([record(event=event, service_point=sps["SP-1"], values=VALUES),
                       record(event=event, service_point=sps["SP-2"], values=[1.25] * 12)]))
    fixed = [2.0, 2.0, 1.75, 2.0, 1.5, 1.5, 1.5, 1.5, None, None, 1.0, 1.0]
    second = load(kw_drop_file([record(event=event, service_point=sps["SP-1"], values=fixed),
                                record(event=event, service_point=sps["SP-2"], values=[1.25] * 12)]),
                  now=NOW + dt.timedelta(days=1))
    assert second.summary == "0 new, 1 unchanged, 1 corrected, 0 rejected"
    r = current(event, sps["SP-1"])
    assert (r.version, r.kw_drop, r.intervals_missing, r.load_id) == (2, fixed, 2, second.pk)
    old = ReportedKwDrop.objects.get(event=event, service_point=sps["SP-1"], version=1)
    assert not old.is_current and old.kw_drop == VALUES
    assert ReportedKwDrop.objects.filter(is_current=True).count() == 2


def test_natural_keys_and_ids_local_times_and_padding(world):
    program, event, sps = world
    lines = [
        # the event by name, the program by id, the service point by its cpm id; times without offset = program zone
        record(event=event, service_point=sps["SP-1"], values=[1.0, 1.0, 1.0], interval_seconds=3600,
               event_key="Heat wave 1", program_key=str(program.pk), sp_key=str(sps["SP-1"].pk),
               start="2026-07-15T16:00:00", end="2026-07-15 19:00:00"),
        # the event by id, the program by code, times in UTC ("Z"), padded with empty fields to the header's width
        record(event=event, service_point=sps["SP-2"], values=[0.5, None, 0.5], interval_seconds=3600,
               start="2026-07-15T23:00:00Z", end="2026-07-16T02:00:00Z") + ",,,",
    ]
    result = load(kw_drop_file(lines, width=6))
    assert result.summary == "2 new, 0 unchanged, 0 corrected, 0 rejected", result.errors
    one, two = current(event, sps["SP-1"]), current(event, sps["SP-2"])
    assert one.actual_start == two.actual_start == EVENT_START
    assert one.kw_drop == [1.0, 1.0, 1.0] and two.kw_drop == [0.5, None, 0.5]


def test_file_without_header_loads(world):
    program, event, sps = world
    result = load(kw_drop_file([record(event=event, service_point=sps["SP-1"], values=VALUES)], header=False))
    assert result.summary == "1 new, 0 unchanged, 0 corrected, 0 rejected"
    assert current(event, sps["SP-1"]).line == 1


def test_row_errors_name_line_and_column_and_good_rows_load(world):
    program, event, sps = world
    other_program = ProgramFactory(code="OTHER")
    other_event = EventFactory(program=other_program, name="Elsewhere")
    good = record(event=event, service_point=sps["SP-1"], values=VALUES)
    lines = [
        good,                                                                                              # 2
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12, event_key="999999"),             # 3
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12, program_key="NOPE"),             # 4
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12, sp_key="SP-404"),                # 5
        record(event=event, service_point=sps["SP-9"], values=[1.0] * 12),                                 # 6
        record(event=other_event, service_point=sps["SP-2"], values=[1.0] * 12, program_key="BYOT-26"),    # 7
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12,
               start=EVENT_START, end=EVENT_START - dt.timedelta(hours=1)),                                # 8
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 11,
               start=EVENT_START, end=EVENT_START + dt.timedelta(hours=3)),                                # 9
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12,
               start=EVENT_START, end=EVENT_START + dt.timedelta(minutes=170)),                            # 10
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 3 + ["abc"] + [1.0] * 8),            # 11
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12, interval_seconds=-900,
               start=EVENT_START, end=EVENT_START + dt.timedelta(hours=3)),                                # 12
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12, max_kw="2.50"),                 # 13
        record(event=event, service_point=sps["SP-2"], values=[None] * 12, max_kw="1.00"),                # 14
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 12, start="yesterday",
               end=EVENT_START + dt.timedelta(hours=3)),                                                  # 15
        record(event=event, service_point=sps["SP-2"], values=[250.0] + [1.0] * 11),                      # 16
        record(event=event, service_point=sps["SP-2"], values=[1.0] * 4,
               start=EVENT_START + dt.timedelta(days=1)),                                                  # 17
        "1,BYOT-26,SP-2",                                                                                  # 18
        record(event=event, service_point=sps["CI-1"], values=[250.0] * 12),                              # 19 good
        good,                                                                                              # 20
        record(event=event, service_point=sps["SP-2"], values=[0.5] * 12),                                # 21 good
    ]
    result = load(kw_drop_file(lines))
    assert result.status == MeterDataLoad.Status.COMPLETED_WITH_ERRORS
    assert result.summary == "3 new, 0 unchanged, 0 corrected, 17 rejected"
    got = [(e["row"], e["field"], e["message"]) for e in result.errors]
    assert got == [
        (3, "EventId", "No event has id 999999."),
        (4, "ProgramId", "No program has code or id 'NOPE'."),
        (5, "SPId", "No service point has service point id or id 'SP-404'."),
        (6, "SPId", f"service point SP-9 has no participation in event {event.pk}"),
        (7, "EventId", f"event {other_event.pk} belongs to program OTHER, not BYOT-26"),
        (8, "ActualEndTime", "2026-07-15T15:00:00-07:00 is not after ActualStartTime 2026-07-15T16:00:00-07:00"),
        (9, "KwDrop", "12 intervals of 900 s from ActualStartTime to ActualEndTime need 12 KwDrop values; the record "
                      "has 11"),
        (10, "ActualEndTime", "the span from ActualStartTime to ActualEndTime (10,200 s) is not a whole number of "
                              "900-second intervals"),
        (11, "KwDrop4", "not a finite number of kW: 'abc'"),
        (12, "IntervalSize(Seconds)", "must be a whole number of seconds from 1 to 86,400, not '-900'"),
        (13, "MaxKwDrop", "2.50 is not the largest KwDrop value (KwDrop1 = 1)"),
        (14, "MaxKwDrop", "1.00 given, but no interval has a kW drop"),
        (15, "ActualStartTime", "not a date and time: 'yesterday' (ISO 8601, e.g. 2026-07-15T14:00:00-07:00)"),
        (16, "KwDrop1", "250 kW is beyond the plausible 200 kW (CPM_MAX_KWH_PER_HOUR = 200 kWh per hour)"),
        (17, "ActualStartTime", f"the reported span 2026-07-16 16:00 PDT to 2026-07-16 17:00 PDT does not overlap "
                                f"event {event.pk} (2026-07-15 16:00 PDT to 2026-07-15 19:00 PDT)"),
        (18, "line", "has 3 fields; a record needs EventId, ProgramId, SPId, ActualStartTime, ActualEndTime, "
                     "IntervalSize(Seconds), MaxKwDrop, then one KwDrop per interval"),
        (20, "SPId", "duplicate of line 2 (same event and service point, same values): line 2 is loaded once"),
    ]
    assert sorted(ReportedKwDrop.objects.values_list("service_point__service_point_id", flat=True)) == [
        "CI-1", "SP-1", "SP-2"]
    assert current(event, sps["SP-2"]).kw_drop == [0.5] * 12
    assert current(event, sps["CI-1"]).max_kw_drop == Decimal("250.0000")  # C&I: up to 100 MW


def test_conflicting_duplicates_load_neither_and_one_line_lists_every_problem(world):
    program, event, sps = world
    lines = [record(event=event, service_point=sps["SP-1"], values=VALUES),
             record(event=event, service_point=sps["SP-1"], values=[1.0] * 12),
             record(event=event, service_point=sps["SP-2"], values=[1.0, "x"] + [1.0] * 10, program_key="NOPE")]
    result = load(kw_drop_file(lines))
    assert result.summary == "0 new, 0 unchanged, 0 corrected, 3 rejected"
    assert [(e["row"], e["field"], e["message"]) for e in result.errors] == [
        (2, "SPId", f"conflicting duplicate of line 3: the same event {event.pk} and service point with other "
                    "values (neither is loaded)"),
        (3, "SPId", f"conflicting duplicate of line 2: the same event {event.pk} and service point with other "
                    "values (neither is loaded)"),
        (4, "ProgramId", "No program has code or id 'NOPE'."),
        (4, "KwDrop2", "not a finite number of kW: 'x'"),
    ]
    assert not ReportedKwDrop.objects.exists()


def test_max_kw_drop_matches_to_the_precision_written(world):
    program, event, sps = world
    values = ["2.346", "1", "1", "1"]
    lines = [record(event=event, service_point=sps["SP-1"], values=values, interval_seconds=2700, max_kw="2.35"),
             record(event=event, service_point=sps["SP-2"], values=values, interval_seconds=2700, max_kw="2.3"),
             record(event=event, service_point=sps["CI-1"], values=values, interval_seconds=2700, max_kw="2.4")]
    result = load(kw_drop_file(lines))
    assert [(e["row"], e["field"], e["message"]) for e in result.errors] == [
        (4, "MaxKwDrop", "2.4 is not the largest KwDrop value (KwDrop1 = 2.346)")]
    assert current(event, sps["SP-1"]).max_kw_drop == Decimal("2.3500")  # 2.346 to two decimals
    assert current(event, sps["SP-2"]).max_kw_drop == Decimal("2.3000")  # to one


def test_dst_repeated_hour_without_offset_is_refused():
    program = ProgramFactory(code="FALL")
    event = EventFactory(program=program, start=dt.datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
                         end=dt.datetime(2026, 11, 1, 10, 0, tzinfo=UTC))  # 01:00 PDT - 01:00 PST
    sp = ServicePointFactory(service_point_id="SP-F")
    ParticipationFactory(event=event, subscription=active_participant(program=program, service_point=sp))
    ambiguous = record(event=event, service_point=sp, values=[1.0, 1.0], interval_seconds=3600,
                       start="2026-11-01T01:00:00", end="2026-11-01T02:00:00")
    # the same two hours with offsets: 01:00 PDT, then the repeated 01:00 PST, to 02:00 PST (a 25-hour day)
    clear = record(event=event, service_point=sp, values=[1.0, 1.5], interval_seconds=3600,
                   start="2026-11-01T01:00:00-07:00", end="2026-11-01T02:00:00-08:00")
    result = load(kw_drop_file([ambiguous, clear]))
    assert result.summary == "1 new, 0 unchanged, 0 corrected, 1 rejected"
    (error,) = result.errors
    assert (error["row"], error["field"]) == (2, "ActualStartTime")
    assert error["message"].startswith("2026-11-01 01:00 happens twice in America/Los_Angeles")
    r = current(event, sp)
    assert (r.actual_start, r.actual_end, r.kw_drop) == (event.start, event.end, [1.0, 1.5])


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the file is empty"),
    (b"\n \n", "the file is empty"),
    (b"EventId,ProgramId,ServicePoint,ActualStartTime\n1,2,3,4,5,6,7\n",
     "line 1: header column 3 is 'ServicePoint'; expected SPId"),
    (HEADER.encode() + b"\n1,BYOT-26,SP-\xe91,x,y,900,\n", "line 2: not UTF-8 text"),
])
def test_file_level_problems_fail_the_load_and_write_nothing(world, data, message):
    result = load(data)
    assert result.status == MeterDataLoad.Status.FAILED
    assert result.errors[0]["row"] is None and message in result.errors[0]["message"]
    assert not ReportedKwDrop.objects.exists()


def test_exactly_one_of_content_or_path():
    with pytest.raises(DomainValidationError):
        kw_drop_file_load(now=NOW, actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        kw_drop_file_load(now=NOW, path="/nonexistent/kw.csv", actor=TEST_ACTOR)
    assert "cannot read /nonexistent/kw.csv" in str(exc.value.errors["path"])


def test_submitted_file_runs_as_a_job(world):
    program, event, sps = world
    data = kw_drop_file([record(event=event, service_point=sps["SP-1"], values=VALUES)])
    with TestCase.captureOnCommitCallbacks(execute=True):
        submitted = meter_data_load_submit(source="kw_drop", content=data, now=NOW, file_name="kw.csv",
                                           actor=TEST_ACTOR)
    submitted.refresh_from_db()
    assert submitted.status == MeterDataLoad.Status.COMPLETED
    assert submitted.summary == "1 new, 0 unchanged, 0 corrected, 0 rejected"
    assert current(event, sps["SP-1"]).load_id == submitted.pk


def test_upload_api_takes_a_kw_drop_file(world, admin_api, settings):
    settings.SECURE_SSL_REDIRECT = False
    program, event, sps = world
    client = admin_api
    data = kw_drop_file([record(event=event, service_point=sps["SP-1"], values=VALUES),
                         record(event=event, service_point=sps["SP-2"], values=[1.0] * 12, max_kw="9.00")])
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/api/v1/meter-data-loads/upload/", {
            "file": SimpleUploadedFile("kw.csv", data, content_type="text/csv"), "source": "kw_drop"},
            format="multipart")
    assert response.status_code == 202, response.content
    body = client.get(f"/api/v1/meter-data-loads/{response.json()['id']}/").json()
    assert body["status"] == "completed_with_errors"
    assert body["summary"] == "1 new, 0 unchanged, 0 corrected, 1 rejected"
    assert body["errors"] == [{"row": 3, "field": "MaxKwDrop", "message": "9.00 is not the largest KwDrop value "
                                                                         "(KwDrop1 = 1)"}]


def test_admin_lists_reported_records_in_constant_queries(world, admin_client, django_assert_max_num_queries):
    program, event, sps = world
    load(kw_drop_file([record(event=event, service_point=sps["SP-1"], values=VALUES)]))
    with django_assert_max_num_queries(12):
        small = admin_client.get("/admin/settlement/reportedkwdrop/")
    assert small.status_code == 200
    load(kw_drop_file([record(event=event, service_point=sps[code], values=[1.0] * 12)
                       for code in ("SP-2", "CI-1")]))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        admin_client.get("/admin/settlement/reportedkwdrop/")
    with CaptureQueriesContext(connection) as two:
        page = admin_client.get("/admin/settlement/reportedkwdrop/")
    assert len(one) == len(two)
    record_pk = ReportedKwDrop.objects.get(service_point=sps["SP-1"]).pk
    detail = admin_client.get(f"/admin/settlement/reportedkwdrop/{record_pk}/change/").content.decode()
    assert "2, 2, , 2, 1.5, 1.5, 1.5, 1.5, , , 1, 1" in detail
    html = page.content.decode()
    assert html.count('<td class="field-service_point') == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_identical_kw_drop_loads_at_once_end_as_if_one_after_the_other(world):
    """Each load locks the rows of the events it names: the second reads what the first committed."""
    import threading

    from django.db import connection

    program, event, sps = world
    data = kw_drop_file([record(event=event, service_point=sps[code], values=VALUES)
                         for code in ("SP-1", "SP-2", "CI-1")])
    barrier = threading.Barrier(2)
    results, failures = [], []

    def run():
        try:
            barrier.wait()
            results.append(load(data).summary)
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
    assert sorted(results) == ["0 new, 3 unchanged, 0 corrected, 0 rejected",
                               "3 new, 0 unchanged, 0 corrected, 0 rejected"]
    assert ReportedKwDrop.objects.count() == 3


def test_admin_shows_each_reported_interval_at_its_local_time(world, admin_client):
    """The record's page lists each interval at its start in the program's zone ("15:30 PDT"), not only a row of
    numbers whose times a person had to count out from the UTC start."""
    program, event, sps = world
    load(kw_drop_file([record(event=event, service_point=sps["SP-1"], values=VALUES)]))
    record_pk = ReportedKwDrop.objects.get(service_point=sps["SP-1"]).pk
    detail = admin_client.get(f"/admin/settlement/reportedkwdrop/{record_pk}/change/").content.decode()
    assert "<div>2026-07-15 16:00 PDT: 2 kW</div>" in detail  # the event's start, 23:00 UTC
    assert "<div>2026-07-15 16:30 PDT: (not reported)</div>" in detail
    assert "<div>2026-07-15 18:45 PDT: 1 kW</div>" in detail
    assert "Reported kW drop by interval (the program&#x27;s local time)" in detail
    assert detail.count(" PDT: ") == 12
