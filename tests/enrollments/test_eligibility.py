"""The eligibility engine: every reason, each on its own and all at once, through the fact-gathering selector."""

from __future__ import annotations

import datetime as dt

import pytest

from enrollments import eligibility as el
from enrollments.choices import AccountStatus
from enrollments.selectors import account_eligibility, check_request
from programs.choices import ProgramStatus
from programs.models import MutualExclusion, QualificationQuestion
from tests.factories.devices import DeviceFactory, DeviceInstallationFactory, ServicePointFactory
from tests.factories.enrollments import AccountFactory, ServiceAgreementFactory, active_participant
from tests.factories.programs import ProgramFactory

from .conftest import DAY, make_site

pytestmark = pytest.mark.django_db


def codes(site, **overrides):
    kwargs = {"program": site.program, "account": site.account, "service_point": site.service_point,
              "devices": [site.device], "on": DAY}
    kwargs.update(overrides)
    return [r.code for r in check_request(**kwargs)]


def test_eligible_site_has_no_reason(site):
    assert codes(site) == []


def test_program_not_active(site):
    site.program.status = ProgramStatus.SUSPENDED
    site.program.save()
    assert codes(site) == [el.PROGRAM_NOT_ACTIVE]


def test_outside_enrollment_window(site):
    site.program.enrollment_opens_on = dt.date(2026, 6, 1)
    site.program.save()
    assert codes(site) == [el.ENROLLMENT_NOT_OPEN_YET]
    site.program.enrollment_opens_on = dt.date(2026, 1, 1)
    site.program.enrollment_closes_on = dt.date(2026, 5, 14)
    site.program.save()
    assert codes(site) == [el.ENROLLMENT_CLOSED]
    assert codes(site, on=dt.date(2026, 5, 14)) == []  # the closing day is inclusive


def test_account_closed(site):
    site.account.status = AccountStatus.CLOSED
    site.account.closed_on = dt.date(2026, 5, 1)
    site.account.save()
    assert el.ACCOUNT_CLOSED in codes(site)


def test_no_service_agreement(site):
    other = AccountFactory()
    assert codes(site, account=other) == [el.NO_SERVICE_AGREEMENT]
    # An agreement that ended before the date does not count either.
    ServiceAgreementFactory(account=other, service_point=site.service_point, start_date=dt.date(2019, 1, 1),
                            end_date=dt.date(2019, 12, 31))
    assert codes(site, account=other) == [el.NO_SERVICE_AGREEMENT]


@pytest.mark.parametrize(("program_field", "allowed", "code"), [
    ("eligible_customer_classes", ["small_commercial"], el.CUSTOMER_CLASS_NOT_ELIGIBLE),
    ("eligible_rate_codes", ["E-1"], el.RATE_CODE_NOT_ELIGIBLE),
    ("eligible_territories", ["SOUTH"], el.TERRITORY_NOT_ELIGIBLE),
    ("eligible_substations", ["SUB-9"], el.SUBSTATION_NOT_ELIGIBLE),
    ("eligible_feeders", ["FDR-99"], el.FEEDER_NOT_ELIGIBLE),
])
def test_location_and_rate_restrictions(site, program_field, allowed, code):
    setattr(site.program, program_field, allowed)
    site.program.save()
    reasons = check_request(program=site.program, account=site.account, service_point=site.service_point,
                            devices=[site.device], on=DAY)
    assert [r.code for r in reasons] == [code]
    assert allowed[0] in reasons[0].message and reasons[0].field == "service_point"


def test_device_type_not_eligible(site):
    charger = DeviceFactory(device_type="ev_charger")
    DeviceInstallationFactory(device=charger, service_point=site.service_point)
    assert codes(site, devices=[charger]) == [el.DEVICE_TYPE_NOT_ELIGIBLE]


def test_device_not_installed_at_service_point(site):
    elsewhere = DeviceFactory()
    DeviceInstallationFactory(device=elsewhere, service_point=ServicePointFactory())
    nowhere = DeviceFactory()
    assert codes(site, devices=[elsewhere, nowhere]) == [el.DEVICE_NOT_INSTALLED, el.DEVICE_NOT_INSTALLED]
    # Installed only from next month: not installed on the date.
    later = DeviceFactory()
    DeviceInstallationFactory(device=later, service_point=site.service_point, installed_on=dt.date(2026, 6, 1))
    assert codes(site, devices=[later]) == [el.DEVICE_NOT_INSTALLED]


