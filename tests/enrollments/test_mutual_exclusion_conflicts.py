"""QA (rules): two programs declared mutually exclusive while a service point or a device is in both at
overlapping dates. The pair was accepted, and both programs' events then reserved the same customer: a device the
rules exclude was called. Declaring the pair is now refused (409) naming each service point and device in both
programs and their enrollments, so the administrator ends one first; enrollments that ended before are no
obstacle."""

import datetime as dt

import pytest

from cpm.base.errors import ConflictError
from programs import services
from programs.models import MutualExclusion
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 7, 1, 16, tzinfo=dt.UTC)


def test_exclusion_refused_while_a_service_point_and_a_device_are_in_both_programs(admin_api):
    ac = ProgramFactory(code="smart-ac", allows_co_enrollment=True)
    ev = ProgramFactory(code="ev-charge", allows_co_enrollment=True)
    in_ac = active_participant(program=ac)
    in_ev = active_participant(program=ev, service_point=in_ac.enrollment.service_point,
                               account=in_ac.enrollment.account, device_kwargs=False)
    in_ev.device = in_ac.device
    in_ev.save()
    sp = in_ac.enrollment.service_point.service_point_id
    with pytest.raises(ConflictError) as exc:
        services.mutual_exclusion_create(program_a=ac, program_b=ev, reason="same thermostats", now=NOW,
                                         actor=TEST_ACTOR)
    assert exc.value.code == "exclusion_conflict"
    pair = f"(enrollments {in_ac.enrollment_id} and {in_ev.enrollment_id})"
    assert exc.value.message == (
        f"Programs smart-ac and ev-charge cannot be made mutually exclusive: service point {sp} is enrolled in "
        f"both {pair}; device {in_ac.device_id} ({in_ac.device.serial_number}) is in both {pair}. End one of each "
        "pair first.")
    assert not MutualExclusion.objects.exists()
    r = admin_api.post("/api/v1/mutual-exclusions/", {"program_a": "smart-ac", "program_b": "ev-charge"},
                       format="json")
    assert r.status_code == 409, r.content
    assert r.json()["code"] == "exclusion_conflict"
    assert not MutualExclusion.objects.exists()


def test_exclusion_accepted_when_the_other_enrollment_ended_before(admin_api):
    ac = ProgramFactory(code="smart-ac", allows_co_enrollment=True)
    ev = ProgramFactory(code="ev-charge", allows_co_enrollment=True)
    in_ac = active_participant(program=ac)
    old = active_participant(program=ev, service_point=in_ac.enrollment.service_point,
                             account=in_ac.enrollment.account, device_kwargs=False)
    enrollment = old.enrollment
    enrollment.status, enrollment.end_date = "unenrolled", dt.date(2026, 3, 1)
    enrollment.save()
    old.end_date = dt.date(2026, 3, 1)
    old.save()
    pair = services.mutual_exclusion_create(program_a=ac, program_b=ev, now=NOW, actor=TEST_ACTOR)
    assert {pair.program_a_id, pair.program_b_id} == {ac.pk, ev.pk}
