"""Enrollment lifecycle through the services (the only write path)."""

from __future__ import annotations

import datetime as dt

import pytest

from cpm.base.errors import ConflictError, DomainValidationError, TransitionNotAllowed
from cpm.models import AuditEntry
from devices.models import Device
from devices.services import device_install, device_remove
from enrollments import eligibility as el
from enrollments import services as svc
from enrollments.choices import AccountStatus, EnrollmentStatus, ReasonCode
from enrollments.errors import EnrollmentConflictError, IneligibleError
from enrollments.models import Enrollment, ProgramSubscription, ServiceAgreement
from enrollments.signals import enrollment_ended
from events.models import Event, Participation
from tests.actors import TEST_ACTOR
from tests.factories.devices import DeviceFactory, DeviceInstallationFactory
from tests.factories.enrollments import AccountFactory, ServiceAgreementFactory
from tests.factories.programs import ProgramFactory

from .conftest import DAY, make_site

pytestmark = pytest.mark.django_db


def open_subs(device):
    return ProgramSubscription.objects.filter(device=device, end_date__isnull=True)


def test_request_creates_active_enrollment_and_subscription(site, now, admin_user):
    enrollment, created = svc.enrollment_request(**site.request_kwargs(), now=now, actor=admin_user)
    assert created and enrollment.status == EnrollmentStatus.ACTIVE
    assert enrollment.effective_date == DAY  # today in America/Los_Angeles
    sub = enrollment.subscriptions.get()
    assert (sub.device, sub.start_date, sub.end_date, sub.exclusive) == (site.device, DAY, None, True)
    audit = AuditEntry.objects.filter(object_type="enrollments.enrollment", object_id=str(enrollment.pk))
    assert set(audit.values_list("action", "to_status")) == {("create", ""), ("status_change", "active")}
    assert audit.first().actor_label == "admin"