def test_device_not_customer_owned_fact():
    """The DB refuses utility-owned rows, so the engine's check is exercised on plain facts."""
    program = el.ProgramFacts(id=1, code="p", status="active", eligible_device_types=("thermostat",))
    site = el.SiteFacts(account_id=1, account_number="A", account_status="open", account_closed_on=None,
                        life_support=False, service_point_id=5, service_point_label="SP", has_agreement=True)
    device = el.DeviceFacts(id=9, label="SN", device_type="thermostat", ownership="utility_owned", status="active",
                            installed_service_point_id=5)
    assert [r.code for r in el.check_enrollment(program, site, [device], DAY)] == [el.DEVICE_NOT_CUSTOMER_OWNED]


def test_device_enrolled_by_other_account(site):
    other = active_participant(program=ProgramFactory(allows_co_enrollment=True))
    other_device = other.device
    # Moved here on 2026-05-01, but still subscribed by the other account.
    other_device.installations.update(removed_on=dt.date(2026, 5, 1))
    DeviceInstallationFactory(device=other_device, service_point=site.service_point,
                              installed_on=dt.date(2026, 5, 1))
    reasons = check_request(program=site.program, account=site.account, service_point=site.service_point,
                            devices=[other_device], on=DAY)
    assert [r.code for r in reasons] == [el.DEVICE_ENROLLED_BY_OTHER_ACCOUNT]
    assert reasons[0].enrollment_id == other.enrollment_id
    assert reasons[0].program_code == other.enrollment.program.code


def test_mutually_exclusive_program_for_service_point_and_device(site):
    smart_ac = ProgramFactory(code="smart-ac")
    sub = active_participant(program=smart_ac, service_point=site.service_point, account=site.account)
    # the participant's own device sits at the same point; the fixture device is also there
    a, b = sorted([smart_ac, site.program], key=lambda p: p.pk)
    MutualExclusion.objects.create(program_a=a, program_b=b)
    reasons = check_request(program=site.program, account=site.account, service_point=site.service_point,
                            devices=[sub.device], on=DAY)
    assert [r.code for r in reasons] == [el.SERVICE_POINT_IN_EXCLUSIVE_PROGRAM, el.DEVICE_IN_EXCLUSIVE_PROGRAM]
    assert all(r.program_code == "smart-ac" and r.enrollment_id == sub.enrollment_id for r in reasons)
    # Not overlapping: once the exclusive enrollment ends before the date, both reasons go.
    sub.enrollment.status = "unenrolled"
    sub.enrollment.end_date = dt.date(2026, 5, 1)
    sub.enrollment.save()
    sub.end_date = dt.date(2026, 5, 1)
    sub.save()
    assert codes(site, devices=[sub.device]) == []


def test_device_in_another_exclusive_program_without_co_enrollment(site):
    other_program = ProgramFactory()
    sub = active_participant(program=other_program, service_point=site.service_point, account=site.account)
    assert codes(site, devices=[sub.device]) == [el.DEVICE_ALREADY_SUBSCRIBED]
    site.program.allows_co_enrollment = True
    site.program.save()
    assert codes(site, devices=[sub.device]) == []


def test_already_enrolled(site):
    active_participant(program=site.program, service_point=site.service_point, account=site.account)
    assert codes(site) == [el.ALREADY_ENROLLED]


def test_life_support_exclusion(site):
    site.program.excludes_life_support = True
    site.program.save()
    site.account.customer.life_support = True
    site.account.customer.save()
    assert codes(site) == [el.LIFE_SUPPORT_EXCLUDED]


def test_required_device_missing_and_device_not_applicable(site):
    assert codes(site, devices=[]) == [el.DEVICE_REQUIRED]
    site.program.requires_device = False
    site.program.save()
    assert codes(site, devices=[]) == []
    assert codes(site) == [el.DEVICE_NOT_APPLICABLE]


def test_qualification_answers(site):
    QualificationQuestion.objects.create(program=site.program, code="has-central-ac", text="Central AC?",
                                         answer_type="boolean", qualifying_answers=[True])
    QualificationQuestion.objects.create(program=site.program, code="heating", text="Heating fuel",
                                         answer_type="choice", choices=["gas", "electric"], required=False)
    QualificationQuestion.objects.create(program=site.program, code="sq-ft", text="Floor area", answer_type="number",
                                         required=False)
    assert codes(site) == [el.ANSWER_MISSING]
    assert codes(site, answers={"has-central-ac": False}) == [el.ANSWER_NOT_QUALIFYING]
    assert codes(site, answers={"has-central-ac": "yes", "heating": "coal", "sq-ft": "big"}) == [
        el.ANSWER_INVALID, el.ANSWER_INVALID, el.ANSWER_INVALID]
    assert codes(site, answers={"has-central-ac": True, "heating": "gas", "sq-ft": 1800}) == []


