"""Issue 17.4: meter data uploaded from the admin (use case meter_data.load): the form on the loads' changelist, the
created load's page with its counts and row errors, bad files refused with the message in words (never a 500)."""

import json
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cpm.base import roles
from settlement.models import IntervalDay, MeterDataLoad
from tests.badfiles import meter_corpus
from tests.badfiles.test_meter_corpus import check_load
from tests.factories.devices import ServicePointFactory

pytestmark = pytest.mark.django_db
MANIFEST = json.loads(meter_corpus.MANIFEST.read_text())
URL = "/admin/settlement/meterdataload/upload/"
CORPUS = ["interval_csv/kwh_not_a_number.csv", "interval_csv/wrong_column_count.csv",
          "interval_csv/unknown_channel_and_bad_time.csv", "interval_csv/binary_garbage.csv",
          "interval_csv/empty.csv", "interval_csv/no_header.csv", "interval_csv/nul_in_kwh.csv",
          "interval_csv/kwh_overflow_1e400.csv"]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def population():
    for sp, customer_class in meter_corpus.SERVICE_POINTS.items():
        ServicePointFactory(service_point_id=sp, customer_class=customer_class)


def test_changelist_offers_the_upload_to_the_analyst(role_client):
    html = role_client(roles.SETTLEMENT_ANALYST).get("/admin/settlement/meterdataload/").content.decode()
    assert f'<a href="{URL}" class="workflow-tool">Upload meter data</a>' in html


def test_changelist_says_why_not_to_others(role_client):
    client = role_client(roles.AUDITOR)
    html = unescape(client.get("/admin/settlement/meterdataload/").content.decode())
    assert URL not in html
    assert ("Upload meter data: not offered to you; it needs the capability 'Load interval meter data' "
            "(meter_data.load).") in html
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"file": SimpleUploadedFile("a.csv", b"x"), "source": "csv"}).status_code == 403
    assert MeterDataLoad.objects.count() == 0


@pytest.mark.parametrize("path", CORPUS)
def test_corpus_through_the_page(path, population, role_client, django_capture_on_commit_callbacks):
    client = role_client(roles.SETTLEMENT_ANALYST)
    assert client.get(URL).status_code == 200
    expected = MANIFEST[path]
    content = (meter_corpus.ROOT / path).read_bytes()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"file": SimpleUploadedFile(path.split("/")[1], content), "source": "csv"})
    if "upload" in expected:  # refused by the upload check: the form again, with the message
        assert response.status_code == 200
        assert expected["upload"]["contains"] in unescape(response.content.decode())
        assert MeterDataLoad.objects.count() == 0 and IntervalDay.objects.count() == 0
        return
    load = MeterDataLoad.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/settlement/meterdataload/{load.pk}/change/"
    check_load(load, expected, path)
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = unescape(page.content.decode())
    assert f"Meter data load {load.pk} of {path.split('/')[1]} submitted." in html
    for error in load.errors:
        row = f"row {error['row']}, " if error["row"] is not None else ""
        assert f"{row}{error['field']}: {error['message']}" in html


def test_service_refusals_in_words(role_client):
    client = role_client(roles.SETTLEMENT_ANALYST)
    bad_zone = client.post(URL, {"file": SimpleUploadedFile("a.csv", b"service_point_id\nSP-1\n"), "source": "csv",
                                 "tz": "Mars/Olympus"})
    assert bad_zone.status_code == 200
    assert "tz: unknown IANA time zone 'Mars/Olympus'" in unescape(bad_zone.content.decode())
    no_sp = client.post(URL, {"file": SimpleUploadedFile("g.xml", b"<feed/>"), "source": "green_button"})
    assert no_sp.status_code == 200
    assert "service_point_id: is required for a Green Button file" in unescape(no_sp.content.decode())
    wrong_kind = client.post(URL, {"file": SimpleUploadedFile("g.csv", b"a,b\n"), "source": "green_button",
                                   "service_point_id": "SP-1"})
    assert wrong_kind.status_code == 200 and "Expected a XML file" in unescape(wrong_kind.content.decode())
    assert MeterDataLoad.objects.count() == 0
