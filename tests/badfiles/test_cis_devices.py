"""Every bad CIS extract and device list through every entry point: the management command, the admin import page
(superuser: 200 with the errors; a staff user without the capability: 403). There is no API upload route for CIS
extracts or device lists (only meter data has one), so there is no third door to try.

For each: no traceback, no HTTP 500, no row written (table counts and audit entries equal before and after), the
error names the expected line and field."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from enrollments.imports import import_cis
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory

from .generate import BASE_CIS
from .runner import assert_names_errors, assert_no_traceback, counts, load_manifest

pytestmark = pytest.mark.django_db

FILES = [pytest.param(e, id=f"cis/{e['file']}") for e in load_manifest("cis")] + [
    pytest.param(e, id=f"devices/{e['file']}") for e in load_manifest("devices")]


@pytest.fixture
def reference_data(now):
    import_cis(BASE_CIS, kind="combined", now=now, actor=TEST_ACTOR)
    return AggregatorFactory(code="tesla")


def _command(entry) -> list:
    if entry["kind"] == "devices":
        return ["import_devices", "--aggregator", "tesla", str(entry["path"])]
    return ["import_cis", "--kind", entry["kind"], str(entry["path"])]


def test_corpus_is_large_enough():
    assert len(FILES) >= 30


@pytest.mark.parametrize("entry", FILES)
def test_management_command(entry, reference_data):
    before = counts()
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command(*_command(entry), stdout=out, stderr=err)
    assert str(exc.value).startswith(f"{entry['path']}: ") and "nothing imported" in str(exc.value)
    assert_no_traceback(out.getvalue() + err.getvalue())
    assert_names_errors(err.getvalue(), entry)
    assert counts() == before


def _post(client, entry, aggregator):
    content = entry["path"].read_bytes()
    data = {"file": SimpleUploadedFile(entry["file"], content, content_type="text/csv")}
    if entry["kind"] == "devices":
        data["aggregator"] = aggregator.pk
        return client.post("/admin/devices/device/import/", data)
    data["kind"] = entry["kind"]
    return client.post("/admin/enrollments/customer/import/", data)


@pytest.mark.parametrize("entry", FILES)
def test_admin_import_page(entry, reference_data, client, admin_user, django_user_model):
    before = counts()
    client.force_login(admin_user)
    response = _post(client, entry, reference_data)
    assert response.status_code == 200
    page = response.content.decode()
    assert_no_traceback(page)
    if entry["form_error"]:
        assert entry["form_error"] in page
    else:
        assert "Nothing imported from " + entry["file"] in page
        assert_names_errors(page, entry)
    assert counts() == before
    clerk = django_user_model.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    client.force_login(clerk)
    assert _post(client, entry, reference_data).status_code == 403
    assert counts() == before
