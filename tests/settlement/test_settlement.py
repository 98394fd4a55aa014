"""Event settlement: CAISO 10-in-10 measurement, incentive components, statuses, idempotence, corrections.

The default participant uses 2.0 kWh every hour before the event day; on the event day it uses 0.5 kWh in each of
the three event hours (16:00-19:00 PDT = 23:00Z-02:00Z), so the baseline is 2.0 kW, the adjustment 1.0 (the hours
before the event look like the baseline) and 1.5 kWh is avoided per hour: 4.5 kWh, 1.5 kW average drop.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cpm.base.errors import ConflictError, DomainValidationError, TransitionNotAllowed
from cpm.models import AuditEntry
from events.choices import EventStatus, ParticipationStatus
from programs.choices import (
    DeviceType,
    IncentiveBasis,
    IncentiveKind,
    OptOutConsequence,
    PerformanceMeasurement,
    ProgramType,
    SettlementTiming,
)
from settlement import services
from settlement.choices import BatchKind, BatchStatus, Channel, EventSettlementStatus, LineKind, MeasurementStatus
from settlement.models import EventSettlement, SettlementBatch, SettlementLine
from settlement.selectors import event_settlement_days
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import IncentiveRuleFactory, ProgramFactory
from tests.factories.settlement import (
    EVENT_END,
    EVENT_START,
    EventFactory,
    ParticipationFactory,
    event_hours,
    price_set,
    run_on_commit,
    write_hourly,
)

pytestmark = pytest.mark.django_db
ES = EventSettlementStatus
FIRST = dt.date(2026, 5, 25)
LAST = dt.date(2026, 7, 16)
NOW = dt.datetime(2026, 7, 20, 12, 0, tzinfo=dt.UTC)


def meter_participant(program, *, event_kwh=0.5, **participation):
    sub = active_participant(program=program)
    sp = sub.enrollment.service_point
    write_hourly(service_point=sp, first=FIRST, last=LAST,
                 overrides={h: event_kwh for h in event_hours()})
    return sub


@pytest.fixture
def program():
    program = ProgramFactory()
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    return program


def settle(event, now=NOW, **kw):
    with run_on_commit():
        batch = services.event_settle(event=event, now=now, **{"actor": TEST_ACTOR, **kw})
    return batch


def test_meter_baseline_settlement_pays_kwh_avoided_with_inputs(program):
    event = EventFactory(program=program)
    sub = meter_participant(program)
    part = ParticipationFactory(event=event, subscription=sub)

    batch = settle(event)

    batch.refresh_from_db()
    assert (batch.status, batch.chunks_total, batch.chunks_done, batch.items_calculated) == (
        BatchStatus.COMPLETED, 1, 1, 1)
    es = EventSettlement.objects.get(participation=part)
    assert es.status == ES.CALCULATED
    assert es.method == "caiso-10-in-10"
    assert es.kwh_avoided == Decimal("4.5000")
    assert es.kw_drop_avg == Decimal("1.5000")
    assert es.amount == Decimal("5.63")  # 4.5 kWh x $1.25 = $5.625 -> $5.63
    assert es.posted_amount == Decimal("0.00")  # not money until approved
    # The inputs explain it: the 10 most recent similar weekdays (July 4 2026 is a Saturday; NERC does not move it,
    # so July 3 is a weekday), the adjustment and the engine's per-interval values over the event window.
    assert es.inputs["selected_days"] == ["2026-07-14", "2026-07-13", "2026-07-10", "2026-07-09", "2026-07-08",
                                          "2026-07-07", "2026-07-06", "2026-07-03", "2026-07-02", "2026-07-01"]
    days = event_settlement_days(es.inputs)
    assert ("2026-07-12", "day_type") in days and ("2026-07-14", "selected") in days
    assert days[-1] == ("2026-07-01", "selected")  # the window ends at the 10th weekday
    assert es.inputs["adjustment"] == 1.0
    assert es.inputs["start"] == "2026-07-15T23:00:00+00:00" and es.inputs["interval_minutes"] == 60
    assert es.inputs["participated"] == [0, 3]  # three counted hours from the event start
    assert es.inputs["baseline_kw"] == [2.0, 2.0, 2.0]
    assert es.inputs["actual_kw"] == [0.5, 0.5, 0.5]
    assert es.inputs["reduction_kwh"] == [1.5, 1.5, 1.5]
    assert "4.50 kWh avoided" in es.explanation and "$5.63" in es.explanation


def test_a_completed_batch_refreshes_the_statistics_of_what_it_wrote(program, monkeypatch):
    """Each chunk's queries are planned with fresh statistics: a batch that completes ANALYZEs its tables."""
    from django.db import connection

    refreshed = []
    from settlement.services import batches

    analyze = batches._refresh_statistics
    monkeypatch.setattr(batches, "_refresh_statistics", lambda kind: (refreshed.append(kind), analyze(kind)))
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=meter_participant(program))
    batch = settle(event)
    batch.refresh_from_db()
    assert (batch.status, refreshed) == ("completed", ["event"])
    if connection.vendor == "postgresql":  # the ANALYZE ran: the planner knows the table's one row
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'settlement_eventsettlement'")
            assert cursor.fetchone()[0] == 1


