"""``__any``: an IN list as one array parameter on PostgreSQL, the plain IN list elsewhere."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices.models import Device
from programs.models import Program
from tests.factories.devices import DeviceFactory
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db


def test_any_matches_in_with_one_parameter():
    programs = [ProgramFactory(code=f"any-{n}") for n in range(4)]
    wanted = [programs[0].pk, programs[2].pk, 10**9]
    with CaptureQueriesContext(connection) as ctx:
        got = sorted(Program.objects.filter(pk__any=wanted).values_list("code", flat=True))
    assert got == ["any-0", "any-2"]
    assert got == sorted(Program.objects.filter(pk__in=wanted).values_list("code", flat=True))
    sql = ctx.captured_queries[0]["sql"]
    if connection.vendor == "postgresql":
        assert "= ANY(" in sql and "::bigint[]" in sql
    else:
        assert " IN (" in sql


def test_any_on_a_foreign_key_and_empty_list():
    devices = [DeviceFactory() for _ in range(3)]
    aggregator_ids = [devices[1].aggregator_id]
    assert list(Device.objects.filter(aggregator_id__any=aggregator_ids).values_list("pk", flat=True)) == [
        devices[1].pk]
    assert list(Device.objects.filter(aggregator__any=aggregator_ids).values_list("pk", flat=True)) == [
        devices[1].pk]
    with CaptureQueriesContext(connection) as ctx:
        assert list(Device.objects.filter(pk__any=[])) == []
    assert len(ctx.captured_queries) == 0  # nothing can match: no query, as with __in=[]
