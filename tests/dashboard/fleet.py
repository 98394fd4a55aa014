"""A small hand-built fleet for the forecast and dashboard tests (no services: rows built directly).

Program ``fc`` (America/Los_Angeles, online threshold 60 minutes); ``NOW`` = 2026-07-14 16:00Z.

| device | type       | kW  | last seen (UTC)  | territory | counts?                                   |
|--------|------------|-----|------------------|-----------|-------------------------------------------|
| d1     | thermostat | 2.0 | 15:30 (online)   | NORTH     | yes                                       |
| d2     | thermostat | 1.0 | 14:00 (offline)  | NORTH     | yes (offline: 120 min > 60)               |
| d3     | battery    | 5.0 | 15:59 (online)   | SOUTH     | yes                                       |
| d4     | thermostat | 3.0 | never (offline)  | NORTH     | yes (offline)                             |
| d5     | thermostat | 4.0 | 15:59            | NORTH     | no: device INACTIVE                       |
| d6     | thermostat | 10  | 15:59            | NORTH     | no: enrollment PENDING_APPROVAL           |

History: one COMPLETED settled event ``past`` (2026-07-01) that reserved d1 and d3 at 2.0 + 2.0 = 4.0 kW and delivered
kW drops 1.2 + 1.8 = 3.0 kW (CALCULATED), plus a PENDING settlement of 5 kW (not counted): delivered share
3.0 / 4.0 = 0.75.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from devices.choices import DeviceStatus
from enrollments.choices import EnrollmentStatus
from events.choices import EventStatus, ParticipationStatus, ReservationDecision
from events.models import Reservation
from settlement.choices import EventSettlementStatus
from settlement.models import EventSettlement
from tests.factories.enrollments import active_participant
from tests.factories.events import EventFactory, ParticipationFactory
from tests.factories.programs import ParticipationRuleFactory, ProgramFactory, SeasonFactory

NOW = dt.datetime(2026, 7, 14, 16, 0, tzinfo=dt.UTC)


def device(program, kw, seen, *, type_="thermostat", territory="NORTH", device_status=DeviceStatus.ACTIVE,
           **enrollment):
    """An ACTIVE participant with one device (``enrollment``: fields to set on its enrollment)."""
    sub = active_participant(program=program, device_kwargs={"capacity_kw": Decimal(kw), "last_seen_at": seen,
                                                             "device_type": type_, "status": device_status})
    premise = sub.enrollment.service_point.premise
    premise.service_territory = territory
    premise.save()
    if enrollment:
        type(sub.enrollment).objects.filter(pk=sub.enrollment_id).update(**enrollment)
    return sub


def settle(event, sub, *, kw_drop, kwh=None, amount="0", status=EventSettlementStatus.CALCULATED, reserved_kw=None,
           inputs=None, participation_status=ParticipationStatus.PARTICIPATED):
    """A participation of ``sub`` in ``event``, its RESERVED ledger row (``reserved_kw``) and an event settlement."""
    part = ParticipationFactory(event=event, subscription=sub, status=participation_status)
    if reserved_kw is not None:
        Reservation.objects.create(event=event, subscription=sub, enrollment=sub.enrollment, device=sub.device,
                                   service_point=sub.enrollment.service_point, decision=ReservationDecision.RESERVED,
                                   capacity_kw=Decimal(reserved_kw), decided_at=event.start)
    return EventSettlement.objects.create(
        event=event, participation=part, program=event.program, enrollment=sub.enrollment,
        account=sub.enrollment.account, service_point=sub.enrollment.service_point, device=sub.device,
        status=status, kw_drop_avg=Decimal(kw_drop), kwh_avoided=Decimal(kwh if kwh is not None else kw_drop),
        amount=Decimal(amount), inputs=inputs or {}, event_day=event.start.date(), created_at=event.end,
        updated_at=event.end)


def build_fleet():
    program = ProgramFactory(code="fc", name="Forecast program", device_online_threshold_minutes=60)
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    d1 = device(program, "2.0", dt.datetime(2026, 7, 14, 15, 30, tzinfo=dt.UTC))
    d2 = device(program, "1.0", dt.datetime(2026, 7, 14, 14, 0, tzinfo=dt.UTC))
    d3 = device(program, "5.0", dt.datetime(2026, 7, 14, 15, 59, tzinfo=dt.UTC), type_="battery", territory="SOUTH")
    d4 = device(program, "3.0", None)
    device(program, "4.0", NOW, device_status=DeviceStatus.INACTIVE)
    device(program, "10.0", NOW, status=EnrollmentStatus.PENDING_APPROVAL)
    past = EventFactory(program=program, name="Past", start=dt.datetime(2026, 7, 1, 23, tzinfo=dt.UTC),
                        end=dt.datetime(2026, 7, 2, 1, tzinfo=dt.UTC),
                        notification_at=dt.datetime(2026, 7, 1, 21, tzinfo=dt.UTC), status=EventStatus.COMPLETED)
    settle(past, d1, kw_drop="1.2", reserved_kw="2.0")
    settle(past, d3, kw_drop="1.8", reserved_kw="2.0")
    settle(past, d2, kw_drop="5.0", status=EventSettlementStatus.PENDING)
    return program, {"d1": d1, "d2": d2, "d3": d3, "d4": d4, "past": past}
