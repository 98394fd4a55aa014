"""Reservations follow the customer (issue 16, point 1): each release trigger, the re-check at dispatch, the
replacement device, and the end-to-end CSR unenroll -> dispatch.

The default event is 2026-07-15 15:00-18:00 America/Los_Angeles (a Wednesday), in the Summer 2026 season; the
participants are enrolled from 2026-01-01; ``july_now`` is 2026-07-14 16:00 UTC. A released participation has the
status ``cancelled`` (``events.services.RELEASED``) and its ledger row the decision ``released``."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from cpm.base import roles
from cpm.models import AuditEntry
from devices.choices import DeviceStatus
from devices.models import Device
from devices.services import device_remove, device_set_status
from enrollments.choices import EnrollmentStatus, ReasonCode
from enrollments.models import Enrollment, ProgramSubscription
from enrollments.services import (
    account_close,
    enrollment_replace_device,
    enrollment_unenroll,
    subscription_end,
)
from events import services
from events.choices import DispatchKind, EventStatus, ParticipationStatus
from events.choices import ReservationDecision as D
from events.models import DispatchMessage, Participation, Reservation
from events.services import release
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory, DeviceFactory, DeviceInstallationFactory
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, UnavailabilityFactory, la

pytestmark = pytest.mark.django_db

RELEASED = ParticipationStatus.CANCELLED


@pytest.fixture
def clock(monkeypatch, july_now):
    """The receivers' clock reads ``july_now``."""
    monkeypatch.setattr(release, "clock", lambda: july_now)
    return july_now


@pytest.fixture
def agg():
    return AggregatorFactory(code="acme-cloud")


def participant(program, now, agg):
    return active_participant(program=program, device_kwargs={"last_seen_at": now, "aggregator": agg})


def reserved(program, now, *, n, agg, **event_kw):
    """``n`` participants and a SCHEDULED event with all of them reserved."""
    subs = [participant(program, now, agg) for _ in range(n)]
    event = EventFactory(program=program, status=EventStatus.SCHEDULED, **event_kw)
    services.event_reserve(event=event, now=now, actor=TEST_ACTOR)
    assert Participation.objects.filter(event=event, status=ParticipationStatus.RESERVED).count() == n
    return event, subs


def state(event, sub):
    """(participation status, ledger decision, ledger detail) of ``sub`` in ``event``."""
    p = Participation.objects.get(event=event, subscription=sub)
    r = Reservation.objects.get(event=event, subscription=sub)
    return p.status, r.decision, r.detail


def release_audit(event, sub):
    p = Participation.objects.get(event=event, subscription=sub)
    return list(AuditEntry.objects.filter(object_type="events.participation", object_id=str(p.pk),
                                          to_status=RELEASED).values_list("actor_label", "from_status", "reason"))


def test_unenroll_releases_the_reservation_at_once(program, july_now, clock, agg,
                                                   django_capture_on_commit_callbacks):
    """A and B are reserved for the 07-15 event. A is unenrolled from 2026-07-14 (customer request): the event's
    last local day 07-15 >= 07-14, so A's participation goes reserved -> cancelled (released), its ledger row
    RESERVED -> RELEASED "Released: enrollment ended on 2026-07-14 (customer request).", one audit entry by the
    receiver's system actor. B is untouched (1 reserved). The event was not sent: no message."""
    event, (a, b) = reserved(program, july_now, n=2, agg=agg)
    with django_capture_on_commit_callbacks(execute=True):
        enrollment_unenroll(enrollment=a.enrollment, effective_date=dt.date(2026, 7, 14), now=july_now,
                            actor=TEST_ACTOR)
    why = "Released: enrollment ended on 2026-07-14 (customer request)."
    assert state(event, a) == (RELEASED, D.RELEASED, why)
    assert state(event, b)[:2] == (ParticipationStatus.RESERVED, D.RESERVED)
    assert release_audit(event, a) == [("system:events.release", ParticipationStatus.RESERVED, why)]
    assert not DispatchMessage.objects.exists()
    assert Reservation.objects.filter(event=event).count() == 2  # one ledger row per candidate, still


