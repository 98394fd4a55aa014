"""Bad values in an interval price set (issue 15: importers refuse the implausible, naming the row and field, never a
traceback). A price beyond the column (numeric(10, 5): at most 99,999.99999 $/kWh) reached the database unchecked
from the admin upload (PostgreSQL: ``numeric field overflow``, HTTP 500; SQLite: stored beyond the column), a price
with more than 5 decimals was silently rounded by PostgreSQL (kept whole by SQLite, so the two paid differently), and
an interval start in year 9999 or 0001 with an offset raised ``OverflowError`` (HTTP 500) from the API and the admin;
years outside CPM_IMPORT_MIN_YEAR..CPM_IMPORT_MAX_YEAR were stored."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from cpm.base import roles
from programs.models import IntervalPrice, IntervalPriceSet
from tests.factories.enrollments import staff_user
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
UPLOAD = "admin:programs_intervalpriceset_upload"


def _text(response) -> str:
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split()))


@pytest.fixture
def pa(client):
    client.force_login(staff_user(roles.PROGRAM_ADMIN, "pa"))
    return client


@pytest.mark.parametrize("row, expected", [
    ("2026-07-15 16:00,123456.5", "Line 2: price_per_kwh 123456.5 is more than 99999.99999 $/kWh"),
    ("2026-07-15 16:00,1e308", "Line 2: price_per_kwh 1e308 is more than 99999.99999 $/kWh"),
    ("2026-07-15 16:00,0.1234567", "Line 2: price_per_kwh 0.1234567 has more than 5 decimal places"),
    ("9999-12-31T23:00:00-05:00,0.45", "Line 2: interval_start 9999-12-31T23:00:00-05:00 is outside the plausible "
                                       "years 1900..2100"),
    ("9999-12-31 23:00,0.45", "Line 2: interval_start 9999-12-31 23:00 is outside the plausible years 1900..2100"),
    ("0001-01-01T00:00:00+05:00,0.45", "Line 2: interval_start 0001-01-01T00:00:00+05:00 is outside the plausible "
                                       "years 1900..2100"),
    ("1066-10-14 09:00,0.45", "Line 2: interval_start 1066-10-14 09:00 is outside the plausible years 1900..2100"),
])
def test_an_implausible_row_is_refused_naming_line_and_field_in_the_admin(pa, row, expected):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    body = f"interval_start,price_per_kwh\n2026-07-15 15:00,0.40\n{row}\n".replace("Line 2", "Line 3")
    response = pa.post(reverse(UPLOAD), {
        "program": program.pk, "name": "Prices", "interval_minutes": "60",
        "file": SimpleUploadedFile("p.csv", body.encode(), content_type="text/csv")})
    assert response.status_code == 200
    assert expected.replace("Line 2", "Line 3") in _text(response)
    assert not IntervalPriceSet.objects.exists() and not IntervalPrice.objects.exists()


@pytest.mark.parametrize("start", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00"])
def test_an_out_of_range_start_is_a_400_naming_the_row_in_the_api(start):
    program = ProgramFactory(code="tou", time_zone="America/Los_Angeles")
    api = APIClient()
    api.force_authenticate(staff_user(roles.PROGRAM_ADMIN, "pa-api"))
    response = api.post("/api/v1/price-sets/", {"program": "tou", "name": "P", "interval_minutes": 60,
                                                "rows": [{"interval_start": start, "price_per_kwh": "0.45"}]},
                        format="json")
    assert response.status_code == 400, response.content
    assert response.json()["rows[0].interval_start"] == [
        f"Row 1: interval_start {start} is outside the plausible years 1900..2100 "
        "(CPM_IMPORT_MIN_YEAR, CPM_IMPORT_MAX_YEAR)."]
    assert not IntervalPriceSet.objects.filter(program=program).exists()


@pytest.mark.parametrize("body, expected", [
    # a blank line (skipped by the csv reader) used to shift every later line number by one
    ("interval_start,price_per_kwh\n2026-07-15 15:00,0.40\n\n2026-07-15 16:00,abc\n", "Line 4: 'abc' is not a number."),
    # a value spanning two lines (quoted) starts the next row further down
    ('interval_start,price_per_kwh\n2026-07-15 15:00,"0.40\n"\n2026-07-15 16:00,abc\n',
     "Line 4: 'abc' is not a number."),
    # more values than columns: the third one was dropped without a word and the row loaded
    ("interval_start,price_per_kwh\n2026-07-15 15:00,0.40\n2026-07-15 16:00,0.45,0.99\n",
     "Line 3: 3 values for 2 columns (interval_start, price_per_kwh)."),
    ("interval_start,price_per_kwh\n2026-07-15 15:00\n", "Line 2: 1 value for 2 columns (interval_start, "
                                                         "price_per_kwh)."),
])
def test_the_admin_upload_names_the_line_of_the_file(pa, body, expected):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    response = pa.post(reverse(UPLOAD), {
        "program": program.pk, "name": "Prices", "interval_minutes": "60",
        "file": SimpleUploadedFile("p.csv", body.encode(), content_type="text/csv")})
    assert response.status_code == 200
    assert expected in _text(response)
    assert not IntervalPriceSet.objects.exists() and not IntervalPrice.objects.exists()
