"""Page counts of large lists: exact up to ESTIMATE_ABOVE rows, the planner's estimate above (PostgreSQL)."""

import datetime as dt

import pytest
from django.db import connection

from cpm.base import pagination
from cpm.base.pagination import EstimatedCountPaginator
from cpm.models import AuditEntry

pytestmark = pytest.mark.django_db
AT = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def entries(n, kind="create"):
    AuditEntry.objects.bulk_create([AuditEntry(at=AT, action=kind, object_type="test.row", object_id=str(i))
                                    for i in range(n)])


def test_small_results_are_counted_exactly():
    entries(8)  # a table never analyzed is estimated at a few pages of rows: under the threshold, counted
    assert EstimatedCountPaginator(AuditEntry.objects.all(), 5).count == 8
    assert EstimatedCountPaginator(list(range(13)), 5).count == 13  # not a queryset


def test_large_results_use_the_planner_estimate(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the estimate is PostgreSQL's EXPLAIN")
    monkeypatch.setattr(pagination, "ESTIMATE_ABOVE", 10)
    entries(40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE cpm_auditentry")
    entries(5, kind="update")  # after the statistics: the estimate does not see them, an exact count would
    assert AuditEntry.objects.count() == 45
    paginator = EstimatedCountPaginator(AuditEntry.objects.order_by("-pk"), 10)
    assert paginator.count == pagination.estimated_count(AuditEntry.objects.all()) == 40
    assert paginator.num_pages == 4
    # A filter the statistics put under the threshold is counted exactly.
    assert EstimatedCountPaginator(AuditEntry.objects.filter(object_id__in=["1", "2"]), 10).count == 4


def test_a_filter_that_can_match_nothing_counts_zero():
    """A filter Django knows matches no row (an empty ``__in``, an id beyond the column's range: the query raises
    ``EmptyResultSet`` when compiled) is a count of 0, not an error: the admin's "program" filter with an id beyond a
    bigint (``?program__id__exact=99999999999999999999``) was an HTTP 500 on PostgreSQL."""
    entries(3)
    assert EstimatedCountPaginator(AuditEntry.objects.filter(pk__in=[]), 10).count == 0
    assert EstimatedCountPaginator(AuditEntry.objects.filter(pk=10**20), 10).count == 0
    assert pagination.estimated_count(AuditEntry.objects.filter(pk__in=[])) in (None, 0)


def test_an_admin_list_filtered_by_an_id_beyond_a_bigint_is_empty_not_a_500(admin_client, settings):
    from tests.factories.programs import ProgramFactory

    settings.SECURE_SSL_REDIRECT = False
    ProgramFactory()
    page = admin_client.get("/admin/events/event/?program__id__exact=99999999999999999999")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 0
    page = admin_client.get("/admin/settlement/intervalday/?interval_minutes__exact=-1")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 0