def test_day_of_adjustment_is_capped_at_20_percent(program):
    event = EventFactory(program=program)
    sub = active_participant(program=program)
    # Hours 12:00-15:00 PDT (19Z-22Z) on the event day run at 3.0 kWh: ratio 1.5, capped to 1.2.
    overrides = {h: 0.5 for h in event_hours()}
    overrides.update({dt.datetime(2026, 7, 15, h, tzinfo=dt.UTC): 3.0 for h in (19, 20, 21)})
    write_hourly(service_point=sub.enrollment.service_point, first=FIRST, last=LAST, overrides=overrides)
    ParticipationFactory(event=event, subscription=sub)
    settle(event)
    es = EventSettlement.objects.get()
    assert es.inputs["adjustment"] == 1.2
    assert es.kwh_avoided == Decimal("5.7000")  # (2.0 x 1.2 - 0.5) x 3
    assert es.amount == Decimal("7.13")  # 5.7 x 1.25 = 7.125


def test_negative_reduction_pays_zero_unless_program_charges_it(program):
    event = EventFactory(program=program)
    sub = meter_participant(program, event_kwh=3.0)  # used more than the baseline: -1.0 kWh per hour
    ParticipationFactory(event=event, subscription=sub)
    settle(event)
    es = EventSettlement.objects.get()
    assert es.kwh_avoided == Decimal("-3.0000")
    assert es.amount == Decimal("0.00")
    assert "pays $0" in es.components[0]["description"]

    charging = ProgramFactory(charges_negative_performance=True)
    IncentiveRuleFactory(program=charging, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.25"))
    event2 = EventFactory(program=charging)
    sub2 = meter_participant(charging, event_kwh=3.0)
    ParticipationFactory(event=event2, subscription=sub2)
    settle(event2)
    assert EventSettlement.objects.get(event=event2).amount == Decimal("-3.75")


def test_price_set_kwh_sums_interval_kwh_times_price():
    program = ProgramFactory()
    ps = price_set(program=program, prices=dict(zip(event_hours(), ["0.50000", "1.00000", "3.00000"], strict=True)))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PRICE_SET,
                         price_set=ps, amount=0)
    event = EventFactory(program=program)
    sub = active_participant(program=program)
    overrides = dict(zip(event_hours(), [1.0, 0.5, 1.5], strict=True))  # 1.0, 1.5, 0.5 kWh avoided
    write_hourly(service_point=sub.enrollment.service_point, first=FIRST, last=LAST, overrides=overrides)
    ParticipationFactory(event=event, subscription=sub)
    settle(event)
    es = EventSettlement.objects.get()
    assert es.kwh_avoided == Decimal("3.0000")
    assert es.amount == Decimal("3.50")  # 1.0 x 0.50 + 1.5 x 1.00 + 0.5 x 3.00 (flat $/kWh would differ)


