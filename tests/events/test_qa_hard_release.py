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
