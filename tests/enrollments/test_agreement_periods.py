"""Service agreement periods in CIS imports and the admin: one occupant of a service point at a time, periods in
order, refused in words naming the field and the other agreement (never a constraint's name); the rows of a file
apply whatever their order."""

from __future__ import annotations

import datetime as dt

import pytest

from devices.imports import ImportFailed
from enrollments.imports import import_cis
from enrollments.models import ServiceAgreement
from tests.actors import TEST_ACTOR

pytestmark = pytest.mark.django_db

BASE = ("premise_id,address_line1,city,service_point_id,cis_person_id,last_name,account_number,opened_on,"
        "agreement_id,start_date\n"
        "P-1,1 Oak St,Fresno,SP-1,PER-1,Lopez,ACC-1,2020-01-01,SA-1,2020-01-01\n"
        "P-2,2 Oak St,Fresno,SP-2,PER-2,Chen,ACC-2,2021-03-01,SA-2,2021-03-01\n")
AGREEMENTS = "agreement_id,account_number,service_point_id,start_date,end_date\n"


@pytest.fixture
def base(now):
    import_cis(BASE, kind="combined", now=now, actor=TEST_ACTOR)


def _errors(text: str, now) -> list[str]:
    before = list(ServiceAgreement.objects.order_by("pk").values_list("agreement_id", "account__account_number",
                                                                      "service_point__service_point_id",
                                                                      "start_date", "end_date"))
    with pytest.raises(ImportFailed) as exc:
        import_cis(text, kind="agreements", now=now, actor=TEST_ACTOR)
    after = list(ServiceAgreement.objects.order_by("pk").values_list("agreement_id", "account__account_number",
                                                                     "service_point__service_point_id",
                                                                     "start_date", "end_date"))
    assert after == before  # nothing written
    return exc.value.report.error_lines()


def test_end_before_start_is_refused_naming_the_dates(base, now):
    errors = _errors(AGREEMENTS + "SA-9,ACC-1,SP-2,2024-01-01,2023-01-01\n", now)
    assert errors == ["line 2: end_date: end_date 2023-01-01 is before start_date 2024-01-01."]
    assert not any("Constraint" in e for e in errors)


def test_a_second_open_agreement_at_a_service_point_names_the_occupant(base, now):
    errors = _errors(AGREEMENTS + "SA-10,ACC-2,SP-1,2024-01-01,\n", now)
    assert errors == [
        "line 2: service_point_id: service point SP-1 is served by agreement SA-1 (account ACC-1) from 2020-01-01, "
        "open-ended; a service point has one agreement at a time: end SA-1 first (end_date, in this file or "
        "before)."]


def test_overlapping_closed_periods_are_refused(base, now):
    """SA-2 serves SP-2 from 2021-03-01; an agreement of another account there from 2019 to 2023 overlaps it."""
    errors = _errors(AGREEMENTS + "SA-12,ACC-1,SP-2,2019-01-01,2023-01-01\n", now)
    assert errors == [
        "line 2: service_point_id: service point SP-2 is served by agreement SA-2 (account ACC-2) from 2021-03-01, "
        "open-ended; a service point has one agreement at a time: end SA-2 first (end_date, in this file or "
        "before)."]
    # Ended first, then the same period is still an overlap (2021-03-01 to 2023-01-01): refused, naming the end.
    import_cis(AGREEMENTS + "SA-2,ACC-2,SP-2,2021-03-01,2024-01-01\n", kind="agreements", now=now,
               actor=TEST_ACTOR)
    errors = _errors(AGREEMENTS + "SA-12,ACC-1,SP-2,2019-01-01,2023-01-01\n", now)
    assert errors == [
        "line 2: service_point_id: service point SP-2 is served by agreement SA-2 (account ACC-2) from 2021-03-01 "
        "to 2024-01-01; a service point has one agreement at a time: end SA-2 first (end_date, in this file or "
        "before)."]


def test_adjacent_periods_do_not_overlap(base, now):
    """``[start, end)``: an agreement ending 2024-01-01 and the next starting that day are in turn."""
    report = import_cis(AGREEMENTS + "SA-1,ACC-1,SP-1,2020-01-01,2024-01-01\nSA-10,ACC-2,SP-1,2024-01-01,\n",
                        kind="agreements", now=now, actor=TEST_ACTOR)
    assert report.counts == {"agreements": {"new": 1, "updated": 1, "unchanged": 0}}