def test_program_requiring_approval_goes_pending_then_active(site, now):
    site.program.requires_approval = True
    site.program.save()
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    assert enrollment.status == EnrollmentStatus.PENDING_APPROVAL
    # Pending already holds the device: a second account cannot take it.
    assert open_subs(site.device).count() == 1
    svc.enrollment_approve(enrollment=enrollment, now=now, actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ACTIVE
    with pytest.raises(TransitionNotAllowed):
        svc.enrollment_approve(enrollment=enrollment, now=now, actor=TEST_ACTOR)


def test_reject_releases_the_device(site, now):
    site.program.requires_approval = True
    site.program.save()
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    svc.enrollment_reject(enrollment=enrollment, reason_code=ReasonCode.INELIGIBLE_RATE, reason_text="Wrong rate",
                          now=now, actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.reason_code, enrollment.reason_text) == (
        EnrollmentStatus.REJECTED, "ineligible_rate", "Wrong rate")
    assert open_subs(site.device).count() == 0
    again, created = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    assert created and again.pk != enrollment.pk


def test_rejected_request_leaves_nothing(site, now):
    site.program.eligible_rate_codes = ["E-1"]
    site.program.save()
    counts = (Enrollment.objects.count(), ProgramSubscription.objects.count(), Device.objects.count(),
              AuditEntry.objects.count())
    with pytest.raises(IneligibleError) as exc:
        svc.enrollment_request(**site.request_kwargs(external_transaction_id="tx-1"), now=now, actor=TEST_ACTOR)
    assert exc.value.as_dict()["reasons"][0]["code"] == el.RATE_CODE_NOT_ELIGIBLE
    assert exc.value.as_dict()["service_point"][0].startswith("Service point")
    assert counts == (Enrollment.objects.count(), ProgramSubscription.objects.count(), Device.objects.count(),
                      AuditEntry.objects.count())


def test_retried_request_returns_same_enrollment(site, now):
    first, created = svc.enrollment_request(**site.request_kwargs(source="aggregator_api",
                                                                  external_transaction_id="agg-42"), now=now,
                                                                      actor=TEST_ACTOR)
    assert created
    audits = AuditEntry.objects.count()
    again, created_again = svc.enrollment_request(**site.request_kwargs(source="aggregator_api",
                                                                        external_transaction_id="agg-42"),
                                                  now=now + dt.timedelta(minutes=3), actor=TEST_ACTOR)
    assert (again.pk, created_again) == (first.pk, False)
    assert Enrollment.objects.count() == 1 and ProgramSubscription.objects.count() == 1
    assert AuditEntry.objects.count() == audits
    # Same id for another program: refused, naming the enrollment that used it.
    with pytest.raises(ConflictError) as exc:
        svc.enrollment_request(**site.request_kwargs(source="aggregator_api", external_transaction_id="agg-42",
                                                     program=ProgramFactory()), now=now, actor=TEST_ACTOR)
    assert exc.value.extra["conflicting_enrollment"] == first.pk


def test_double_enrollment_of_device_by_second_account_is_409(site, now):
    first, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    # The device moves to the neighbour's service point without unenrolling.
    neighbour = make_site(site.program)
    device_install(device=site.device, service_point=neighbour.service_point, installed_on=DAY, now=now,
                   actor=TEST_ACTOR)
    # Removal ended the first subscription; re-hold it to model a stale CIS/aggregator state.
    ProgramSubscription.objects.filter(enrollment=first).update(end_date=None)
    with pytest.raises(EnrollmentConflictError) as exc:
        svc.enrollment_request(**neighbour.request_kwargs(devices=[site.device]), now=now, actor=TEST_ACTOR)
    body = exc.value.as_dict()
    assert exc.value.status_code == 409
    assert body["code"] == el.DEVICE_ENROLLED_BY_OTHER_ACCOUNT
    assert body["conflicting_enrollment"] == first.pk and body["conflicting_program"] == site.program.code
    assert Enrollment.objects.filter(account=neighbour.account).count() == 0


def test_integrity_error_becomes_conflict_naming_enrollment(site, now, monkeypatch):
    """If a concurrent writer slipped past the checks, the DB constraint answers and we name the winner."""
    other = make_site(ProgramFactory())
    winner, _ = svc.enrollment_request(**other.request_kwargs(), now=now, actor=TEST_ACTOR)
    monkeypatch.setattr(svc.selectors, "check_request", lambda **kw: [])
    with pytest.raises(ConflictError) as exc:
        svc.enrollment_request(**site.request_kwargs(devices=[other.device]), now=now, actor=TEST_ACTOR)
    assert exc.value.extra["conflicting_enrollment"] == winner.pk
    assert exc.value.extra["conflicting_program"] == other.program.code
    assert Enrollment.objects.count() == 1


def test_transfer_after_first_account_closed_keeps_history(site, now):
    first, _ = svc.enrollment_request(**site.request_kwargs(effective_date=dt.date(2026, 1, 5)), now=now,
                                      actor=TEST_ACTOR)
    new_account = AccountFactory()
    with pytest.raises(ConflictError) as exc:
        svc.device_transfer(device=site.device, to_account=new_account, service_point=site.service_point,
                            program=site.program, source="csr", on=DAY, now=now, actor=TEST_ACTOR)
    assert exc.value.extra["conflicting_enrollment"] == first.pk
    svc.account_close(account=site.account, closed_on=dt.date(2026, 5, 10), now=now, actor=TEST_ACTOR)
    ServiceAgreementFactory(account=new_account, service_point=site.service_point, start_date=dt.date(2026, 5, 10))
    second, created = svc.device_transfer(device=site.device, to_account=new_account,
                                          service_point=site.service_point, program=site.program, source="csr",
                                          on=DAY, now=now, actor=TEST_ACTOR)
    assert created and second.status == EnrollmentStatus.ACTIVE and second.account == new_account
    first.refresh_from_db()
    assert (first.status, first.end_date, first.reason_code) == (EnrollmentStatus.UNENROLLED, dt.date(2026, 5, 10),
                                                                 ReasonCode.ACCOUNT_CLOSED)
    history = list(ProgramSubscription.objects.filter(device=site.device).order_by("start_date")
                   .values_list("enrollment_id", "start_date", "end_date"))
    assert history == [(first.pk, dt.date(2026, 1, 5), dt.date(2026, 5, 10)), (second.pk, DAY, None)]


def test_account_closed_mid_season(site, now, django_capture_on_commit_callbacks):
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(effective_date=dt.date(2026, 6, 1)), now=now,
                                           actor=TEST_ACTOR)
    event = Event.objects.create(program=site.program, **_event_window(dt.date(2026, 7, 1)))
    Participation.objects.create(event=event, subscription=enrollment.subscriptions.get(), enrollment=enrollment,
                                 device=site.device, service_point=site.service_point, start=event.start,
                                 end=event.end)
    ended = []
    enrollment_ended.connect(lambda sender, signal, **kw: ended.append(kw), weak=False, dispatch_uid="t-ended")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            svc.account_close(account=site.account, closed_on=dt.date(2026, 7, 15), now=now, actor=TEST_ACTOR)
    finally:
        enrollment_ended.disconnect(dispatch_uid="t-ended")
    site.account.refresh_from_db()
    enrollment.refresh_from_db()
    assert (site.account.status, site.account.closed_on) == (AccountStatus.CLOSED, dt.date(2026, 7, 15))
    assert (enrollment.status, enrollment.end_date) == (EnrollmentStatus.UNENROLLED, dt.date(2026, 7, 15))
    assert enrollment.subscriptions.get().end_date == dt.date(2026, 7, 15)
    assert ServiceAgreement.objects.get(account=site.account).end_date == dt.date(2026, 7, 15)
    # The July 1 event stays with this enrollment (it settles to the closed account).
    assert Participation.objects.get().enrollment_id == enrollment.pk
    assert ended == [{"enrollment_id": enrollment.pk, "program_id": site.program.pk, "status": "unenrolled",
                      "end_date": dt.date(2026, 7, 15), "reason_code": "account_closed"}]
    # Nothing carries over: the next occupant is not enrolled and may enroll the point afresh.
    newcomer = AccountFactory()
    ServiceAgreementFactory(account=newcomer, service_point=site.service_point, start_date=dt.date(2026, 7, 15))
    assert not Enrollment.objects.filter(account=newcomer).exists()
    again, _ = svc.enrollment_request(**site.request_kwargs(account=newcomer, effective_date=dt.date(2026, 7, 15)),
                                      now=now, actor=TEST_ACTOR)
    assert again.status == EnrollmentStatus.ACTIVE


