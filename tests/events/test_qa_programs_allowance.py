"""QA pass (programs): the opt-out allowance of a participation rule at reservation, checked against the published
terms of real programs (shared/data/programs/real-programs.json); hours worked by hand in each docstring."""

from decimal import Decimal

import pytest

from events import services
from events.choices import EventStatus
from events.choices import ReservationDecision as D
from events.models import Reservation
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, la

from .helpers import past_event

pytestmark = pytest.mark.django_db


def _reserve(event, now):
    event.status = EventStatus.SCHEDULED
    event.save(update_fields=["status"])
    services.event_reserve(event=event, now=now, actor=TEST_ACTOR)
    return {r.subscription_id: (r.decision, r.detail) for r in Reservation.objects.filter(event=event)}


def test_a_share_of_event_hours_allowance_counts_the_event_being_reserved(program, rule, july_now):
    """PGE Energy Partner Smart Thermostat (real-programs.json, opt_out_rule min_pct_event_hours 50): "Override
    allowed; the seasonal reward requires participating in at least 50% of the season's event hours", i.e. an
    opt-out allowance of 50 % of the season's event hours (``percent_hours`` 50, no season hour cap: the
    denominator is the hours called).
    Thermostat A opted out of the season's first event (June 10, 2 h). Reserving the July 15 event (3 h): were A to
    take part, it would have opted out of 2 of 5 event hours = 40 % <= 50 %: RESERVED. (The old denominator left
    the event being reserved out: 2 / 2 = 100 % > 50 %, "Opt-out allowance used", so one opt-out of the first
    event kept the device out of every event of the season, and its seasonal reward out of reach.)
    Thermostat B opted out of June 10 and June 11 (2 h each) and took part in none: 4 of 4 + 3 = 7 hours, 57.1 %
    > 50 % even if it takes part: "Opt-out allowance used"."""
    rule.opt_out_allowance_kind, rule.opt_out_allowance_percent = "percent_hours", Decimal("50")
    rule.save()
    a = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    b = active_participant(program=program, device_kwargs={"last_seen_at": july_now})
    past_event(program, la(2026, 6, 10, 15), subs=[a, b], opted_out=[a, b])
    past_event(program, la(2026, 6, 11, 15), subs=[b], opted_out=[b])
    got = _reserve(EventFactory(program=program, start=la(2026, 7, 15, 15), end=la(2026, 7, 15, 18)), july_now)
    assert got[a.pk][0] == D.RESERVED
    assert got[b.pk] == (D.OPT_OUT_ALLOWANCE_USED, "Opted out of 57.1% of Summer 2026's event hours, beyond the "
                                                   "allowance of 50%.")
