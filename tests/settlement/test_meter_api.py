"""API of interval data: file upload, bulk readings (jobs with records), lists with constant queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from settlement.models import IntervalDay, MeterDataLoad
from tests.factories.devices import ServicePointFactory
from tests.factories.settlement_meter import IntervalDayFactory, MeterDataLoadFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP


def test_upload_csv_runs_job_and_reports_counts(admin_api):
    ServicePointFactory(service_point_id="SP-1")
    content = b"service_point_id,interval_start,kwh\nSP-1,2026-05-14T00:00Z,1.5\nSP-1,2026-05-14T01:00Z,x\n"
    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = admin_api.post("/api/v1/meter-data-loads/upload/",
                              {"file": SimpleUploadedFile("r.csv", content), "source": "csv"}, format="multipart")
    assert resp.status_code == 202, resp.content
    load = MeterDataLoad.objects.get(pk=resp.json()["id"])
    assert load.status == "completed_with_errors" and load.summary == "1 new, 0 unchanged, 0 corrected, 1 rejected"
    detail = admin_api.get(f"/api/v1/meter-data-loads/{load.pk}/").json()
    assert detail["errors"] == [{"row": 3, "field": "kwh", "message": "not a number: 'x'"}]
    assert detail["summary"] == load.summary


def test_large_upload_is_spooled_from_its_temporary_file(admin_api, settings, monkeypatch):
    """An upload over FILE_UPLOAD_MAX_MEMORY_SIZE is a temporary file: spooled by path, never read whole."""
    from settlement.meterdata.api import views as meter_views

    ServicePointFactory(service_point_id="SP-1")
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100
    rows = "".join(f"SP-1,2026-05-14T{h:02d}:00Z,{h / 4}\n" for h in range(24))
    content = ("service_point_id,interval_start,kwh\n" + rows).encode()
    given = []
    submit = meter_views.meter_data_load_submit

    def spy(**kwargs):
        given.append(sorted(k for k in ("content", "path") if kwargs.get(k) is not None))
        return submit(**kwargs)

    monkeypatch.setattr(meter_views, "meter_data_load_submit", spy)
    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = admin_api.post("/api/v1/meter-data-loads/upload/",
                              {"file": SimpleUploadedFile("r.csv", content), "source": "csv"}, format="multipart")
    assert resp.status_code == 202, resp.content
    assert given == [["path"]]
    assert MeterDataLoad.objects.get(pk=resp.json()["id"]).summary == "24 new, 0 unchanged, 0 corrected, 0 rejected"


def test_bulk_readings_json(admin_api):
    ServicePointFactory(service_point_id="SP-1")
    body = {"readings": [
        {"service_point_id": "SP-1", "interval_start": "2026-05-14T00:00:00Z", "kwh": 1.25},
        {"service_point_id": "SP-1", "interval_start": "2026-05-14T01:00:00Z", "kwh": -0.5, "channel": "net"},
        {"service_point_id": "SP-1", "interval_start": "2026-05-14T02:00:00Z", "kwh": 1, "channel": "up"},
    ]}
    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = admin_api.post("/api/v1/meter-data-loads/bulk/", body, format="json")
    assert resp.status_code == 202
    load = MeterDataLoad.objects.get(pk=resp.json()["id"])
    assert load.summary == "2 new, 0 unchanged, 0 corrected, 1 rejected"
    assert load.errors == [{"row": 3, "field": "channel",
                            "message": "unknown flow direction 'up' (delivered, received or net)"}]
    days = admin_api.get("/api/v1/interval-days/?service_point_id=SP-1&is_current=true").json()["results"]
    assert days[0]["kwh"][:3] == [1.25, -0.5, None]


def test_bulk_validation_names_the_field(admin_api):
    resp = admin_api.post("/api/v1/meter-data-loads/bulk/", {"readings": [{"service_point_id": "SP-1"}]},
                          format="json")
    assert resp.status_code == 400
    # The one API error contract (cpm.base.api.validated): per-field messages keyed by the field's path.
    assert resp.json()["code"] == "invalid"
    assert resp.json()["readings[0].interval_start"] == ["This field is required."]


def test_green_button_upload_needs_a_service_point(admin_api):
    resp = admin_api.post("/api/v1/meter-data-loads/upload/",
                          {"file": SimpleUploadedFile("g.xml", b"<feed/>"), "source": "green_button"},
                          format="multipart")
    assert resp.status_code == 400 and "service_point_id" in resp.json()


def test_lists_run_constant_queries(admin_api, django_assert_max_num_queries):
    load = MeterDataLoadFactory()
    IntervalDayFactory(load=load)
    with django_assert_max_num_queries(6):
        assert admin_api.get("/api/v1/interval-days/").status_code == 200
    for k in range(8):
        IntervalDayFactory(day=dt.date(2026, 5, 1) + dt.timedelta(days=k))
        MeterDataLoadFactory()
    with django_assert_max_num_queries(6):
        assert len(admin_api.get("/api/v1/interval-days/").json()["results"]) == 9
    with django_assert_max_num_queries(6):
        assert len(admin_api.get("/api/v1/meter-data-loads/").json()["results"]) == 9
    assert IntervalDay.objects.count() == 9


def test_anonymous_cannot_read(api_client):
    assert api_client.get("/api/v1/interval-days/").status_code in (401, 403)