def _event_window(day):
    start = dt.datetime.combine(day, dt.time(1, 0), tzinfo=dt.UTC)
    return {"name": f"Event {day}", "start": start, "end": start + dt.timedelta(hours=2),
            "notification_at": start - dt.timedelta(hours=3)}


def test_device_replacement_mid_season(site, now):
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(effective_date=dt.date(2026, 6, 1)), now=now,
                                           actor=TEST_ACTOR)
    old_sub = enrollment.subscriptions.get()
    event = Event.objects.create(program=site.program, **_event_window(dt.date(2026, 7, 1)))
    Participation.objects.create(event=event, subscription=old_sub, enrollment=enrollment, device=site.device,
                                 service_point=site.service_point, start=event.start, end=event.end)
    new = DeviceFactory()
    DeviceInstallationFactory(device=new, service_point=site.service_point, installed_on=dt.date(2026, 7, 20))
    new_sub = svc.enrollment_replace_device(enrollment=enrollment, old_device=site.device, new_device=new,
                                            on=dt.date(2026, 7, 20), now=now, actor=TEST_ACTOR)
    old_sub.refresh_from_db()
    assert (old_sub.end_date, old_sub.end_reason) == (dt.date(2026, 7, 20), ReasonCode.DEVICE_REMOVED)
    assert (new_sub.enrollment_id, new_sub.device_id, new_sub.start_date) == (enrollment.pk, new.pk,
                                                                              dt.date(2026, 7, 20))
    running = enrollment.subscriptions.filter(end_date__isnull=True)
    assert list(running.values_list("device_id", flat=True)) == [new.pk]
    # The season's event count stays with the enrollment.
    assert Participation.objects.filter(enrollment=enrollment).count() == 1
    # The old device is free from the replacement date.
    assert not open_subs(site.device).exists()


