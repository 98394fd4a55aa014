"""Failure isolation (issue 15): a service point that cannot be settled (a 1e300 kWh reading in its baseline days)
gets its own error, named on the batch and on its settlement (PENDING, measurement status ERROR, money unposted);
the other service points of its chunk settle with exactly the amounts they get without it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.errors import TransitionNotAllowed
from cpm.models import Job
from programs.choices import IncentiveBasis, IncentiveKind
from settlement import services
from settlement.choices import BatchStatus, EventSettlementStatus, MeasurementStatus
from settlement.models import EventSettlement
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import EventFactory, ParticipationFactory, event_hours, run_on_commit, write_hourly

pytestmark = pytest.mark.django_db
ES = EventSettlementStatus
FIRST, LAST = dt.date(2026, 5, 25), dt.date(2026, 7, 16)
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)
BASELINE_HOUR = dt.datetime(2026, 7, 14, 23, tzinfo=dt.UTC)  # a selected baseline day, an event-window hour


def _population(*, absurd: bool):
    """Five participants of one event with different responses; with ``absurd``, a sixth one whose baseline days
    hold a 1e300 kWh reading. Returns (event, participations by name)."""
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PER_EVENT, basis=IncentiveBasis.FLAT,
                         amount=Decimal("2"))
    event = EventFactory(program=program)
    parts = {}
    names = {"a": 0, "b": 1, "bad": 9, "c": 2, "d": 3, "e": 4}  # in service point order: "bad" mid-chunk
    for name, n in names.items():
        if name == "bad" and not absurd:
            continue
        sub = active_participant(program=program)
        overrides = {h: 0.3 + 0.1 * n for h in event_hours()}
        if name == "bad":
            overrides[BASELINE_HOUR] = 1e300
        write_hourly(service_point=sub.enrollment.service_point, first=FIRST, last=LAST, kwh=2.0 + 0.07 * n,
                     overrides=overrides)
        parts[name] = ParticipationFactory(event=event, subscription=sub)
    return event, parts


def _amounts(parts) -> dict[str, tuple]:
    """What each good participation got (components without their rule ids: each run has its own program)."""
    out = {}
    for name, p in parts.items():
        if name != "bad":
            es = EventSettlement.objects.get(participation=p)
            comps = [{k: v for k, v in c.items() if k != "rule_id"} for c in es.components]
            out[name] = (es.status, es.measurement_status, es.error, es.kwh_avoided, es.kw_drop_avg, es.amount,
                         comps, es.inputs["baseline_kw"], es.inputs["reduction_kwh"])
    return out


def test_an_absurd_reading_fails_only_its_own_service_point(settings):
    settings.CPM_CHUNK_SIZE = 5000  # every service point in one chunk
    event, parts = _population(absurd=False)
    with run_on_commit():
        services.event_settle(event=event, now=NOW, actor=TEST_ACTOR)
    expected = _amounts(parts)
    assert {v[0] for v in expected.values()} == {ES.CALCULATED}
    assert all(v[5] > 0 for v in expected.values())

    event2, parts2 = _population(absurd=True)
    with run_on_commit():
        batch = services.event_settle(event=event2, now=NOW, actor=TEST_ACTOR)
    batch.refresh_from_db()
    assert _amounts(parts2) == expected

    bad = parts2["bad"]
    es = EventSettlement.objects.get(participation=bad)
    assert (es.status, es.measurement_status, es.amount, es.posted_amount, es.components) == (
        ES.PENDING, MeasurementStatus.ERROR, Decimal("0.00"), Decimal("0.00"), [])
    assert es.error.startswith("implausible meter data: a measured value of 1e+299")  # the 10-day baseline
    assert es.error in es.explanation
    # The batch completes, with the error named: service point, participation, the error in words.
    assert (batch.status, batch.chunks_done, batch.chunks_total) == (BatchStatus.COMPLETED_WITH_ERRORS, 1, 1)
    assert (batch.items_total, batch.items_calculated, batch.items_failed) == (6, 5, 1)
    assert batch.errors == [{"service_point_id": bad.service_point_id, "participation_id": bad.pk,
                             "error": es.error}]
    assert Job.objects.get(pk=batch.job_id).status == Job.Status.COMPLETED
    # Its money is never posted: a settlement in error cannot be approved.
    with pytest.raises(TransitionNotAllowed):
        services.event_settlement_approve(settlement=es, now=NOW, actor=TEST_ACTOR)
