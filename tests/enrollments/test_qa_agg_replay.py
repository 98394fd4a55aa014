"""A replayed enrollment request (QA, agg): the same external transaction id with another ``effective_date`` was
answered 200 with the first enrollment, saying the request for the other date was done when nothing was; it is
another request (409 ``external_transaction_reused`` naming both dates). A true retry (the same date, or none
given) still answers the first enrollment."""

from __future__ import annotations

import pytest

from enrollments.models import Enrollment
from tests.factories.programs import ProgramFactory

from .conftest import make_site
from .test_api import URL, aggregator_client, body

pytestmark = pytest.mark.django_db


def test_the_same_transaction_id_with_another_effective_date_is_a_409(django_user_model):
    program = ProgramFactory()
    client, aggregator = aggregator_client("ecobee", django_user_model)
    site = make_site(program)
    site.device.aggregator = aggregator
    site.device.save()
    first = client.post(URL, body(site, external_transaction_id="tx-1"), format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["effective_date"] == "2026-05-15"
    moved = client.post(URL, body(site, external_transaction_id="tx-1", effective_date="2026-06-01"), format="json")
    assert moved.status_code == 409, moved.json()
    assert moved.json()["code"] == "external_transaction_reused"
    assert moved.json()["conflicting_enrollment"] == first.json()["id"]
    assert moved.json()["detail"] == (
        f"External transaction id 'tx-1' was already used for enrollment {first.json()['id']} effective "
        "2026-05-15, not 2026-06-01.")
    retry = client.post(URL, body(site, external_transaction_id="tx-1"), format="json")
    assert (retry.status_code, retry.json()["id"]) == (200, first.json()["id"])
    undated = {k: v for k, v in body(site, external_transaction_id="tx-1").items() if k != "effective_date"}
    retry = client.post(URL, undated, format="json")
    assert (retry.status_code, retry.json()["id"]) == (200, first.json()["id"])
    assert Enrollment.objects.count() == 1