def test_two_chargers_on_one_account(now):
    program = ProgramFactory(code="ev", eligible_device_types=["ev_charger"])
    site = make_site(program, device_type="ev_charger")
    second = DeviceFactory(device_type="ev_charger")
    DeviceInstallationFactory(device=second, service_point=site.service_point)
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    sub2 = svc.enrollment_add_device(enrollment=enrollment, device=second, now=now, actor=TEST_ACTOR)
    assert sorted(enrollment.subscriptions.filter(end_date__isnull=True).values_list("device_id", flat=True)) == \
        sorted([site.device.pk, second.pk])
    assert sub2.start_date == DAY
    with pytest.raises(ConflictError):
        svc.enrollment_add_device(enrollment=enrollment, device=second, now=now, actor=TEST_ACTOR)
    # Or both at once.
    other = make_site(program, device_type="ev_charger")
    third = DeviceFactory(device_type="ev_charger")
    DeviceInstallationFactory(device=third, service_point=other.service_point)
    both, _ = svc.enrollment_request(**other.request_kwargs(devices=[third, other.device]), now=now, actor=TEST_ACTOR)
    assert both.subscriptions.count() == 2


def test_mutually_exclusive_programs(site, now):
    smart_ac = site.program
    rebate = ProgramFactory(code="ptr", requires_device=False, eligible_device_types=[])
    from programs.models import MutualExclusion

    a, b = sorted([smart_ac, rebate], key=lambda p: p.pk)
    MutualExclusion.objects.create(program_a=a, program_b=b, reason="double payment")
    svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    with pytest.raises(EnrollmentConflictError) as exc:
        svc.enrollment_request(**site.request_kwargs(program=rebate, devices=[]), now=now, actor=TEST_ACTOR)
    assert exc.value.as_dict()["code"] == el.SERVICE_POINT_IN_EXCLUSIVE_PROGRAM
    assert exc.value.as_dict()["conflicting_program"] == smart_ac.code
    # After unenrolling from June 1 the rebate program may start on June 1, not before.
    enrollment = Enrollment.objects.get(program=smart_ac)
    svc.enrollment_unenroll(enrollment=enrollment, effective_date=dt.date(2026, 6, 1), now=now,
                            reason_code=ReasonCode.CUSTOMER_REQUEST, actor=TEST_ACTOR)
    with pytest.raises(EnrollmentConflictError):
        svc.enrollment_request(**site.request_kwargs(program=rebate, devices=[], effective_date=dt.date(2026, 5, 20)),
                               now=now, actor=TEST_ACTOR)
    ptr, _ = svc.enrollment_request(**site.request_kwargs(program=rebate, devices=[],
                                                          effective_date=dt.date(2026, 6, 1)), now=now,
                                                              actor=TEST_ACTOR)
    sub = ptr.subscriptions.get()
    assert sub.device is None and sub.start_date == dt.date(2026, 6, 1)


def test_unenroll_frees_device_from_effective_date(site, now):
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    svc.enrollment_unenroll(enrollment=enrollment, effective_date=dt.date(2026, 6, 1), now=now,
                            reason_code=ReasonCode.CUSTOMER_REQUEST, reason_text="moving", actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.end_date, enrollment.reason_text) == (EnrollmentStatus.UNENROLLED,
                                                                                dt.date(2026, 6, 1), "moving")
    assert enrollment.subscriptions.get().end_date == dt.date(2026, 6, 1)
    with pytest.raises(DomainValidationError):
        svc.enrollment_unenroll(enrollment=enrollment, effective_date=DAY, now=now, reason_code="bogus",
                                actor=TEST_ACTOR)
    with pytest.raises(TransitionNotAllowed):
        svc.enrollment_unenroll(enrollment=enrollment, effective_date=DAY, now=now, actor=TEST_ACTOR)


