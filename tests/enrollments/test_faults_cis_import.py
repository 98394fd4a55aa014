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


def test_a_row_cut_short_is_refused_not_read_with_defaults(now):
    """A row with fewer values than the header (a truncated line) was read with the missing columns as empty: an
    inactive service point came back active (``is_active`` defaults to true), its rate code blanked. It is refused
    naming its line, as a row with too many values is, and nothing is written."""
    import_cis("premise_id,address_line1,city\nP-1,1 Oak St,Fresno\n", kind="premises", now=now, actor=TEST_ACTOR)
    head = "service_point_id,premise_id,rate_code,is_active\n"
    import_cis(head + "SP-1,P-1,TOU-D,false\n", kind="service_points", now=now, actor=TEST_ACTOR)
    from devices.imports import ImportFailed
    from devices.models import ServicePoint

    with pytest.raises(ImportFailed) as exc:
        import_cis(head + "SP-1,P-1\nSP-2,P-1,E-1,true\n", kind="service_points", now=now, actor=TEST_ACTOR)
    assert exc.value.report.error_lines() == ["line 2: 2 values but the header names 4 columns (a row cut short?)."]
    sp = ServicePoint.objects.get()
    assert (sp.service_point_id, sp.rate_code, sp.is_active) == ("SP-1", "TOU-D", False)
