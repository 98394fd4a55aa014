"""CIS imports found by QA (issue 15)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cpm.models import AuditEntry
from devices.models import Premise
from enrollments.imports import import_cis
from tests.actors import TEST_ACTOR

pytestmark = pytest.mark.django_db
PREMISES = "premise_id,address_line1,city,latitude,longitude\n"


def test_geocoded_coordinates_beyond_six_decimals_are_kept_to_the_column_and_reimport_changes_nothing(now):
    """A GIS export gives 7 decimals (36.7378123, -119.7871247) or a trailing zero (36.7378120): a valid position,
    which the import refused with Django's "no more than 6 decimal places" / "9 digits in total" and so failed the
    whole file. The column keeps 6 decimals (about 0.1 m): the value is rounded to it, and the same file again is
    unchanged (no audit entry)."""
    content = PREMISES + "P-1,1 Oak St,Fresno,36.7378123,-119.7871247\nP-2,2 Oak St,Fresno,36.7378120,-119.7871255\n"
    report = import_cis(content, kind="premises", now=now, actor=TEST_ACTOR)
    assert report.counts == {"premises": {"new": 2, "updated": 0, "unchanged": 0}}
    assert list(Premise.objects.order_by("premise_id").values_list("latitude", "longitude")) == [
        (Decimal("36.737812"), Decimal("-119.787125")), (Decimal("36.737812"), Decimal("-119.787126"))]
    entries = AuditEntry.objects.count()
    again = import_cis(content, kind="premises", now=now, actor=TEST_ACTOR)
    assert again.counts == {"premises": {"new": 0, "updated": 0, "unchanged": 2}}
    assert AuditEntry.objects.count() == entries
