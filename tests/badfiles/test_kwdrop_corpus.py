"""The bad kW-drop corpus (issue 18.5) through every entry point of kW-drop loading: the synchronous loader
(``kw_drop_file_load``), the upload API (``POST /api/v1/meter-data-loads/upload/`` with ``source=kw_drop``: a job)
and, for a sample, the admin's upload page.

For each file: no traceback, no HTTP 500, the load's status, new and rejected counts and every row error (line,
column, message) as the manifest says, and the current records after the load exactly the good ones (none before).
"""

from __future__ import annotations

import json
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cpm.base import roles
from cpm.models import Job
from programs.choices import PerformanceMeasurement
from settlement.meterdata.kwdrop import kw_drop_file_load
from settlement.models import MeterDataLoad, ReportedKwDrop
from tests.actors import TEST_ACTOR
from tests.badfiles import kwdrop_corpus
from tests.factories.devices import ServicePointFactory
from tests.factories.enrollments import active_participant, staff_user
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory

pytestmark = pytest.mark.django_db
MANIFEST = json.loads(kwdrop_corpus.MANIFEST.read_text())
P = kwdrop_corpus.POPULATION


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def population():
    program = ProgramFactory(code=P["program"], performance_measurement=PerformanceMeasurement.AGGREGATOR_REPORTED)
    event = EventFactory(program=program, name=P["event"])
    assert (event.start.isoformat(), event.end.isoformat()) == (P["start"], P["end"])
    for code, customer_class in P["participants"].items():
        sp = ServicePointFactory(service_point_id=code, customer_class=customer_class)
        ParticipationFactory(event=event, subscription=active_participant(program=program, service_point=sp))
    for code, customer_class in P["bystanders"].items():
        ServicePointFactory(service_point_id=code, customer_class=customer_class)
    return event


def test_corpus_is_generated_and_large_enough(tmp_path):
    """The committed files are what the generator writes (deterministic), 30 or more, each in the manifest."""
    assert kwdrop_corpus.write(tmp_path) == len(MANIFEST) >= 30
    for path in MANIFEST:
        assert (tmp_path / path).read_bytes() == (kwdrop_corpus.ROOT / path).read_bytes(), path
    assert (tmp_path / "kw_drop_manifest.json").read_text() == kwdrop_corpus.MANIFEST.read_text()


def stored() -> list[list]:
    return sorted([sp, values] for sp, values in ReportedKwDrop.objects.filter(is_current=True).values_list(
        "service_point__service_point_id", "kw_drop"))


def check_load(load: MeterDataLoad, expected: dict, path: str) -> None:
    assert load.source == "kw_drop"
    assert load.status == expected["status"], (path, load.errors[:3])
    assert (load.readings_new, load.readings_rejected) == (expected["new"], expected["rejected"]), path
    assert load.readings_unchanged == load.readings_corrected == 0
    assert len(load.errors) == len(expected["errors"]), (path, load.errors)
    for got, want in zip(load.errors, expected["errors"], strict=True):
        assert (got["row"], got["field"]) == (want["row"], want["field"]), (path, got)
        assert want["contains"] in got["message"], (path, got["message"])
    assert stored() == sorted(expected["stored"]), path
    job = Job.objects.get(kind="meter_data_load", subject_type="settlement.meterdataload", subject_id=str(load.pk))
    assert job.status == ("failed" if expected["status"] == "failed" else "completed"), (path, job.error)


@pytest.mark.parametrize("path", sorted(MANIFEST))
def test_loader(path, population, now):
    expected = MANIFEST[path]
    load = kw_drop_file_load(content=(kwdrop_corpus.ROOT / path).read_bytes(), now=now, file_name=path,
                             actor=TEST_ACTOR)
    check_load(load, expected, path)


@pytest.mark.parametrize("path", sorted(MANIFEST))
def test_upload_api(path, population, admin_api, django_capture_on_commit_callbacks):
    expected = MANIFEST[path]
    data = {"file": SimpleUploadedFile(path.split("/")[1], (kwdrop_corpus.ROOT / path).read_bytes()),
            "source": "kw_drop"}
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_api.post("/api/v1/meter-data-loads/upload/", data, format="multipart")
    if "upload" in expected:  # refused before any load, by the upload's check of the file
        assert resp.status_code == expected["upload"]["status"], resp.content
        assert expected["upload"]["contains"] in json.dumps(resp.json())
        assert MeterDataLoad.objects.count() == 0 and ReportedKwDrop.objects.count() == 0
        return
    assert resp.status_code == 202, resp.content
    load = MeterDataLoad.objects.get(pk=resp.json()["id"])
    check_load(load, expected, path)
    assert admin_api.get(f"/api/v1/meter-data-loads/{load.pk}/").json()["errors"] == load.errors


SAMPLE = ["kw_drop/several_problems_one_line.csv", "kw_drop/wrong_header.csv", "kw_drop/conflicting_duplicate.csv"]


@pytest.mark.parametrize("path", SAMPLE)
def test_admin_upload_page(path, population, client, django_capture_on_commit_callbacks):
    expected = MANIFEST[path]
    client.force_login(staff_user(roles.SETTLEMENT_ANALYST))
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post("/admin/settlement/meterdataload/upload/", {
            "file": SimpleUploadedFile(path.split("/")[1], (kwdrop_corpus.ROOT / path).read_bytes()),
            "source": "kw_drop"})
    assert resp.status_code == 302, resp.content.decode()[:2000]
    load = MeterDataLoad.objects.get()
    check_load(load, expected, path)
    page = unescape(client.get(resp["Location"]).content.decode())
    assert expected["errors"][0]["contains"] in page