def test_unenroll_takes_effect_at_most_a_year_ahead(site, now):
    """An unenrollment dated 2999-01-01 was accepted: the devices stayed held for 973 years. Today in the program's
    zone is 2026-05-15 (``now``): 2027-05-15 is the latest date."""
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    audited = AuditEntry.objects.count()
    for day in (dt.date(2999, 1, 1), dt.date(2027, 5, 16)):
        with pytest.raises(DomainValidationError) as exc:
            svc.enrollment_unenroll(enrollment=enrollment, effective_date=day, now=now, actor=TEST_ACTOR)
        assert exc.value.errors == {"effective_date": [
            f"{day} is more than a year ahead: an unenrollment takes effect at most one year after today "
            "(2026-05-15 in America/Los_Angeles), on or before 2027-05-15."]}
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.end_date) == (EnrollmentStatus.ACTIVE, None)
    assert AuditEntry.objects.count() == audited
    svc.enrollment_unenroll(enrollment=enrollment, effective_date=dt.date(2027, 5, 15), now=now, actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.end_date) == (EnrollmentStatus.UNENROLLED, dt.date(2027, 5, 15))


def test_unenroll_a_year_ahead_of_a_leap_day_is_february_28(site):
    leap_day = dt.datetime(2028, 2, 29, 20, tzinfo=dt.UTC)  # 12:00 in Los Angeles
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), effective_date=dt.date(2028, 2, 1), now=leap_day,
                                           actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        svc.enrollment_unenroll(enrollment=enrollment, effective_date=dt.date(2029, 3, 1), now=leap_day,
                                actor=TEST_ACTOR)
    assert exc.value.errors["effective_date"][0].endswith("on or before 2029-02-28.")
    svc.enrollment_unenroll(enrollment=enrollment, effective_date=dt.date(2029, 2, 28), now=leap_day, actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert enrollment.end_date == dt.date(2029, 2, 28)


def test_request_takes_effect_at_most_a_year_ahead(site, now):
    """An enrollment requested from 2999-01-01 was accepted: the devices and the service point were held from a
    date no event reaches. Today in the program's zone is 2026-05-15 (``now``): 2027-05-15 is the latest date."""
    counts = (Enrollment.objects.count(), ProgramSubscription.objects.count(), AuditEntry.objects.count())
    for day in (dt.date(2999, 1, 1), dt.date(2027, 5, 16)):
        with pytest.raises(DomainValidationError) as exc:
            svc.enrollment_request(**site.request_kwargs(effective_date=day), now=now, actor=TEST_ACTOR)
        assert exc.value.errors == {"effective_date": [
            f"{day} is more than a year ahead: an enrollment takes effect at most one year after today "
            "(2026-05-15 in America/Los_Angeles), on or before 2027-05-15."]}
    assert (Enrollment.objects.count(), ProgramSubscription.objects.count(), AuditEntry.objects.count()) == counts
    enrollment, created = svc.enrollment_request(**site.request_kwargs(effective_date=dt.date(2027, 5, 15)),
                                                 now=now, actor=TEST_ACTOR)
    assert created and enrollment.effective_date == dt.date(2027, 5, 15)


def test_account_closes_at_most_a_year_ahead(site, now):
    """An account closed on 2999-01-01 (API, CIS import) was accepted: it read CLOSED at once while its enrollments
    held the devices for 973 years. The latest date is a year after today in the zone of the account's programs."""
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    audited = AuditEntry.objects.count()
    for day in (dt.date(2999, 1, 1), dt.date(2027, 5, 16)):
        with pytest.raises(DomainValidationError) as exc:
            svc.account_close(account=site.account, closed_on=day, now=now, actor=TEST_ACTOR)
        assert exc.value.errors == {"closed_on": [
            f"{day} is more than a year ahead: an account closes at most one year after today "
            "(2026-05-15 in America/Los_Angeles), on or before 2027-05-15."]}
    site.account.refresh_from_db()
    enrollment.refresh_from_db()
    assert (site.account.status, site.account.closed_on) == (AccountStatus.OPEN, None)
    assert (enrollment.status, enrollment.end_date) == (EnrollmentStatus.ACTIVE, None)
    assert AuditEntry.objects.count() == audited
    svc.account_close(account=site.account, closed_on=dt.date(2027, 5, 15), now=now, actor=TEST_ACTOR)
    enrollment.refresh_from_db()
    assert (enrollment.status, enrollment.end_date) == (EnrollmentStatus.UNENROLLED, dt.date(2027, 5, 15))


def test_account_close_reads_today_in_its_programs_zone(settings):
    """At 01:00 on May 16 in New York it is still May 15 in Los Angeles (CPM_DISPLAY_TIME_ZONE): an account with a
    New York enrollment may close on 2027-05-16; one with no running enrollment is read in the display zone."""
    settings.CPM_DISPLAY_TIME_ZONE = "America/Los_Angeles"
    now = dt.datetime(2026, 5, 16, 5, 0, tzinfo=dt.UTC)
    new_york = make_site(ProgramFactory(time_zone="America/New_York"))
    svc.enrollment_request(**new_york.request_kwargs(), now=now, actor=TEST_ACTOR)
    svc.account_close(account=new_york.account, closed_on=dt.date(2027, 5, 16), now=now, actor=TEST_ACTOR)
    bare = AccountFactory()
    with pytest.raises(DomainValidationError) as exc:
        svc.account_close(account=bare, closed_on=dt.date(2027, 5, 16), now=now, actor=TEST_ACTOR)
    assert exc.value.errors["closed_on"][0].endswith(
        "(2026-05-15 in America/Los_Angeles), on or before 2027-05-15.")


def test_suspend_and_resume(site, now):
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    svc.enrollment_suspend(enrollment=enrollment, now=now, reason="device offline for 30 days", actor=TEST_ACTOR)
    assert Enrollment.objects.get().status == EnrollmentStatus.SUSPENDED
    svc.enrollment_resume(enrollment=enrollment, now=now, actor=TEST_ACTOR)
    assert Enrollment.objects.get().status == EnrollmentStatus.ACTIVE
    assert AuditEntry.objects.filter(object_type="enrollments.enrollment", reason="device offline for 30 days",
                                     to_status="suspended").exists()


def test_device_removal_ends_its_subscription(site, now):
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    device_remove(device=site.device, removed_on=dt.date(2026, 6, 10), now=now, actor=TEST_ACTOR)
    sub = enrollment.subscriptions.get()
    assert (sub.end_date, sub.end_reason) == (dt.date(2026, 6, 10), ReasonCode.DEVICE_REMOVED)
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ACTIVE


def test_service_point_only_program_enrolls_without_device(site, now):
    ptr = ProgramFactory(code="ptr", requires_device=False, eligible_device_types=[])
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(program=ptr, devices=[]), now=now, actor=TEST_ACTOR)
    assert list(enrollment.subscriptions.values_list("device_id", flat=True)) == [None]
    with pytest.raises(DomainValidationError):
        svc.enrollment_add_device(enrollment=enrollment, device=site.device, now=now, actor=TEST_ACTOR)