def test_missing_price_leaves_settlement_pending_with_the_interval_named():
    program = ProgramFactory()
    ps = price_set(program=program, prices={EVENT_START: "0.50000"})
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PRICE_SET,
                         price_set=ps, amount=0)
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=meter_participant(program))
    batch = settle(event)
    es = EventSettlement.objects.get()
    assert es.status == ES.PENDING
    assert "2026-07-16T00:00:00+00:00" in es.explanation
    batch.refresh_from_db()
    assert batch.items_pending == 1


def test_per_event_payment_is_prorated_for_partial_participation_of_a_battery():
    program = ProgramFactory(program_type=ProgramType.BATTERY_STORAGE,
                             performance_measurement=PerformanceMeasurement.DEVICE_TELEMETRY,
                             eligible_device_types=[DeviceType.BATTERY])
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PER_EVENT, basis=IncentiveBasis.FLAT,
                         amount=Decimal("10.00"))
    IncentiveRuleFactory(program=program, kind=IncentiveKind.PERFORMANCE_KWH, amount=Decimal("1.70"))
    event = EventFactory(program=program)
    sub = active_participant(program=program, device_kwargs={"device_type": DeviceType.BATTERY,
                                                             "capacity_kw": Decimal("5")})
    device = sub.device
    # Discharge 5 kWh in each event hour (device-level RECEIVED rows); opted out after the first hour.
    write_hourly(service_point=sub.enrollment.service_point, device=device, channel=Channel.RECEIVED,
                 first=dt.date(2026, 7, 15), last=dt.date(2026, 7, 16), kwh=0.0,
                 overrides={h: 5.0 for h in event_hours()})
    part = ParticipationFactory(event=event, subscription=sub, status=ParticipationStatus.OPTED_OUT,
                                opted_out_at=EVENT_START + dt.timedelta(hours=1))
    settle(event)
    es = EventSettlement.objects.get(participation=part)
    assert es.method == "device-telemetry"
    assert es.participation_fraction == Decimal("0.333333")
    assert es.kwh_avoided == Decimal("5.0000")  # only the hour before the opt-out counts
    assert es.kw_drop_avg == Decimal("1.6667")  # 5 kWh over the 3-hour window: a third of 5 kW
    by_kind = {c["kind"]: c["rounded"] for c in es.components}
    assert by_kind == {"per_event": "3.33", "performance_kwh": "8.50"}  # $10 x 1/3; 5 kWh x $1.70
    assert es.amount == Decimal("11.83")
    assert es.opted_out


def test_opt_out_penalty_and_forfeiture(program):
    IncentiveRuleFactory(program=program, kind=IncentiveKind.OPT_OUT_PENALTY, amount=Decimal("5.00"),
                         opt_out_consequence=OptOutConsequence.PENALTY)
    IncentiveRuleFactory(program=program, kind=IncentiveKind.OPT_OUT_PENALTY, amount=0,
                         opt_out_consequence=OptOutConsequence.FORFEIT_EVENT)
    event = EventFactory(program=program)
    opted = ParticipationFactory(event=event, subscription=meter_participant(program),
                                 status=ParticipationStatus.OPTED_OUT, opted_out_at=EVENT_START + dt.timedelta(hours=2))
    stayed = ParticipationFactory(event=event, subscription=meter_participant(program))
    settle(event)
    assert EventSettlement.objects.get(participation=opted).amount == Decimal("-5.00")  # forfeited kWh, penalty
    assert EventSettlement.objects.get(participation=stayed).amount == Decimal("5.63")


def test_insufficient_data_stays_pending_and_counts(program):
    event = EventFactory(program=program)
    sub = active_participant(program=program)
    write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 7, 10), last=LAST,
                 overrides={h: 0.5 for h in event_hours()})  # only 3 similar days before the event
    ParticipationFactory(event=event, subscription=sub)
    batch = settle(event)
    es = EventSettlement.objects.get()
    assert (es.status, es.measurement_status, es.amount) == (ES.PENDING, MeasurementStatus.INSUFFICIENT_DATA, 0)
    # The engine's rule (CAISO: Y = 10 eligible days are required, never an average of fewer).
    assert "only 3 eligible weekday days in the 45-day lookback; 10 required" in es.explanation
    batch.refresh_from_db()
    assert batch.items_pending == 1


