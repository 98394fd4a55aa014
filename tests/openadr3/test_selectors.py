"""The VTN's read path (``cpm.openadr3.selectors``): filters are applied before ``skip`` / ``limit``, so a filtered
page holds the matching objects of that page, never an empty page because other objects came first."""

import datetime as dt

import pytest

from cpm.openadr3 import selectors as sel
from cpm.openadr3.models import Resource, Ven
from tests.factories.devices import AggregatorFactory

NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
BL = sel.Client(kind="bl", user=None, client_id="bl", scopes=frozenset({"read_all"}), aggregator=None)
GROUP = [{"type": "GROUP", "values": ["north"]}]


@pytest.mark.django_db
def test_vens_target_filter_applies_before_paging():
    """60 VENs, only the last 3 in GROUP north: targetType=GROUP&targetValues=north with the default limit (50)
    returns those 3 (not the empty page of the first 50 VENs), and skip=1 returns the last 2."""
    for n in range(60):
        Ven.objects.create(aggregator=AggregatorFactory(code=f"agg-{n:02d}"), ven_name=f"ven-{n:02d}",
                           targets=GROUP if n >= 57 else [], created_at=NOW, updated_at=NOW)
    wanted = sel.TargetFilter(type="GROUP", values=("north",))
    got = sel.vens_list(client=BL, ven_name=None, targets=wanted, skip=0, limit=50)
    assert [v["venName"] for v in got] == ["ven-57", "ven-58", "ven-59"]
    got = sel.vens_list(client=BL, ven_name=None, targets=wanted, skip=1, limit=50)
    assert [v["venName"] for v in got] == ["ven-58", "ven-59"]


@pytest.mark.django_db
def test_resources_target_filter_applies_before_paging():
    """A VEN with 55 resources, the 1st and the 55th in GROUP north: limit=50 returns both; skip=1 the 55th."""
    ven = Ven.objects.create(aggregator=AggregatorFactory(code="agg"), ven_name="ven", created_at=NOW,
                             updated_at=NOW)
    for n in range(55):
        Resource.objects.create(ven=ven, resource_name=f"r-{n:02d}", targets=GROUP if n in (0, 54) else [],
                                created_at=NOW, updated_at=NOW)
    wanted = sel.TargetFilter(type="GROUP", values=("north",))
    got = sel.resources_list(ven=ven, resource_name=None, targets=wanted, skip=0, limit=50)
    assert [r["resourceName"] for r in got] == ["r-00", "r-54"]
    got = sel.resources_list(ven=ven, resource_name=None, targets=wanted, skip=1, limit=50)
    assert [r["resourceName"] for r in got] == ["r-54"]