def test_unenroll_after_the_event_keeps_it(program, july_now, clock, agg, django_capture_on_commit_callbacks):
    """Unenrolled from 2026-07-16: the 07-15 event ends before (last local day 07-15 < 07-16), so it stays
    reserved; 0 released."""
    event, (a,) = reserved(program, july_now, n=1, agg=agg)
    with django_capture_on_commit_callbacks(execute=True):
        enrollment_unenroll(enrollment=a.enrollment, effective_date=dt.date(2026, 7, 16), now=july_now,
                            actor=TEST_ACTOR)
    assert state(event, a)[:2] == (ParticipationStatus.RESERVED, D.RESERVED)


def test_account_close_releases(program, july_now, clock, agg, django_capture_on_commit_callbacks):
    """The account closes on 2026-07-15 (move-out): the enrollment is unenrolled from 07-15 with reason
    account_closed, whose label is "Account closed / moved out"; the 07-15 event is released."""
    event, (a,) = reserved(program, july_now, n=1, agg=agg)
    with django_capture_on_commit_callbacks(execute=True):
        account_close(account=a.enrollment.account, closed_on=dt.date(2026, 7, 15), now=july_now, actor=TEST_ACTOR)
    assert state(event, a) == (RELEASED, D.RELEASED,
                               "Released: enrollment ended on 2026-07-15 (account closed / moved out).")


def test_subscription_end_releases(program, july_now, clock, agg, django_capture_on_commit_callbacks):
    """The subscription ends on 2026-07-15 (reason device_removed, label "Device removed") while the enrollment
    continues: released with "Released: subscription ended on 2026-07-15 (device removed)."."""
    event, (a,) = reserved(program, july_now, n=1, agg=agg)
    with django_capture_on_commit_callbacks(execute=True):
        subscription_end(subscription=a, end_date=dt.date(2026, 7, 15), now=july_now, actor=TEST_ACTOR)
    assert state(event, a) == (RELEASED, D.RELEASED, "Released: subscription ended on 2026-07-15 (device removed).")
    assert Enrollment.objects.get(pk=a.enrollment_id).status == EnrollmentStatus.ACTIVE


def test_device_removed_releases(program, july_now, clock, agg, django_capture_on_commit_callbacks):
    """The device is uninstalled on 2026-07-15: devices -> enrollments end its subscription that day (reason
    device_removed) -> events release the 07-15 participation; the message names the subscription end."""
    event, (a,) = reserved(program, july_now, n=1, agg=agg)
    with django_capture_on_commit_callbacks(execute=True):
        device_remove(device=a.device, removed_on=dt.date(2026, 7, 15), now=july_now, actor=TEST_ACTOR)
    assert ProgramSubscription.objects.get(pk=a.pk).end_date == dt.date(2026, 7, 15)
    assert state(event, a) == (RELEASED, D.RELEASED, "Released: subscription ended on 2026-07-15 (device removed).")


