"""No page the demo database can show contains an unrounded amount or an unlabelled time.

The quick demo runs (SQLite, eager tasks), then every admin changelist, the change and history pages of the first
and last object of every admin model, the CSR search, customer and credit pages of the demo's customers, and the
demo's HTML report are rendered. On the text a person reads (tags, scripts, styles and SVG charts removed, entities
unescaped) the test checks:

- money: no ``$`` amount with three or more decimals (``$5.58000000000000``), except a rate per unit
  (``$0.12345/kWh``);
- numbers: none with four or more trailing zeros after the decimal point (``15.0000``, ``1.000000``);
- times: every wall-clock time ``HH:MM`` (or ``HH:MM:SS``, with fractions) is followed by a zone abbreviation
  (``PDT``, ``UTC``), an offset of at most 14 hours (``+00:00``, ``-0700``) or ``Z``, or starts a range
  (``14:00-18:00 PDT``, ``14:00 – 18:00 PDT``, ``14:00 to 18:00 PDT``) whose end is labelled so. An offset's own
  digits and a range's end are not times of their own.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command

UNROUNDED_MONEY = re.compile(r"\$-?[\d,]+\.\d{3,}(?!\d*/)")
TRAILING_ZEROS = re.compile(r"\b\d+\.\d*0000\b")
# A time: not a part of an offset ("+00:00", "22:00-07:00") nor the end of a range ("14:00-18:00"), checked with
# its start.
TIME = re.compile(r"(?<![\d:+])(?<!\d-)\d{1,2}:\d{2}(?::\d{2})?(?![\d:])")
_ZONE = r"(?:\s*(?:[A-Z]{2,5}\b|[+-](?:0\d|1[0-4]):?\d{2}\b|Z\b))"  # an offset is -14:00 to +14:00
LABEL = re.compile(rf"(?:\.\d+)?(?:{_ZONE}|\s*(?:-|–|to)\s*\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:\.\d+)?{_ZONE})")
HIDDEN = re.compile(r"<(script|style|svg|textarea)\b.*?</\1>", re.S | re.I)


def visible_text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", HIDDEN.sub(" ", page)))


def problems(page: str) -> list[str]:
    text = visible_text(page)
    found = [f"unrounded amount {m.group()!r}" for m in UNROUNDED_MONEY.finditer(text)]
    found += [f"trailing zeros {m.group()!r}" for m in TRAILING_ZEROS.finditer(text)]
    for m in TIME.finditer(text):
        if not LABEL.match(text, m.end()):
            found.append(f"unlabelled time {text[max(0, m.start() - 40):m.end() + 20]!r}")
    return found


def test_the_checks_catch_what_they_name():
    assert problems("Total $5.58000000000000.") and problems("<td>15.0000</td>") and problems("at 22:00 on")
    assert problems("2026-07-15 22:00") and problems("14:00-18:00 on") and problems("2026-07-15 22:00+")
    assert not problems("2026-07-15 15:00 PDT, 14:00-18:00 PDT, 14:00 – 18:00 PDT, 23:00Z, 22:00:00-07:00")
    assert not problems("$5.58, $16,169.83, $0.12345/kWh, 1.5 kW, <script>var t='22:00'</script>")
    assert not problems('<input value="15:00:00"> 2026-07-15T22:00:00+00:00')


@pytest.mark.django_db(transaction=True)
def test_no_demo_page_shows_an_unrounded_amount_or_an_unlabelled_time(tmp_path: Path, client):
    from enrollments.models import Customer
    from events.models import Event
    from settlement.models import EventSettlement

    call_command("demo", "--quick", "--out-dir", str(tmp_path), stdout=open(tmp_path / "out.txt", "w"))  # noqa: SIM115
    user = get_user_model().objects.create_superuser("pages-check", "pages@example.com", "x")
    client.force_login(user)
    pages: dict[str, str] = {}

    def get(url: str) -> None:
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = response.content.decode()

    for model, model_admin in admin.site._registry.items():
        info = f"/admin/{model._meta.app_label}/{model._meta.model_name}"
        get(f"{info}/")
        qs = model_admin.get_queryset(_request(user)).order_by("pk")
        for obj in {qs.first(), qs.last()} - {None}:
            get(f"{info}/{obj.pk}/change/")
            get(f"{info}/{obj.pk}/history/")
    get("/csr/")
    for customer in Customer.objects.filter(accounts__enrollments__isnull=False).distinct().order_by("pk")[:6]:
        get(f"/csr/?q={customer.last_name}")
        get(f"/csr/customers/{customer.pk}/")
    for s in EventSettlement.objects.order_by("pk")[:6]:
        get(f"/csr/customers/{s.account.customer_id}/settlements/{s.pk}/")
    pages["report.html"] = (tmp_path / "report.html").read_text()

    report = {url: found for url, page in pages.items() if (found := problems(page))}
    assert not report, "\n".join(f"{url}: {found[:5]}" for url, found in report.items())
    assert len(pages) > 60

    # A 2011 event was reserved in 2011 (the scheduling instant), shown in its program's zone.
    event = Event.objects.filter(reserved_at__isnull=False).order_by("pk").first()
    assert event.reserved_at.year == 2011
    page = visible_text(pages.get(f"/admin/events/event/{event.pk}/change/")
                        or client.get(f"/admin/events/event/{event.pk}/change/").content.decode())
    assert re.search(r"2011-\d\d-\d\d \d\d:\d\d P[DS]T", page)


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request
