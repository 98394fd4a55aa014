"""Issue 15: CIS and device imports refuse implausible content with ``line N: field: message``, never raising,
all or nothing; identical duplicates count once; two identical imports at once end as if run in turn."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from devices.imports import ImportFailed, import_devices
from devices.models import Device, DeviceInstallation, Premise, ServicePoint
from enrollments.imports import import_cis
from enrollments.models import Account, Customer, ServiceAgreement
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory

from .test_imports import COMBINED, DEVICES

pytestmark = pytest.mark.django_db

CUSTOMERS = "cis_person_id,first_name,last_name,email,life_support\n"


def errors_of(source, kind, now) -> list[str]:
    with pytest.raises(ImportFailed) as exc:
        import_cis(source, kind=kind, now=now, actor=TEST_ACTOR)
    assert not Customer.objects.exists() and not Premise.objects.exists()
    return exc.value.report.error_lines()


@pytest.mark.parametrize(("source", "kind", "expected"), [
    (b"", "customers", ["line 1: the file is empty."]),
    (b"\n\n", "customers", ["line 1: the file is empty."]),
    (CUSTOMERS, "customers", ["line 1: the file has a header but no data rows."]),
    ("cis_person_id,last_name,shoe_size\nP,D,9\n", "customers", [
        "line 1: unknown column(s): 'shoe_size' (expected: cis_person_id, first_name, last_name, email, phone, "
        "life_support)"]),
    ("cis_person_id,last_name,last_name\nP,D,D\n", "customers", ["line 1: column(s) named twice: last_name"]),
    ("cis_person_id\nP\n", "customers", ["line 1: missing column(s): last_name"]),
    ("cis_person_id,last_name\nP,D\n".encode("utf-16"), "customers",
     ["line 1: the file is UTF-16 text; save it as UTF-8 CSV."]),
    ((CUSTOMERS + "P-1,Jos\xe9,Diaz,,\n").encode("latin-1"), "customers",
     ["line 2: first_name: not UTF-8 text (save the file as UTF-8)."]),
    (CUSTOMERS + "P-1,Jo,Di\x00az,,\n", "customers",
     ["line 2: last_name: contains a NUL character (is this a binary file?)."]),
    (CUSTOMERS + "P-1,Jo," + "x" * 131073 + ",,\n", "customers",
     ["line 2: last_name: 131,073 characters; at most 100 allowed."]),
    (CUSTOMERS + "P-1,Jo,Diaz,,,surplus\n", "customers", ["line 2: 6 values but the header names 5 columns."]),
    (CUSTOMERS + "P-1,Jo,Diaz,,\nP-1,Jo,Diaz,,yes\n", "customers", [
        "line 2: cis_person_id: customer 'P-1' is given different values on line(s) 3 (life_support).",
        "line 3: cis_person_id: customer 'P-1' is given different values on line(s) 2 (life_support)."]),
    ("premise_id,address_line1,city,latitude,longitude\nP-1,1 Elm,Reno,1e308,-inf\n", "premises", [
        "line 2: latitude: 1e308 is not between -90 and 90 degrees."]),
    ("premise_id,address_line1,city,longitude\nP-1,1 Elm,Reno,-inf\n", "premises", [
        "line 2: longitude: -inf is not between -180 and 180 degrees."]),
])
def test_cis_file_rules(source, kind, expected, now):
    assert errors_of(source, kind, now) == expected


def test_bad_byte_after_the_first_64_kib_names_its_line(now):
    rows = "".join(f"P-{i},Jo,Diaz,,\n" for i in range(5000))
    source = (CUSTOMERS + rows + "P-x,Ren\xe9e,Diaz,,\n").encode("latin-1")
    assert len(source) > 65536
    assert errors_of(source, "customers", now) == ["line 5002: first_name: not UTF-8 text (save the file as UTF-8)."]


def test_dates_outside_the_plausible_years(now, settings):
    import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR)
    with pytest.raises(ImportFailed) as exc:
        import_cis("account_number,cis_person_id,opened_on,closed_on\nA-9,PER-1,0001-01-01,\nA-8,PER-1,2020-01-01,"
                   "9999-12-31\n", kind="accounts", now=now, actor=TEST_ACTOR)
    assert exc.value.report.error_lines() == [
        "line 2: opened_on: 0001-01-01 is outside the plausible years 1900..2100 (CPM_IMPORT_MIN_YEAR, "
        "CPM_IMPORT_MAX_YEAR).",
        "line 3: closed_on: 9999-12-31 is outside the plausible years 1900..2100 (CPM_IMPORT_MIN_YEAR, "
        "CPM_IMPORT_MAX_YEAR)."]
    settings.CPM_IMPORT_MIN_YEAR = 2021
    with pytest.raises(ImportFailed) as exc:
        import_cis("agreement_id,account_number,service_point_id,start_date\nSA-9,ACC-1,SP-1,2020-01-01\n",
                   kind="agreements", now=now, actor=TEST_ACTOR)
    assert exc.value.report.error_lines() == [
        "line 2: start_date: 2020-01-01 is outside the plausible years 2021..2100 (CPM_IMPORT_MIN_YEAR, "
        "CPM_IMPORT_MAX_YEAR)."]
    assert Account.objects.count() == 3


def test_identical_duplicates_count_once_and_lines_follow_quoted_newlines(now):
    source = CUSTOMERS + 'P-1,Jo,Diaz,,\nP-1,Jo,Diaz,,\n"P-2",Al,"Ruiz\n",,\nP-3,Bo,Chen,,maybe\n'
    with pytest.raises(ImportFailed) as exc:
        import_cis(source, kind="customers", now=now, actor=TEST_ACTOR)
    assert exc.value.report.error_lines() == ["line 6: life_support: 'maybe' is not true/false."]
    report = import_cis(source.replace("maybe", "no"), kind="customers", now=now, actor=TEST_ACTOR)
    assert report.counts == {"customers": {"new": 3, "updated": 0, "unchanged": 0}}


def test_too_many_errors_stop_the_list(now):
    source = (CUSTOMERS + "".join(f"P-{i},Jo\xe9,D,,\n" for i in range(600))).encode("latin-1")
    lines = errors_of(source, "customers", now)
    assert len(lines) == 501
    assert lines[-1] == "line 502: too many errors: stopped after 500."


def test_device_rules(now):
    import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR)
    agg = AggregatorFactory(code="tesla")
    head = "aggregator_device_id,device_type,capacity_kw,usable_energy_kwh,service_point_id,installed_on\n"
    source = head + ("a,battery,1e308,,,\nb,battery,NaN,,,\nc,battery,5,inf,,\nd,battery,-1,,,\n"
                     "e,battery,5,,SP-1,0001-01-01\nf,battery,5,,,\nf,battery,6,,,\ng,battery,5,,,\ng,battery,5,,,\n")
    with pytest.raises(ImportFailed) as exc:
        import_devices(source, aggregator=agg, now=now, actor=TEST_ACTOR)
    assert exc.value.report.error_lines() == [
        "line 2: capacity_kw: capacity_kw 1e308 is above the plausible maximum of 1,000 kW (CPM_MAX_DEVICE_KW).",
        "line 3: capacity_kw: capacity_kw must be a finite number, got 'NaN'.",
        "line 4: usable_energy_kwh: usable_energy_kwh must be a finite number, got 'inf'.",
        "line 5: capacity_kw: capacity_kw must be zero or more, got '-1'.",
        "line 6: installed_on: 0001-01-01 is outside the plausible years 1900..2100 (CPM_IMPORT_MIN_YEAR, "
        "CPM_IMPORT_MAX_YEAR).",
        "line 7: aggregator_device_id: device 'f' is given different values on line(s) 8 (capacity_kw).",
        "line 8: aggregator_device_id: device 'f' is given different values on line(s) 7 (capacity_kw).",
    ]
    assert not Device.objects.exists()
    report = import_devices(head + "g,battery,5,,,\ng,battery,5,,,\n", aggregator=agg, now=now, actor=TEST_ACTOR)
    assert report.counts == {"devices": {"new": 1, "updated": 0, "unchanged": 0}}


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
        t.join(timeout=60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_identical_imports_at_once_end_as_if_run_in_turn(now):
    from cpm.models import AuditEntry

    def cis():
        return import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR).counts

    results = _race([cis, cis])
    assert not [r for r in results if isinstance(r, Exception)], results
    firsts = [r for r in results if r["customers"]["new"]]
    seconds = [r for r in results if not r["customers"]["new"]]
    assert len(firsts) == len(seconds) == 1
    assert all(c["new"] == c["updated"] == 0 for c in seconds[0].values())
    assert (Premise.objects.count(), ServicePoint.objects.count(), Customer.objects.count(), Account.objects.count(),
            ServiceAgreement.objects.count()) == (2, 3, 2, 3, 3)
    audits = AuditEntry.objects.count()

    agg = AggregatorFactory(code="tesla")

    def devices():
        return import_devices(DEVICES, aggregator=agg, now=now, actor=TEST_ACTOR).counts

    results = _race([devices, devices])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r["devices"]["new"] for r in results) == [0, 2]
    assert sorted(r["devices"]["unchanged"] for r in results) == [0, 2]
    assert Device.objects.count() == 2 and DeviceInstallation.objects.count() == 2
    # The second import wrote nothing: as many audit entries as one import (2 devices, 2 installations, status).
    single = AuditEntry.objects.count() - audits
    import_devices(DEVICES, aggregator=agg, now=now, actor=TEST_ACTOR)
    assert AuditEntry.objects.count() - audits == single


def test_an_account_closed_more_than_a_year_ahead_is_a_row_error(now):
    """2099-12-31 is within the plausible years but would close the account for good at once while its
    enrollments ran on for 73 years: the row is refused naming closed_on, nothing written."""
    import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR)
    with pytest.raises(ImportFailed) as exc:
        import_cis("account_number,cis_person_id,opened_on,closed_on\nACC-1,PER-1,2020-01-01,2099-12-31\n",
                   kind="accounts", now=now, actor=TEST_ACTOR)
    (line,) = exc.value.report.error_lines()
    assert line.startswith("line 2: closed_on: 2099-12-31 is more than a year ahead: an account closes at most one "
                           "year after today (")
    assert Account.objects.get(account_number="ACC-1").closed_on is None