def test_bad_input_names_the_field(site, now):
    with pytest.raises(DomainValidationError) as exc:
        svc.enrollment_request(**site.request_kwargs(source="fax", devices=[site.device, site.device]), now=now,
                               actor=TEST_ACTOR)
    assert set(exc.value.errors) == {"source", "devices"}


def test_closing_a_program_ends_its_enrollments_and_frees_the_devices(site, now):
    """A closed program takes no events any more: its enrollments end the day it closes (reason program_closed,
    audited under the closing actor) and the devices may join another program."""
    from programs.services import program_close

    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    pending_site = make_site(site.program)
    site.program.requires_approval = True
    site.program.save()
    pending, _ = svc.enrollment_request(**pending_site.request_kwargs(), now=now, actor=TEST_ACTOR)
    assert pending.status == EnrollmentStatus.PENDING_APPROVAL
    program_close(program=site.program, now=now, actor=TEST_ACTOR, reason="programme retired")
    enrollment.refresh_from_db()
    pending.refresh_from_db()
    assert (enrollment.status, enrollment.end_date, enrollment.reason_code) == (
        EnrollmentStatus.UNENROLLED, DAY, ReasonCode.PROGRAM_CLOSED)
    assert pending.status == EnrollmentStatus.CANCELLED
    assert not open_subs(site.device).exists()
    entry = AuditEntry.objects.get(object_type="enrollments.enrollment", object_id=str(enrollment.pk),
                                   to_status=EnrollmentStatus.UNENROLLED)
    assert entry.actor_label == "system:tests" and "program_closed" in entry.reason
    successor = ProgramFactory()
    moved, _ = svc.enrollment_request(**site.request_kwargs(program=successor), now=now, actor=TEST_ACTOR)
    assert moved.status == EnrollmentStatus.ACTIVE


