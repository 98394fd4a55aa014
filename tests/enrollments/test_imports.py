"""CIS and device-list imports: all or nothing with row numbers, idempotent re-import, counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import CommandError, call_command

from devices.imports import ImportFailed, import_devices
from devices.models import Device, DeviceInstallation, Premise, ServicePoint
from enrollments.choices import AccountStatus, EnrollmentStatus
from enrollments.imports import import_cis
from enrollments.models import Account, Customer, Enrollment, ServiceAgreement
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db

COMBINED = """premise_id,address_line1,city,state,service_territory,substation,feeder,service_point_id,meter_number,\
customer_class,rate_code,cis_person_id,first_name,last_name,life_support,account_number,opened_on,closed_on,\
agreement_id,start_date,end_date
P-1,1 Oak St,Fresno,CA,NORTH,SUB-1,FDR-11,SP-1,M1,residential,TOU-D,PER-1,Ana,Lopez,false,ACC-1,2020-01-01,,SA-1,\
2020-01-01,
P-2,2 Oak St,Fresno,CA,NORTH,SUB-1,FDR-12,SP-2,M2,residential,E-1,PER-2,Bo,Chen,yes,ACC-2,2021-03-01,,SA-2,2021-03-01,
P-2,2 Oak St,Fresno,CA,NORTH,SUB-1,FDR-12,SP-3,M3,small_commercial,A-1,PER-2,Bo,Chen,yes,ACC-3,2021-03-01,,SA-3,\
2021-03-01,
"""


def test_combined_import_then_reimport_changes_nothing(now):
    report = import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR)
    assert report.counts == {
        "premises": {"new": 2, "updated": 0, "unchanged": 0},
        "service_points": {"new": 3, "updated": 0, "unchanged": 0},
        "customers": {"new": 2, "updated": 0, "unchanged": 0},
        "accounts": {"new": 3, "updated": 0, "unchanged": 0},
        "agreements": {"new": 3, "updated": 0, "unchanged": 0},
    }
    assert Customer.objects.get(cis_person_id="PER-2").life_support is True
    assert ServicePoint.objects.get(service_point_id="SP-3").premise.premise_id == "P-2"
    again = import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR)
    assert {e: c["unchanged"] for e, c in again.counts.items()} == {
        "premises": 2, "service_points": 3, "customers": 2, "accounts": 3, "agreements": 3}
    assert all(c["new"] == 0 and c["updated"] == 0 for c in again.counts.values())
    changed = COMBINED.replace("TOU-D", "EV2-A")
    third = import_cis(changed, kind="combined", now=now, actor=TEST_ACTOR)
    assert third.counts["service_points"] == {"new": 0, "updated": 1, "unchanged": 2}
    assert ServicePoint.objects.get(service_point_id="SP-1").rate_code == "EV2-A"


def test_any_row_error_writes_nothing_and_reports_every_row(now):
    bad = COMBINED.replace("2021-03-01,,SA-2", "March 2021,,SA-2").replace("small_commercial", "industrial-ish")
    with pytest.raises(ImportFailed) as exc:
        import_cis(bad, kind="combined", now=now, actor=TEST_ACTOR)
    errors = exc.value.report.errors
    assert [n for n, _ in errors] == [3, 4]
    assert "opened_on" in errors[0][1] and "March 2021" in errors[0][1]
    assert "customer_class" in errors[1][1]
    assert (Premise.objects.count(), Customer.objects.count(), Account.objects.count(),
            ServiceAgreement.objects.count()) == (0, 0, 0, 0)


def test_missing_columns_and_unknown_references(now):
    with pytest.raises(ImportFailed) as exc:
        import_cis("account_number,opened_on\nA,2020-01-01\n", kind="accounts", now=now, actor=TEST_ACTOR)
    assert exc.value.report.errors == [(1, "missing column(s): cis_person_id")]
    with pytest.raises(ImportFailed) as exc:
        import_cis("account_number,cis_person_id,opened_on\nA,NOPE,2020-01-01\n", kind="accounts", now=now,
                   actor=TEST_ACTOR)
    assert exc.value.report.errors == [(2, "cis_person_id: unknown customer 'NOPE'.")]


def test_separate_files_per_entity(now):
    import_cis("premise_id,address_line1,city\nP-9,9 Elm,Reno\n", kind="premises", now=now, actor=TEST_ACTOR)
    import_cis("service_point_id,premise_id,rate_code\nSP-9,P-9,E-1\n", kind="service_points", now=now,
               actor=TEST_ACTOR)
    import_cis("cis_person_id,last_name\nPER-9,Diaz\n", kind="customers", now=now, actor=TEST_ACTOR)
    import_cis("account_number,cis_person_id,opened_on\nACC-9,PER-9,2022-01-01\n", kind="accounts", now=now,
               actor=TEST_ACTOR)
    report = import_cis("agreement_id,account_number,service_point_id,start_date\nSA-9,ACC-9,SP-9,2022-01-01\n",
                        kind="agreements", now=now, actor=TEST_ACTOR)
    assert report.counts == {"agreements": {"new": 1, "updated": 0, "unchanged": 0}}
    assert ServiceAgreement.objects.get().service_point.service_point_id == "SP-9"


def test_closed_on_in_cis_closes_account_and_ends_enrollments(now):
    sub = active_participant(program=ProgramFactory())
    account = sub.enrollment.account
    csv_text = (f"account_number,cis_person_id,opened_on,closed_on\n{account.account_number},"
                f"{account.customer.cis_person_id},2020-01-01,2026-05-31\n")
    report = import_cis(csv_text, kind="accounts", now=now, actor=TEST_ACTOR)
    assert report.counts["accounts"]["updated"] == 1
    account.refresh_from_db()
    assert (account.status, account.closed_on) == (AccountStatus.CLOSED, dt.date(2026, 5, 31))
    assert Enrollment.objects.get().status == EnrollmentStatus.UNENROLLED
    assert import_cis(csv_text, kind="accounts", now=now, actor=TEST_ACTOR).counts["accounts"]["unchanged"] == 1


DEVICES = """aggregator_device_id,device_type,capacity_kw,usable_energy_kwh,manufacturer,serial_number,ownership,\
service_point_id,installed_on,status
pw-1,battery,5.0,13.5,Tesla,TG1,customer_owned,SP-1,2026-01-10,active
ev-1,ev_charger,7.2,,ChargePoint,CP1,,SP-1,2026-02-01,
"""


def test_device_list_import_idempotent(now):
    import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR)
    agg = AggregatorFactory(code="tesla")
    report = import_devices(DEVICES, aggregator=agg, now=now, actor=TEST_ACTOR)
    assert report.counts == {"devices": {"new": 2, "updated": 0, "unchanged": 0}}
    battery = Device.objects.get(aggregator_device_id="pw-1")
    assert (battery.status, str(battery.usable_energy_kwh)) == ("active", "13.500")
    assert DeviceInstallation.objects.get(device=battery).service_point.service_point_id == "SP-1"
    assert import_devices(DEVICES, aggregator=agg, now=now, actor=TEST_ACTOR).counts == {
        "devices": {"new": 0, "updated": 0, "unchanged": 2}}
    moved = DEVICES.replace("SP-1,2026-02-01", "SP-2,2026-04-01")
    assert import_devices(moved, aggregator=agg, now=now,
                          actor=TEST_ACTOR).counts["devices"] == {"new": 0, "updated": 1,
                                                                                "unchanged": 1}
    assert DeviceInstallation.objects.filter(device__aggregator_device_id="ev-1").count() == 2


def test_utility_owned_rows_rejected_with_row_number(now):
    import_cis(COMBINED, kind="combined", now=now, actor=TEST_ACTOR)
    agg = AggregatorFactory(code="tesla")
    bad = DEVICES + "ut-1,water_heater,4.5,,Rheem,R1,utility_owned,,,\nxx-1,toaster,1,,,,,,,\n"
    with pytest.raises(ImportFailed) as exc:
        import_devices(bad, aggregator=agg, now=now, actor=TEST_ACTOR)
    errors = exc.value.report.errors
    assert [n for n, _ in errors] == [4, 5]
    assert "Utility-owned" in errors[0][1] and "device_type" in errors[1][1]
    assert not Device.objects.exists()


def test_management_commands(tmp_path, now, capsys):
    cis = tmp_path / "cis.csv"
    cis.write_text(COMBINED)
    call_command("import_cis", "--kind", "combined", str(cis))
    assert "3 rows; premises: 2 new" in capsys.readouterr().out
    call_command("import_cis", "--kind", "combined", str(cis))
    assert "premises: 0 new, 0 updated, 2 unchanged" in capsys.readouterr().out
    AggregatorFactory(code="tesla")
    devices = tmp_path / "devices.csv"
    devices.write_text(DEVICES + "ut-1,water_heater,4.5,,Rheem,R1,utility_owned,,,\n")
    with pytest.raises(CommandError, match="1 row error"):
        call_command("import_devices", "--aggregator", "tesla", str(devices))
    assert "line 4: ownership: Utility-owned" in capsys.readouterr().err
    with pytest.raises(CommandError, match="Unknown aggregator"):
        call_command("import_devices", "--aggregator", "nope", str(devices))


AGREEMENTS = "agreement_id,account_number,service_point_id,start_date,end_date\n"


def test_agreement_ended_in_cis_ends_enrollments_there_and_frees_the_point(now):
    """A move-out sent by CIS as the end of the service agreement (the account stays open, e.g. it moves to another
    premise) ends the account's enrollments at that service point on that date: the next occupant can enroll."""
    program = ProgramFactory(requires_device=False, program_type="peak_time_rebate", eligible_device_types=[])
    sub = active_participant(program=program, device_kwargs=False)
    enrollment = sub.enrollment
    sa = ServiceAgreement.objects.get(account=enrollment.account, service_point=enrollment.service_point)
    row = f"{sa.agreement_id},{enrollment.account.account_number},{enrollment.service_point.service_point_id}"
    moved_out = AGREEMENTS + f"{row},{sa.start_date},2026-05-20\n"
    import_cis(moved_out, kind="agreements", now=now, actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.end_date, enrollment.reason_code) == (
        EnrollmentStatus.UNENROLLED, dt.date(2026, 5, 20), "account_closed")
    assert enrollment.account.status == AccountStatus.OPEN
    assert not enrollment.subscriptions.filter(end_date__isnull=True).exists()
    # Re-running the same file changes nothing.
    again = import_cis(moved_out, kind="agreements", now=now, actor=TEST_ACTOR)
    assert again.counts["agreements"] == {"new": 0, "updated": 0, "unchanged": 1}
    enrollment.refresh_from_db()
    assert enrollment.end_date == dt.date(2026, 5, 20)


def test_agreement_rollover_in_one_file_keeps_the_enrollment(now):
    """An agreement replaced by a new one of the same account at the same point (a rate change in CIS) is no
    move-out, whatever the order of the two rows."""
    program = ProgramFactory(requires_device=False, program_type="peak_time_rebate", eligible_device_types=[])
    sub = active_participant(program=program, device_kwargs=False)
    enrollment = sub.enrollment
    sa = ServiceAgreement.objects.get(account=enrollment.account, service_point=enrollment.service_point)
    keys = f"{enrollment.account.account_number},{enrollment.service_point.service_point_id}"
    rollover = AGREEMENTS + f"{sa.agreement_id},{keys},{sa.start_date},2026-05-20\nSA-NEW,{keys},2026-05-20,\n"
    import_cis(rollover, kind="agreements", now=now, actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.end_date) == (EnrollmentStatus.ACTIVE, None)