def test_number_answer_in_a_qualifying_range(site):
    # programs.rules accepts {"min": x, "max": y} for number questions (Eversource CT sample: 1 to 4 homes).
    QualificationQuestion.objects.create(program=site.program, code="dwelling_units", text="Homes in the building?",
                                         answer_type="number", qualifying_answers={"min": 1, "max": 4})
    assert codes(site, answers={"dwelling_units": 1}) == []
    assert codes(site, answers={"dwelling_units": "4"}) == []
    assert codes(site, answers={"dwelling_units": 5}) == [el.ANSWER_NOT_QUALIFYING]
    assert codes(site, answers={"dwelling_units": 0}) == [el.ANSWER_NOT_QUALIFYING]


def test_every_failing_reason_is_returned_at_once(site):
    site.program.status = ProgramStatus.CLOSED
    site.program.eligible_rate_codes = ["E-1"]
    site.program.excludes_life_support = True
    site.program.save()
    site.account.customer.life_support = True
    site.account.customer.save()
    charger = DeviceFactory(device_type="ev_charger")
    QualificationQuestion.objects.create(program=site.program, code="q", text="?")
    reasons = check_request(program=site.program, account=AccountFactory(), service_point=site.service_point,
                            devices=[charger], on=DAY)
    assert {r.code for r in reasons} == {
        el.PROGRAM_NOT_ACTIVE, el.NO_SERVICE_AGREEMENT, el.RATE_CODE_NOT_ELIGIBLE, el.DEVICE_TYPE_NOT_ELIGIBLE,
        el.DEVICE_NOT_INSTALLED, el.ANSWER_MISSING}
    assert all(r.message.endswith((".", ")")) for r in reasons)


def test_account_eligibility_lists_every_program_with_reasons(site, django_assert_num_queries):
    ProgramFactory(code="ev-charge", eligible_device_types=["ev_charger"])
    ProgramFactory(code="ptr", requires_device=False, eligible_device_types=[])
    ProgramFactory(code="draft-one", status=ProgramStatus.DRAFT)
    ProgramFactory(code="closed-one", status=ProgramStatus.CLOSED)
    lines = {line.program.code: line for line in account_eligibility(account=site.account, on=DAY)}
    assert set(lines) == {site.program.code, "ev-charge", "ptr", "closed-one"}
    assert lines[site.program.code].eligible and lines[site.program.code].eligible_device_ids == [site.device.pk]
    assert [r.code for r in lines["ev-charge"].reasons] == [el.DEVICE_REQUIRED]
    assert lines["ptr"].eligible
    assert [r.code for r in lines["closed-one"].reasons] == [el.PROGRAM_NOT_ACTIVE]


def test_account_eligibility_constant_queries(site, django_assert_num_queries):
    with django_assert_num_queries(9):
        account_eligibility(account=site.account, on=DAY)
    for i in range(5):
        ProgramFactory(code=f"more-{i}")
        sp = ServicePointFactory()
        ServiceAgreementFactory(account=site.account, service_point=sp)
        for _ in range(3):
            DeviceInstallationFactory(device=DeviceFactory(), service_point=sp)
        active_participant(program=ProgramFactory(), service_point=sp, account=site.account)
    with django_assert_num_queries(9):
        lines = account_eligibility(account=site.account, on=DAY)
    # 11 programs (the site's, 5 "more-", 5 of the participants) x 6 service points
    assert len(lines) == 11 * 6
    assert sum(1 for line in lines if line.eligible) > 0


def test_make_site_helper_builds_independent_sites(db):
    a, b = make_site(), make_site()
    assert a.device.pk != b.device.pk and a.service_point.pk != b.service_point.pk


def test_a_number_answer_with_a_digit_separator_is_not_a_number(site):
    """Python reads "1_5" as 15: an answer typed so qualified for a 10-20 range."""
    QualificationQuestion.objects.create(program=site.program, code="dwelling_units", text="Homes in the building?",
                                         answer_type="number", qualifying_answers={"min": 10, "max": 20})
    assert codes(site, answers={"dwelling_units": "15"}) == []
    assert codes(site, answers={"dwelling_units": "1_5"}) == [el.ANSWER_INVALID]
