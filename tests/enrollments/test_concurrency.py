"""Two concurrent enrollments of the same device on PostgreSQL: exactly one wins, the other gets a 409."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection

from cpm.base.errors import ConflictError
from enrollments import services as svc
from enrollments.models import Enrollment, ProgramSubscription
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, DeviceInstallationFactory, ServicePointFactory
from tests.factories.enrollments import AccountFactory, ServiceAgreementFactory
from tests.factories.programs import ProgramFactory

NOW = dt.datetime(2026, 5, 15, 16, 0, tzinfo=dt.UTC)


def _race(calls):
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait(timeout=10)
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome is asserted
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_accounts_enrolling_the_same_device_exactly_one_wins():
    program = ProgramFactory(code="race")
    sp = ServicePointFactory()
    device = DeviceFactory()
    DeviceInstallationFactory(device=device, service_point=sp)
    # Two accounts claim the same point (a CIS overlap): the device row lock decides.
    a1, a2 = AccountFactory(), AccountFactory()
    ServiceAgreementFactory(account=a1, service_point=sp, end_date=dt.date(2030, 1, 1))
    ServiceAgreementFactory(account=a2, service_point=sp, start_date=dt.date(2021, 1, 1), end_date=dt.date(2030, 1, 1))

    def enroll(account):
        return lambda: svc.enrollment_request(account=account, service_point=sp, program=program, devices=[device],
                                              source="csr", now=NOW, actor=TEST_ACTOR)

    results = _race([enroll(a1), enroll(a2)])
    wins = [r for r in results if isinstance(r, tuple)]
    losses = [r for r in results if isinstance(r, ConflictError)]
    assert len(wins) == 1 and len(losses) == 1, results
    winner = wins[0][0]
    assert losses[0].status_code == 409
    assert losses[0].extra["conflicting_enrollment"] == winner.pk
    assert Enrollment.objects.count() == 1
    assert ProgramSubscription.objects.filter(device=device, end_date__isnull=True).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_same_device_in_two_programs_at_two_points_exactly_one_wins():
    """Different programs and service points: only the device lock / exclusive constraint stands between them."""
    device = DeviceFactory()
    sp1, sp2 = ServicePointFactory(), ServicePointFactory()
    DeviceInstallationFactory(device=device, service_point=sp1)
    account = AccountFactory()
    ServiceAgreementFactory(account=account, service_point=sp1)
    ServiceAgreementFactory(account=account, service_point=sp2)
    p1, p2 = ProgramFactory(code="race-1"), ProgramFactory(code="race-2")

    def enroll(program):
        return lambda: svc.enrollment_request(account=account, service_point=sp1, program=program, devices=[device],
                                              source="self_service", now=NOW, actor=TEST_ACTOR)

    results = _race([enroll(p1), enroll(p2)])
    assert sum(isinstance(r, tuple) for r in results) == 1, results
    assert sum(isinstance(r, ConflictError) for r in results) == 1, results
    assert ProgramSubscription.objects.filter(device=device, end_date__isnull=True).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_request_create_one_enrollment():
    program = ProgramFactory(code="retry")
    sp = ServicePointFactory()
    device = DeviceFactory()
    DeviceInstallationFactory(device=device, service_point=sp)
    account = AccountFactory()
    ServiceAgreementFactory(account=account, service_point=sp)

    def enroll():
        return svc.enrollment_request(account=account, service_point=sp, program=program, devices=[device],
                                      source="aggregator_api", external_transaction_id="tx-9", now=NOW,
                                          actor=TEST_ACTOR)

    results = _race([enroll, enroll, enroll])
    assert all(isinstance(r, tuple) for r in results), results
    assert len({r[0].pk for r in results}) == 1
    assert sorted(r[1] for r in results) == [False, False, True]
    assert Enrollment.objects.count() == 1
