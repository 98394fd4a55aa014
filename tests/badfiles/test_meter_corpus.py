"""The bad interval-data corpus (issue 15) through every entry point of meter data.

Entry points: the ``load_intervals`` management command and the upload API (``POST /api/v1/meter-data-loads/
upload/``). The admin upload page runs a sample of the corpus in ``tests/workflows/test_meter_upload_page.py``.
The bulk readings API takes JSON, not files: its bad values are tested in ``tests/settlement/test_meter_badinput.py``.

For each file: no traceback (the command ends normally or with a ``CommandError`` in words), no HTTP 500, the load's
status, new and rejected counts and every row error (row = line or IntervalReading, field, message) as the
manifest says, and the current interval days after the load exactly the good rows (none before).
"""

from __future__ import annotations

import io
import json
import math

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from cpm.models import Job
from settlement.meterdata import intervals
from settlement.models import IntervalDay, MeterDataLoad
from tests.badfiles import meter_corpus
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db
MANIFEST = json.loads(meter_corpus.MANIFEST.read_text())


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def population():
    for sp, customer_class in meter_corpus.SERVICE_POINTS.items():
        ServicePointFactory(service_point_id=sp, customer_class=customer_class)


def test_corpus_is_generated_and_large_enough(tmp_path):
    """The committed files are what the generator writes (deterministic), 30 or more, each in the manifest."""
    assert meter_corpus.write(tmp_path) == len(MANIFEST) >= 30
    for path in MANIFEST:
        assert (tmp_path / path).read_bytes() == (meter_corpus.ROOT / path).read_bytes(), path
    assert (tmp_path / "meter_manifest.json").read_text() == meter_corpus.MANIFEST.read_text()
    kinds = {path.split("/")[0] for path in MANIFEST}
    assert kinds == {"interval_csv", "greenbutton"}


def stored() -> list[list]:
    out = []
    for sp, day, channel, blob in IntervalDay.objects.filter(is_current=True).values_list(
            "service_point__service_point_id", "day", "channel", "values"):
        out.append([sp, str(day), channel, [None if math.isnan(v) else float(v) for v in intervals.decode(blob)]])
    return sorted(out)


def check_load(load: MeterDataLoad, expected: dict, path: str) -> None:
    assert load.status == expected["status"], (path, load.errors[:3])
    assert (load.readings_new, load.readings_rejected) == (expected["new"], expected["rejected"]), path
    assert load.readings_unchanged == load.readings_corrected == 0
    assert len(load.errors) == len(expected["errors"]), (path, load.errors)
    for got, want in zip(sorted(load.errors, key=lambda e: (e["row"] or 0, e["field"])),
                         sorted(expected["errors"], key=lambda e: (e["row"] or 0, e["field"])), strict=True):
        assert (got["row"], got["field"]) == (want["row"], want["field"]), (path, got)
        assert want["contains"] in got["message"], (path, got["message"])
    assert stored() == sorted(expected["stored"]), path
    job = Job.objects.get(kind="meter_data_load", subject_type="settlement.meterdataload", subject_id=str(load.pk))
    assert job.status == ("failed" if expected["status"] == "failed" else "completed"), (path, job.error)
    if expected["status"] == "failed":
        assert expected["errors"][0]["contains"] in job.error


@pytest.mark.parametrize("path", sorted(MANIFEST))
def test_command(path, population, django_capture_on_commit_callbacks):
    expected = MANIFEST[path]
    assert IntervalDay.objects.count() == 0
    args = [str(meter_corpus.ROOT / path)]
    if path.startswith("greenbutton/"):
        args += ["--service-point", "SP-1"]
    out = io.StringIO()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            call_command("load_intervals", *args, stdout=out)
        failed = None
    except CommandError as exc:  # the only way the command may end badly: an error in words
        failed = str(exc)
    load = MeterDataLoad.objects.get()
    check_load(load, expected, path)
    if expected["status"] == "failed":
        assert failed is not None and expected["errors"][0]["contains"] in failed
    else:
        assert failed is None
        unit = "IntervalReading" if path.startswith("greenbutton/") else "row"
        for error in expected["errors"][:20]:
            assert f"{unit} {error['row']}: {error['field']}: " in out.getvalue()


@pytest.mark.parametrize("path", sorted(MANIFEST))
def test_upload_api(path, population, admin_api, django_capture_on_commit_callbacks):
    expected = MANIFEST[path]
    name = path.split("/")[1]
    data = {"file": SimpleUploadedFile(name, (meter_corpus.ROOT / path).read_bytes()), "source": "csv"}
    if path.startswith("greenbutton/"):
        data |= {"source": "green_button", "service_point_id": "SP-1"}
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_api.post("/api/v1/meter-data-loads/upload/", data, format="multipart")
    if "upload" in expected:  # refused before any load, by the upload's check of the file
        assert resp.status_code == expected["upload"]["status"], resp.content
        assert expected["upload"]["contains"] in json.dumps(resp.json())
        assert MeterDataLoad.objects.count() == 0 and IntervalDay.objects.count() == 0
        return
    assert resp.status_code == 202, resp.content
    load = MeterDataLoad.objects.get(pk=resp.json()["id"])
    check_load(load, expected, path)
    detail = admin_api.get(f"/api/v1/meter-data-loads/{load.pk}/")
    assert detail.status_code == 200 and detail.json()["errors"] == load.errors