def test_device_release_names_the_programs_local_day(program, july_now, agg, monkeypatch,
                                                    django_capture_on_commit_callbacks):
    """The device is set inactive at 2026-07-15 03:00 UTC, still the evening of 07-14 in Los Angeles (the program's
    zone): the reason names 2026-07-14, the day the program's people live in, not the UTC date."""
    event, (a,) = reserved(program, july_now, n=1, agg=agg)
    evening = dt.datetime(2026, 7, 15, 3, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(release, "clock", lambda: evening)
    with django_capture_on_commit_callbacks(execute=True):
        device_set_status(device=a.device, status=DeviceStatus.INACTIVE, now=evening, actor=TEST_ACTOR)
    assert state(event, a) == (RELEASED, D.RELEASED, f"Released: device {a.device} set inactive on 2026-07-14.")


def test_device_inactive_releases_and_tells_the_aggregator(program, july_now, clock, agg,
                                                           django_capture_on_commit_callbacks):
    """A and B are reserved and the event is dispatched (both DISPATCHED, one DISPATCH message to acme-cloud
    listing both). A's device is set inactive: A is released ("Released: device <A> set inactive on 2026-07-14."),
    and acme-cloud gets one RELEASE message listing A's device only (no webhook: POLL_ONLY). B stays dispatched.
    Retiring a device releases the same way (B: "set retired")."""
    event, (a, b) = reserved(program, july_now, n=2, agg=agg)
    services.event_dispatch(event=event, now=july_now, actor=TEST_ACTOR)
    assert DispatchMessage.objects.get(kind=DispatchKind.DISPATCH).payload["devices"] == sorted(
        [a.device.aggregator_device_id, b.device.aggregator_device_id])
    with django_capture_on_commit_callbacks(execute=True):
        device_set_status(device=a.device, status=DeviceStatus.INACTIVE, now=july_now, actor=TEST_ACTOR)
    assert state(event, a) == (RELEASED, D.RELEASED, f"Released: device {a.device} set inactive on 2026-07-14.")
    assert release_audit(event, a)[0][1] == ParticipationStatus.DISPATCHED
    assert state(event, b)[0] == ParticipationStatus.DISPATCHED
    msg = DispatchMessage.objects.get(kind=DispatchKind.RELEASE)
    assert (msg.aggregator_id, msg.revision, msg.delivery_status) == (agg.pk, 1, "poll_only")
    assert msg.payload["released_devices"] == [a.device.aggregator_device_id]
    assert msg.payload["devices"] == [] and msg.payload["kind"] == "release"
    with django_capture_on_commit_callbacks(execute=True):
        device_set_status(device=b.device, status=DeviceStatus.RETIRED, now=july_now, actor=TEST_ACTOR)
    assert state(event, b)[2] == f"Released: device {b.device} set retired on 2026-07-14."
    # Two releases of the same event and revision: two RELEASE messages (the unique constraint spares them).
    assert DispatchMessage.objects.filter(kind=DispatchKind.RELEASE).count() == 2


def test_unavailability_over_a_reserved_event_releases(program, july_now, agg):
    """A declares 2026-07-15 12:00-20:00 unavailable (covers 15:00-18:00): released at once by the CSR's actor
    with the period in words. B declares 2026-07-16 (after the event): nothing released."""
    event, (a, b) = reserved(program, july_now, n=2, agg=agg)
    services.unavailability_create(enrollment=a.enrollment, start=la(2026, 7, 15, 12), end=la(2026, 7, 15, 20),
                                   reason="Out of town", now=july_now, actor=TEST_ACTOR)
    services.unavailability_create(enrollment=b.enrollment, start=la(2026, 7, 16, 0), end=la(2026, 7, 17, 0),
                                   now=july_now, actor=TEST_ACTOR)
    why = "Released: customer declared unavailable 2026-07-15 12:00 PDT to 2026-07-15 20:00 PDT (Out of town)."
    assert state(event, a) == (RELEASED, D.RELEASED, why)
    assert release_audit(event, a) == [("system:tests", ParticipationStatus.RESERVED, why)]
    assert state(event, b)[:2] == (ParticipationStatus.RESERVED, D.RESERVED)


def test_replacement_device_takes_the_old_ones_place(program, july_now, clock, agg,
                                                     django_capture_on_commit_callbacks):
    """A's device is replaced on 2026-07-15 by a new device installed at the same service point. Two events:
    the 07-15 one (SCHEDULED) and a 07-16 one already DISPATCHED. In both the old device is released ("Released:
    device <old> replaced by device <new> on 2026-07-15."). The scheduled one gets a participation for the new
    device (RESERVED, ledger "Replaces device <old> (replaced on 2026-07-15). 0 other event(s) so far in Summer
    2026.": the 07-16 event holds no participation of A any more, so 0); the dispatched one does not (1 RELEASE
    message to acme-cloud listing the old device). Ledger rows: 07-15 has 2 (old RELEASED, new RESERVED)."""
    event, (a,) = reserved(program, july_now, n=1, agg=agg)
    later = EventFactory(program=program, status=EventStatus.SCHEDULED, start=la(2026, 7, 16, 15),
                         end=la(2026, 7, 16, 18))
    services.event_reserve(event=later, now=july_now, actor=TEST_ACTOR)
    services.event_dispatch(event=later, now=july_now, actor=TEST_ACTOR)
    old = a.device
    new = DeviceFactory(last_seen_at=july_now, aggregator=agg)
    DeviceInstallationFactory(device=new, service_point=a.enrollment.service_point)
    with django_capture_on_commit_callbacks(execute=True):
        new_sub = enrollment_replace_device(enrollment=a.enrollment, old_device=old, new_device=new,
                                            on=dt.date(2026, 7, 15), now=july_now, actor=TEST_ACTOR)
    why = f"Released: device {old} replaced by device {new} on 2026-07-15."
    assert state(event, a) == (RELEASED, D.RELEASED, why)
    assert state(later, a) == (RELEASED, D.RELEASED, why)
    assert state(event, new_sub) == (ParticipationStatus.RESERVED, D.RESERVED,
                                     f"Replaces device {old} (replaced on 2026-07-15). 0 other event(s) so far in "
                                     "Summer 2026.")
    assert not Participation.objects.filter(event=later, subscription=new_sub).exists()
    assert Reservation.objects.filter(event=event).count() == 2
    msg = DispatchMessage.objects.get(kind=DispatchKind.RELEASE)
    assert (msg.event_id, msg.payload["released_devices"]) == (later.pk, [old.aggregator_device_id])


def test_dispatch_rechecks_and_sends_only_valid_participations(program, july_now, agg):
    """Five reserved; then, without any signal (a bulk import, a lost message), A's enrollment is unenrolled from
    07-15, B's subscription ends 07-15 (device removed), C's device goes inactive, D declares 07-15 unavailable.
    Dispatch re-checks: A-D released with their reasons, E alone dispatched (1 participation) and the DISPATCH
    message to acme-cloud lists E's device only."""
    event, (a, b, c, d, e) = reserved(program, july_now, n=5, agg=agg)
    Enrollment.objects.filter(pk=a.enrollment_id).update(status=EnrollmentStatus.UNENROLLED,
                                                         end_date=dt.date(2026, 7, 15),
                                                         reason_code=ReasonCode.CUSTOMER_REQUEST)
    ProgramSubscription.objects.filter(pk=b.pk).update(end_date=dt.date(2026, 7, 15),
                                                       end_reason=ReasonCode.DEVICE_REMOVED)
    Device.objects.filter(pk=c.device_id).update(status=DeviceStatus.INACTIVE)
    UnavailabilityFactory(enrollment=d.enrollment, start=la(2026, 7, 15, 0), end=la(2026, 7, 16, 0))
    services.event_dispatch(event=event, now=july_now, actor=TEST_ACTOR)
    assert state(event, a) == (RELEASED, D.RELEASED,
                               "Released at dispatch: enrollment ended on 2026-07-15 (customer request).")
    assert state(event, b) == (RELEASED, D.RELEASED,
                               "Released at dispatch: subscription ended on 2026-07-15 (device removed).")
    assert state(event, c) == (RELEASED, D.RELEASED, "Released at dispatch: device status is inactive.")
    assert state(event, d) == (RELEASED, D.RELEASED, "Released at dispatch: customer declared unavailable "
                                                     "2026-07-15 00:00 PDT to 2026-07-16 00:00 PDT (Out of town).")
    assert state(event, e)[:2] == (ParticipationStatus.DISPATCHED, D.RESERVED)
    msg = DispatchMessage.objects.get(event=event)
    assert (msg.kind, msg.payload["devices"]) == (DispatchKind.DISPATCH, [e.device.aggregator_device_id])
    assert release_audit(event, a) == [("system:tests", ParticipationStatus.RESERVED,
                                        "Released at dispatch: enrollment ended on 2026-07-15 (customer request).")]


def test_csr_unenroll_then_dispatch_does_not_send_the_device(client, django_user_model, agg,
                                                             django_capture_on_commit_callbacks):
    """End to end, on the real clock: A and B reserved for an event next year; a CSR unenrolls A on the CSR page
    (effective today in the program's zone, before the event): A is released at once by events.release; then
    ``event_dispatch`` sends one DISPATCH message listing B's device only."""
    from tests.factories.programs import ProgramFactory

    program = ProgramFactory()
    now = timezone.now()
    start = (now + dt.timedelta(days=200)).replace(minute=0, second=0, microsecond=0)
    a, b = participant(program, now, agg), participant(program, now, agg)
    event = EventFactory(program=program, status=EventStatus.SCHEDULED, start=start,
                         end=start + dt.timedelta(hours=2), notification_at=start - dt.timedelta(hours=1))
    services.event_reserve(event=event, now=now, actor=TEST_ACTOR)
    user = django_user_model.objects.create_user("csr", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    customer = a.enrollment.account.customer
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/csr/customers/{customer.pk}/enrollments/{a.enrollment_id}/unenroll/",
                        {"reason_code": "customer_request", "confirmed": "yes"})
    assert r.status_code == 302
    assert Enrollment.objects.get(pk=a.enrollment_id).status == EnrollmentStatus.UNENROLLED
    assert state(event, a)[:2] == (RELEASED, D.RELEASED)
    services.event_dispatch(event=event, now=now, actor=TEST_ACTOR)
    msg = DispatchMessage.objects.get(event=event)
    assert msg.payload["devices"] == [b.device.aggregator_device_id]
    assert a.device.aggregator_device_id not in msg.payload["devices"]