def test_settling_twice_changes_nothing(program, settings):
    settings.CPM_CHUNK_SIZE = 2
    event = EventFactory(program=program)
    for _ in range(3):
        ParticipationFactory(event=event, subscription=meter_participant(program))
    batch = settle(event)
    batch.refresh_from_db()
    assert (batch.chunks_total, batch.chunks_done, batch.items_calculated) == (2, 2, 3)
    before = list(EventSettlement.objects.order_by("pk").values_list("pk", "fingerprint", "updated_at"))

    assert settle(event).pk == batch.pk  # the first settlement happens once
    recalc = settle(event, now=NOW + dt.timedelta(days=1), recalculate=True)
    recalc.refresh_from_db()
    assert (recalc.kind, recalc.items_unchanged, recalc.items_calculated) == (BatchKind.EVENT_RECALC, 3, 0)
    assert list(EventSettlement.objects.order_by("pk").values_list("pk", "fingerprint", "updated_at")) == before


def test_correction_after_approval_posts_a_reversal_and_the_new_amount(program, admin_user):
    event = EventFactory(program=program)
    sub = meter_participant(program)
    ParticipationFactory(event=event, subscription=sub)
    settle(event)
    es = EventSettlement.objects.get()
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (ES.APPROVED, Decimal("5.63"))
    assert list(es.lines.values_list("kind", "amount")) == [(LineKind.PERFORMANCE_KWH, Decimal("5.63"))]
    # Approving again changes nothing.
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    assert es.lines.count() == 1

    # Corrected meter data: the last event hour was really 1.5 kWh (0.5 avoided): 3.5 kWh -> $4.375 -> $4.38.
    from settlement.models import IntervalDay

    IntervalDay.objects.filter(service_point=sub.enrollment.service_point, day=dt.date(2026, 7, 16)).delete()
    write_hourly(service_point=sub.enrollment.service_point, first=dt.date(2026, 7, 16), last=dt.date(2026, 7, 16),
                 overrides={EVENT_END - dt.timedelta(hours=3 - h): v for h, v in ((1, 0.5), (2, 0.5))}
                 | {dt.datetime(2026, 7, 16, 1, tzinfo=dt.UTC): 1.5})
    later = NOW + dt.timedelta(days=3)
    batch = settle(event, now=later, recalculate=True)
    batch.refresh_from_db()
    assert batch.items_corrected == 1
    es.refresh_from_db()
    assert (es.status, es.revision, es.amount, es.posted_amount) == (ES.CALCULATED, 2, Decimal("4.38"),
                                                                      Decimal("5.63"))
    # The approved line was not touched.
    assert list(es.lines.values_list("amount", flat=True)) == [Decimal("5.63")]
    assert AuditEntry.objects.filter(object_id=str(es.pk), from_status=ES.APPROVED, to_status=ES.CALCULATED,
                                     reason__contains="correction after approval").exists()

    services.event_settlement_approve(settlement=es, now=later, actor=admin_user)
    lines = list(es.lines.order_by("id").values_list("amount", "reverses_id", "event_revision"))
    first_line = es.lines.order_by("id").first().pk
    assert lines == [(Decimal("5.63"), None, 1), (Decimal("-5.63"), first_line, 2), (Decimal("4.38"), None, 2)]
    es.refresh_from_db()
    assert es.posted_amount == Decimal("4.38")
    # Recalculating again with the same data changes nothing.
    settle(event, now=later + dt.timedelta(days=1), recalculate=True)
    assert es.lines.count() == 3
    es.refresh_from_db()
    assert es.status == ES.APPROVED


