"""An aggregator ends only what holds its own devices, whichever door calls the service (issue 13: permission checks
in services). ``enrollment_unenroll`` already refused an aggregator ending an enrollment of another aggregator's
device; ``enrollment_cancel`` (withdrawing a pending request) and ``subscription_end`` (taking one device out) did
not: an aggregator's user could withdraw a competitor's customer's request or end its device's subscription. Both
now refuse (``PermissionDenied``, 403, code ``aggregator_foreign_devices``) and nothing changes.
"""

import datetime as dt

import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.base.errors import PermissionDenied
from cpm.models import AuditEntry
from enrollments import services
from enrollments.choices import EnrollmentStatus
from enrollments.models import Enrollment, ProgramSubscription
from programs.choices import ProgramStatus
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 5, 15, 16, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(django_user_model):
    user = django_user_model.objects.create_user("ecobee-api", password="x" * 12)
    user.groups.add(Group.objects.get(name=roles.AGGREGATOR))
    ecobee = AggregatorFactory(code="ecobee", api_user=user)
    tesla = AggregatorFactory(code="tesla")
    program = ProgramFactory(status=ProgramStatus.ACTIVE)
    theirs = active_participant(program=program, device_kwargs={"aggregator": tesla})
    mine = active_participant(program=program, device_kwargs={"aggregator": ecobee})
    pending = active_participant(program=program, device_kwargs={"aggregator": tesla}).enrollment
    Enrollment.objects.filter(pk=pending.pk).update(status=EnrollmentStatus.PENDING_APPROVAL)
    return {"user": user, "theirs": theirs, "mine": mine, "pending": pending}


def _state():
    return (sorted(Enrollment.objects.values_list("pk", "status")),
            sorted(ProgramSubscription.objects.values_list("pk", "end_date")), AuditEntry.objects.count())


def test_an_aggregator_cannot_withdraw_another_aggregators_request(world):
    before = _state()
    with pytest.raises(PermissionDenied) as refused:
        services.enrollment_cancel(enrollment=world["pending"], now=NOW, actor=world["user"])
    assert (refused.value.code, refused.value.status_code) == ("aggregator_foreign_devices", 403)
    assert _state() == before


def test_an_aggregator_cannot_end_another_aggregators_subscription(world):
    before = _state()
    with pytest.raises(PermissionDenied) as refused:
        services.subscription_end(subscription=world["theirs"], end_date=dt.date(2026, 5, 20), now=NOW,
                                  actor=world["user"])
    assert (refused.value.code, refused.value.status_code) == ("aggregator_foreign_devices", 403)
    assert _state() == before


def test_an_aggregator_ends_its_own_devices_subscription(world):
    services.subscription_end(subscription=world["mine"], end_date=dt.date(2026, 5, 20), now=NOW,
                              actor=world["user"])
    assert ProgramSubscription.objects.get(pk=world["mine"].pk).end_date == dt.date(2026, 5, 20)
