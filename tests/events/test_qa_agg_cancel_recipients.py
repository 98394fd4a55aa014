"""What aggregators receive on cancel (QA, agg): a CANCEL message went to every aggregator with a device in the
event, also one that was never sent the event (its only device opted out before the dispatch), telling it of an
event it had never heard of. Only aggregators that were sent the event get a CANCEL (``event_cancel``'s promise)."""

from __future__ import annotations

import pytest

from events import services
from events.choices import DispatchKind, OptOutChannel
from events.models import DispatchMessage, Participation
from tests.actors import TEST_ACTOR
from tests.events.test_services import participant, scheduled
from tests.factories.devices import AggregatorFactory
from tests.factories.events import la

pytestmark = pytest.mark.django_db


def test_only_aggregators_sent_the_event_get_its_cancel(program, july_now):
    ecobee, nest = AggregatorFactory(code="ecobee"), AggregatorFactory(code="nest")
    participant(program, july_now, aggregator=ecobee, aggregator_device_id="e-1")
    participant(program, july_now, aggregator=nest, aggregator_device_id="n-1")
    event = scheduled(program, july_now)
    services.participation_opt_out(participation=Participation.objects.get(device__aggregator=nest),
                                   channel=OptOutChannel.PORTAL, now=july_now, actor=TEST_ACTOR)
    services.event_dispatch(event=event, now=la(2026, 7, 15, 13), actor=TEST_ACTOR)
    assert list(DispatchMessage.objects.values_list("aggregator__code", "kind")) == [("ecobee", "dispatch")]
    services.event_cancel(event=event, reason="Forecast dropped", now=la(2026, 7, 15, 14), actor=TEST_ACTOR)
    cancels = DispatchMessage.objects.filter(kind=DispatchKind.CANCEL)
    assert [(m.aggregator.code, m.payload["devices"]) for m in cancels] == [("ecobee", ["e-1"])]
