"""A CSV whose quote is never closed (issue 15: nothing lost). The csv module reads an unclosed quote to the end of
the file as one value: ``P1,"Smith`` followed by ``P2,Jones`` imported customer P1 named "Smith\\nP2,Jones" and never
customer P2, reported as "1 new" with no error. The import now refuses the file naming the line the quote opens on,
and nothing is written (CIS, device lists and abnormal days share ``devices.imports.read_csv``)."""

from __future__ import annotations

import datetime as dt

import pytest

from devices.imports import ImportFailed
from enrollments.imports import import_cis
from enrollments.models import Customer
from tests.actors import TEST_ACTOR

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def test_an_unclosed_quote_refuses_the_file_naming_its_line():
    text = b'cis_person_id,last_name\nP0,Brown\nP1,"Smith\nP2,Jones\nP3,Lee\n'
    with pytest.raises(ImportFailed) as failed:
        import_cis(text, kind="customers", now=NOW, actor=TEST_ACTOR, name="c.csv")
    assert failed.value.report.error_lines() == [
        "line 3: a quoted value opens here and is never closed: lines 3 to 5 would be read as one value "
        "(close the quote or double it inside the value)."]
    assert not Customer.objects.exists()


def test_a_quoted_value_spanning_lines_and_closed_still_imports():
    text = b'cis_person_id,last_name\nP1,"Smith\nJr"\nP2,Jones\n'
    report = import_cis(text, kind="customers", now=NOW, actor=TEST_ACTOR, name="c.csv")
    assert report.counts["customers"]["new"] == 2
    assert sorted(Customer.objects.values_list("cis_person_id", "last_name")) == [("P1", "Smith\nJr"),
                                                                                  ("P2", "Jones")]
