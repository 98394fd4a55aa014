"""Bad abnormal-day input (issue 15: refused naming the field or line; conflicting duplicates of one key within a
file name each other's lines, as the CIS and device imports do). The API stored an abnormal day in year 0001 or 9999
(the CSV import refuses those years), and a file giving one day and target two different reasons reported only the
second row, as "already recorded ... delete it first" of a record that did not exist (it was the file's own first
row, rolled back with the rest)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from settlement.models import AbnormalDay

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1899-12-31", "2101-01-01"])
def test_the_api_refuses_an_implausible_day_naming_the_field(admin_api, day):
    r = admin_api.post("/api/v1/abnormal-days/", {"day": day, "scope": "feeder", "network_id": "F-12",
                                                   "reason": "storm"}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["day"] == [f"{day} is outside the plausible years 1900..2100 (CPM_IMPORT_MIN_YEAR, "
                               "CPM_IMPORT_MAX_YEAR)."]
    assert not AbnormalDay.objects.exists()


def test_a_file_giving_one_day_and_target_two_reasons_names_both_lines(admin_api):
    text = ("day,scope,target,reason\n2026-07-13,feeder,F-1,storm\n2026-07-14,feeder,F-1,storm\n"
            "2026-07-13,feeder,F-1,heat wave\n")
    r = admin_api.post("/api/v1/abnormal-days/import/",
                       {"file": SimpleUploadedFile("days.csv", text.encode(), content_type="text/csv")},
                       format="multipart")
    assert r.status_code == 400
    assert r.json()["errors"] == [
        "line 2: day, scope, target: abnormal day '2026-07-13, feeder, F-1' is given different values on line(s) 4 "
        "(reason).",
        "line 4: day, scope, target: abnormal day '2026-07-13, feeder, F-1' is given different values on line(s) 2 "
        "(reason)."]
    assert not AbnormalDay.objects.exists()


def test_identical_repeats_count_once_and_a_rerun_changes_nothing(admin_api):
    text = "day,scope,target,reason\n2026-07-13,feeder,F-1,storm\n2026-07-13,feeder,F-1,storm\n"
    for expected in ({"new": 1}, {"unchanged": 1}):
        r = admin_api.post("/api/v1/abnormal-days/import/",
                           {"file": SimpleUploadedFile("days.csv", text.encode(), content_type="text/csv")},
                           format="multipart")
        assert r.status_code == 200, r.content
        assert {k: v for k, v in r.json()["counts"]["abnormal_day"].items() if v} == expected
        assert AbnormalDay.objects.count() == 1


@pytest.mark.parametrize("name, body, expected", [
    ("days.csv", b"day,scope,target,reason\n" + b"2026-07-13,feeder,F-1,storm\n" * 10,
     "The file is 304 bytes; the limit is 200 bytes."),
    ("days.xlsx", b"day,scope,target,reason\n2026-07-13,feeder,F-1,storm\n", "Expected a CSV file (.csv, .txt)."),
])
def test_the_api_import_applies_the_upload_limits_of_every_other_upload(admin_api, settings, name, body, expected):
    """The abnormal-day import was the one upload of the API without the size and kind check
    (``CPM_MAX_UPLOAD_BYTES``): a file of any size was read whole into memory and parsed."""
    settings.CPM_MAX_UPLOAD_BYTES = 200
    r = admin_api.post("/api/v1/abnormal-days/import/",
                       {"file": SimpleUploadedFile(name, body, content_type="text/csv")}, format="multipart")
    assert r.status_code == 400, r.content
    assert r.json()["file"] == [expected]
    assert not AbnormalDay.objects.exists()