def _admin_add(client, admin_user, **values):
    from devices.models import ServicePoint
    from enrollments.models import Account

    client.force_login(admin_user)
    data = {"agreement_id": values["agreement_id"],
            "account": Account.objects.get(account_number=values["account"]).pk,
            "service_point": ServicePoint.objects.get(service_point_id=values["service_point"]).pk,
            "start_date": values["start_date"], "end_date": values.get("end_date", "")}
    return client.post("/admin/enrollments/serviceagreement/add/", data, follow=True)


def test_admin_add_says_why_in_words(base, client, admin_user):
    page = _admin_add(client, admin_user, agreement_id="SA-9", account="ACC-1", service_point="SP-2",
                      start_date="2024-01-01", end_date="2023-01-01").content.decode()
    assert "The end date is before the start date." in page and "Constraint" not in page
    page = _admin_add(client, admin_user, agreement_id="SA-10", account="ACC-2", service_point="SP-1",
                      start_date="2024-01-01").content.decode()
    assert "Constraint" not in page
    assert "served by agreement SA-1 (account ACC-1) from 2020-01-01, open-ended" in page or \
        "already has an open-ended agreement" in page
    page = _admin_add(client, admin_user, agreement_id="SA-12", account="ACC-1", service_point="SP-2",
                      start_date="2019-01-01", end_date="2022-01-01").content.decode()
    assert "served by agreement SA-2 (account ACC-2) from 2021-03-01, open-ended" in page
    assert ServiceAgreement.objects.count() == 2


def test_a_change_of_occupant_applies_whatever_the_order_of_its_rows(base, now):
    """CIS sends the new occupant's agreement (SA-10, line 2) before the old one's end (SA-1, line 3): the file as a
    whole is consistent, so it is imported; again, it changes nothing."""
    text = AGREEMENTS + "SA-10,ACC-2,SP-1,2024-01-01,\nSA-1,ACC-1,SP-1,2020-01-01,2024-01-01\n"
    report = import_cis(text, kind="agreements", now=now, actor=TEST_ACTOR)
    assert report.counts == {"agreements": {"new": 1, "updated": 1, "unchanged": 0}}
    assert sorted(ServiceAgreement.objects.filter(service_point__service_point_id="SP-1").values_list(
        "agreement_id", "account__account_number", "end_date")) == [
        ("SA-1", "ACC-1", dt.date(2024, 1, 1)), ("SA-10", "ACC-2", None)]
    again = import_cis(text, kind="agreements", now=now, actor=TEST_ACTOR)
    assert again.counts == {"agreements": {"new": 0, "updated": 0, "unchanged": 2}}


def test_a_rollover_in_a_combined_file_applies_whatever_the_order(base, now):
    """A rate change: the account's new agreement first (line 2), the old one's end after (line 3)."""
    header = ("premise_id,address_line1,city,service_point_id,cis_person_id,last_name,account_number,opened_on,"
              "agreement_id,start_date,end_date\n")
    text = header + ("P-1,1 Oak St,Fresno,SP-1,PER-1,Lopez,ACC-1,2020-01-01,SA-1B,2025-06-01,\n"
                     "P-1,1 Oak St,Fresno,SP-1,PER-1,Lopez,ACC-1,2020-01-01,SA-1,2020-01-01,2025-06-01\n")
    report = import_cis(text, kind="combined", now=now, actor=TEST_ACTOR)
    assert report.counts["agreements"] == {"new": 1, "updated": 1, "unchanged": 0}
    # A file where the old agreement is not ended is still refused, on the new agreement's line.
    errors = _errors(AGREEMENTS + "SA-1,ACC-1,SP-1,2020-01-01,2025-06-01\nSA-20,ACC-2,SP-1,2025-01-01,\n", now)
    assert errors == [
        "line 3: service_point_id: service point SP-1 is served by agreement SA-1 (account ACC-1) from 2020-01-01 "
        "to 2025-06-01; a service point has one agreement at a time: end SA-1 first (end_date, in this file or "
        "before)."]
