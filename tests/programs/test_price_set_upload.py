"""An interval price set loaded in the admin (issue 17.4: every workflow finishable in the UI). An incentive rule on
the basis "Interval price set ($/kWh per interval)" needs a price set, and price sets could only be created through
the API (a JSON body of rows): their admin pages were read-only with no word of how to add one, so a program
administrator could not finish such a program in the admin."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cpm.base import roles
from cpm.models import AuditEntry
from programs.models import IntervalPriceSet
from tests.factories.enrollments import staff_user
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
LA = ZoneInfo("America/Los_Angeles")
UPLOAD = "admin:programs_intervalpriceset_upload"


def _csv(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("prices.csv", text.encode(), content_type="text/csv")


def _text(response) -> str:
    return unescape(" ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split()))


@pytest.fixture
def pa(client):
    client.force_login(staff_user(roles.PROGRAM_ADMIN, "pa"))
    return client


def test_the_price_set_list_offers_the_upload_to_a_program_administrator(pa):
    html = pa.get(reverse("admin:programs_intervalpriceset_changelist")).content.decode()
    assert reverse(UPLOAD) in html and "Load an interval price set" in html
    page = pa.get(reverse(UPLOAD))
    assert page.status_code == 200
    text = _text(page)
    assert "interval_start" in text and "price_per_kwh" in text and "program's time zone" in text


def test_a_price_set_is_loaded_in_the_programs_local_time_and_audited(pa):
    program = ProgramFactory(code="tou-pilot", time_zone="America/Los_Angeles")
    response = pa.post(reverse(UPLOAD), {
        "program": program.pk, "name": "Summer peak prices", "interval_minutes": "60",
        "file": _csv("interval_start,price_per_kwh\n2026-07-15 16:00,0.45\n2026-07-15 17:00,0.60\n")})
    assert response.status_code == 302, _text(response)[-1500:]
    price_set = IntervalPriceSet.objects.get()
    assert response["Location"] == reverse("admin:programs_intervalpriceset_change", args=[price_set.pk])
    assert (price_set.program, price_set.name, price_set.interval_minutes) == (program, "Summer peak prices", 60)
    prices = list(price_set.prices.order_by("interval_start").values_list("interval_start", "price_per_kwh"))
    assert prices == [(dt.datetime(2026, 7, 15, 16, tzinfo=LA), Decimal("0.45")),
                      (dt.datetime(2026, 7, 15, 17, tzinfo=LA), Decimal("0.60"))]
    assert AuditEntry.objects.filter(object_id=str(price_set.pk), action="create").exists()


@pytest.mark.parametrize("body, expected", [
    ("interval_start,price_per_kwh\n2026-07-15 16:00,0.45\n2026-07-15 16:30,0.50\n",
     "Line 3: 2026-07-15 16:30 local is not aligned to 60-minute intervals."),
    ("interval_start,price_per_kwh\n2026-07-15 16:00,abc\n", "Line 2: 'abc' is not a number."),
    ("interval_start,price\n2026-07-15 16:00,0.45\n", "The file needs the columns interval_start, price_per_kwh"),
    ("interval_start,price_per_kwh\n", "A price set needs at least one row."),
])
def test_a_bad_file_is_refused_naming_the_line_and_nothing_is_written(pa, body, expected):
    program = ProgramFactory(time_zone="America/Los_Angeles")
    response = pa.post(reverse(UPLOAD), {"program": program.pk, "name": "Prices", "interval_minutes": "60",
                                         "file": _csv(body)})
    assert response.status_code == 200
    assert expected in _text(response)
    assert not IntervalPriceSet.objects.exists()


def test_a_csr_is_told_why_and_may_not_load_prices(client):
    client.force_login(staff_user(roles.CSR))
    assert client.get(reverse(UPLOAD)).status_code == 403


def test_the_upload_page_leads_back_to_the_price_set_list(pa):
    """Breadcrumbs Home > Interval price sets > the page (the shared ``admin/cpm/tool_page.html``)."""
    html = pa.get(reverse(UPLOAD)).content.decode()
    crumbs = html[html.index('<ol class="breadcrumbs">'):html.index("</ol>")]
    assert f'href="{reverse("admin:programs_intervalpriceset_changelist")}"' in crumbs
    assert f'href="{reverse("admin:index")}"' in crumbs and 'aria-current="page"' in crumbs