def test_reverse_requires_a_reason_and_negates_live_lines(program, admin_user):
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=meter_participant(program))
    settle(event)
    es = EventSettlement.objects.get()
    with pytest.raises(TransitionNotAllowed):
        services.event_settlement_reverse(settlement=es, reason="wrong", now=NOW, actor=admin_user)
    services.event_settlement_approve(settlement=es, now=NOW, actor=admin_user)
    with pytest.raises(DomainValidationError) as err:
        services.event_settlement_reverse(settlement=es, reason=" ", now=NOW, actor=admin_user)
    assert "reason" in err.value.errors
    services.event_settlement_reverse(settlement=es, reason="not enrolled that day", now=NOW, actor=admin_user)
    es.refresh_from_db()
    assert (es.status, es.posted_amount) == (ES.REVERSED, Decimal("0.00"))
    assert sorted(SettlementLine.objects.values_list("amount", flat=True)) == [Decimal("-5.63"), Decimal("5.63")]


def test_season_end_program_defers_event_settlements():
    program = ProgramFactory(settlement_timing=SettlementTiming.SEASON_END)
    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=meter_participant(program))
    settle(event)
    es = EventSettlement.objects.get()
    assert (es.status, es.kw_drop_avg) == (ES.DEFERRED, Decimal("1.5000"))


def test_only_completed_events_are_settled(program):
    event = EventFactory(program=program, status=EventStatus.ACTIVE)
    with pytest.raises(ConflictError, match="only completed events"):
        settle(event)


def test_tick_settles_completed_events_once(program):
    done = EventFactory(program=program)
    ParticipationFactory(event=done, subscription=meter_participant(program))
    EventFactory(program=program, status=EventStatus.SCHEDULED, start=EVENT_START + dt.timedelta(days=7),
                 end=EVENT_END + dt.timedelta(days=7))
    from settlement.tasks import tick

    with run_on_commit():
        first = tick(now=NOW.isoformat())
    with run_on_commit():
        second = tick(now=NOW.isoformat())
    assert first["events"] == 1 and second["events"] == 0
    assert SettlementBatch.objects.filter(kind=BatchKind.EVENT).count() == 1
    assert EventSettlement.objects.count() == 1


def test_event_completed_receiver_enqueues_settlement(program, django_capture_on_commit_callbacks):
    from settlement.signals import on_event_completed

    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=meter_participant(program))
    with django_capture_on_commit_callbacks(execute=True):
        on_event_completed(sender=None, event_id=event.pk, now=NOW)
    assert EventSettlement.objects.filter(event=event).count() == 1


def test_a_program_with_unusable_baseline_params_fails_its_batch_in_words(program):
    """Overrides stored before they were checked ({"adjustment_hours": "abc"}): the batch failed with "ValueError:
    could not convert string to float: 'abc' (at baselines.py:154)" from its chunk, and "1_0" settled on a 10-hour
    adjustment window. Now the batch fails at once, naming the program, the field and the key; nothing is settled,
    and the tick goes on with the next event."""
    from programs.models import Program
    from settlement.services.tick import settlement_tick

    event = EventFactory(program=program)
    ParticipationFactory(event=event, subscription=meter_participant(program))
    for bad in ("abc", "1_0"):
        Program.objects.filter(pk=program.pk).update(baseline_params={"adjustment_hours": bad})
        event.program.refresh_from_db()
        batch = settle(event, recalculate=bad == "1_0")
        batch.refresh_from_db()
        assert batch.status == BatchStatus.FAILED
        assert batch.errors == [{"error": f"Program {program.code}: its baseline overrides (baseline_params) cannot "
                                          f"be used: adjustment_hours: must be a number, not '{bad}'. Correct them "
                                          "and settle the event again."}]
        assert batch.job is None and not EventSettlement.objects.exists()
    other = ProgramFactory()
    IncentiveRuleFactory(program=other, kind=IncentiveKind.PERFORMANCE_KWH, basis=IncentiveBasis.PER_KWH,
                         amount=Decimal("1.25"))
    first, second = EventFactory(program=program), EventFactory(program=other)
    ParticipationFactory(event=first, subscription=meter_participant(program))
    ParticipationFactory(event=second, subscription=meter_participant(other))
    with run_on_commit():
        assert settlement_tick(now=NOW, actor=TEST_ACTOR)["events"] == 2
    assert SettlementBatch.objects.get(event=first, kind=BatchKind.EVENT).status == BatchStatus.FAILED
    assert SettlementBatch.objects.get(event=second, kind=BatchKind.EVENT).status == BatchStatus.COMPLETED
