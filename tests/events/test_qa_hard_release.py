"""QA pass (hard): unavailability declared before an event over only part of it.

The default event is 2026-07-15 15:00-18:00 America/Los_Angeles (a Wednesday); ``july_now`` is 2026-07-14 16:00 UTC,
the day before. The customer's declaration is over part of the event, made before it begins."""

import datetime as dt

import pytest

from events import services
from events.choices import DispatchKind, EventStatus, ParticipationStatus
from events.choices import ReservationDecision as D
from events.models import DispatchMessage, OptOut, Participation, Reservation
from tests.actors import TEST_ACTOR
from tests.factories.devices import AggregatorFactory
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, la

pytestmark = pytest.mark.django_db


def test_unavailability_over_part_of_an_event_not_begun_releases_it_and_dispatch_leaves_the_device_out(
        program, july_now):
    """Two devices reserved for 15:00-18:00 PDT on 07-15. On 07-14 (the event not begun) A's customer declares
    07-15 16:00-20:00 PDT unavailable: the last two of the event's three hours. A device that will not be there
    for the event is released at once, as a declaration over the whole event is (and as the dispatch re-check and
    the reservation engine treat any overlap): status cancelled (released), ledger RELEASED "Released: customer
    declared unavailable 2026-07-15 16:00 PDT to 2026-07-15 20:00 PDT (Doctor visit).", no opt-out recorded.
    Dispatch then sends B's device alone.

    Before the fix the participation was opted out at once, with the opt-out dated 16:00 the next day (status
    opted_out): the DISPATCH message left the device out (opted out), yet settlement counted 15:00-16:00 as taken
    part in (1 of 3 hours: a per-event payment prorated to a third, the season's event hours 1 h not opted out) for
    a device that was never sent the event."""
    agg = AggregatorFactory(code="acme-cloud")
    a, b = (active_participant(program=program, device_kwargs={"last_seen_at": july_now, "aggregator": agg})
            for _ in range(2))
    event = EventFactory(program=program, status=EventStatus.SCHEDULED)
    services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
    services.unavailability_create(enrollment=a.enrollment, start=la(2026, 7, 15, 16), end=la(2026, 7, 15, 20),
                                   reason="Doctor visit", now=july_now, actor=TEST_ACTOR)
    pa = Participation.objects.get(event=event, subscription=a)
    why = ("Released: customer declared unavailable 2026-07-15 16:00 PDT to 2026-07-15 20:00 PDT "
           "(Doctor visit).")
    assert (pa.status, pa.opted_out_at) == (ParticipationStatus.CANCELLED, None)
    assert not OptOut.objects.filter(participation=pa).exists()
    r = Reservation.objects.get(event=event, subscription=a)
    assert (r.decision, r.detail) == (D.RELEASED, why)
    services.event_dispatch(event=event, now=july_now + dt.timedelta(hours=1), actor=TEST_ACTOR)
    msg = DispatchMessage.objects.get(event=event, kind=DispatchKind.DISPATCH)
    assert msg.payload["devices"] == [b.device.aggregator_device_id]
    assert Participation.objects.get(event=event, subscription=b).status == ParticipationStatus.DISPATCHED


def test_an_event_under_way_still_dispatched_cannot_call_more_devices(program, july_now):
    """The event (15:00-18:00 PDT on 07-15) is dispatched with A's device; B enrolls later. At 15:30 PDT the tick
    has not yet marked it ACTIVE (a worker down) and the administrator widens its targeting (device types:
    thermostat). Re-running the reservation then would add B DISPATCHED for the whole window, from 15:00 (its
    participation starts with the event): settlement would count 15:00-15:30, before B was called, as taken part in
    (a late join settled as a full one). An event that has begun is refused a change of whom it calls, as an ACTIVE
    one is: 400 on target_device_types, in words, nothing changed (revision 1, one participation)."""
    from cpm.base.errors import DomainValidationError

    agg = AggregatorFactory(code="acme-cloud")
    active_participant(program=program, device_kwargs={"last_seen_at": july_now, "aggregator": agg})
    event = EventFactory(program=program, status=EventStatus.SCHEDULED)
    services.event_reserve(event=event, now=july_now, actor=TEST_ACTOR)
    services.event_dispatch(event=event, now=july_now, actor=TEST_ACTOR)
    later = la(2026, 7, 15, 15, 30)
    active_participant(program=program, device_kwargs={"last_seen_at": later, "aggregator": agg})
    with pytest.raises(DomainValidationError) as exc:
        services.event_update(event=event, changes={"target_device_types": ["thermostat"]}, now=later,
                              actor=TEST_ACTOR)
    assert exc.value.errors == {"target_device_types": [
        "The event began at 2026-07-15 15:00 PDT: the devices it calls can no longer change."]}
    event.refresh_from_db()
    assert (event.revision, Participation.objects.filter(event=event).count()) == (1, 1)