def test_an_aggregator_adds_or_swaps_in_only_its_own_devices_whatever_the_door(now, django_user_model):
    """The check lives in the services, not only in the API's device lookup: ecobee's user (the Aggregator role)
    calling ``enrollment_add_device`` or ``enrollment_replace_device`` with tesla's battery is refused (403
    ``aggregator_needs_own_device``) and nothing is subscribed; replacing tesla's device by its own is refused too
    (it would take tesla's device out); its own second thermostat is added."""
    from django.contrib.auth.models import Group

    from cpm.base import roles
    from cpm.base.errors import PermissionDenied
    from tests.factories.devices import AggregatorFactory

    user = django_user_model.objects.create_user("ecobee-api", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    ecobee, tesla = AggregatorFactory(code="ecobee", api_user=user), AggregatorFactory(code="tesla")
    program = ProgramFactory()
    site = make_site(program)
    Device.objects.filter(pk=site.device.pk).update(aggregator=ecobee)
    enrollment, _ = svc.enrollment_request(**site.request_kwargs(), now=now, actor=TEST_ACTOR)
    battery = DeviceFactory(aggregator=tesla)
    DeviceInstallationFactory(device=battery, service_point=site.service_point)
    with pytest.raises(PermissionDenied) as refused:
        svc.enrollment_add_device(enrollment=enrollment, device=battery, now=now, actor=user)
    assert refused.value.code == "aggregator_needs_own_device"
    with pytest.raises(PermissionDenied):
        svc.enrollment_replace_device(enrollment=enrollment, old_device=site.device, new_device=battery, now=now,
                                      actor=user)
    assert list(enrollment.subscriptions.values_list("device_id", "end_date")) == [(site.device.pk, None)]
    svc.enrollment_add_device(enrollment=enrollment, device=battery, now=now, actor=TEST_ACTOR)  # the utility may
    mine = DeviceFactory(aggregator=ecobee)
    DeviceInstallationFactory(device=mine, service_point=site.service_point)
    with pytest.raises(PermissionDenied):
        svc.enrollment_replace_device(enrollment=enrollment, old_device=battery, new_device=mine, now=now,
                                      actor=user)
    sub = svc.enrollment_add_device(enrollment=enrollment, device=mine, now=now, actor=user)
    assert sorted(enrollment.subscriptions.filter(end_date__isnull=True).values_list("device_id", flat=True)) == \
        sorted([site.device.pk, battery.pk, sub.device_id])
