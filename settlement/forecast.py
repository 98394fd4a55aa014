"""Forecast of the kW a program can deliver in a window, for a targeting (a read: selectors, no use case).

    forecast kW = enrolled capacity x online rate x delivered share

- **enrolled capacity**: the summed ``capacity_kw`` of the devices a reservation would consider (the same
  targeting as ``events.services.reservation.CandidateFilters``: the program's subscriptions open on the window's
  local dates, of ACTIVE enrollments, inside the device-type / territory / substation / feeder / device targeting),
  restricted to ACTIVE devices (a device of another status is never reserved).
- **online rate**: the share of those devices (by count) seen online within the program's
  ``device_online_threshold_minutes`` before ``now`` (a device never seen counts offline), as the reservation
  checks it.
- **delivered share**: over the program's settled events ended by ``now`` (event settlements CALCULATED, DEFERRED or
  APPROVED), the summed delivered kW drop (``EventSettlement.kw_drop_avg``) divided by the summed reserved capacity
  (``Reservation.capacity_kw`` of RESERVED decisions) of those events: a ratio of sums, so big events weigh more.
  With no settled event with reserved capacity: ``DEFAULT_DELIVERED_SHARE`` (1.0: reserved capacity assumed
  delivered), reported as a default. Not clamped above 1 (a fleet can deliver more than its nameplate), never below 0.

The events app cannot read settlements, so settlement stores the forecast on the event: ``on_event_reserved``
subscribes to ``events.signals.event_reserved`` (sent in the reservation's transaction) and writes
``Event.forecast_kw`` with an audit entry (code ``event.forecast``) by the actor who ran the reservation. Device-less
programs (peak-time rebates) have no controllable capacity: their forecast is 0 kW.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, Q, Sum

from cpm.base.audit import audit_record
from cpm.base.timeutils import zone
from devices.choices import DeviceStatus
from enrollments.choices import EnrollmentStatus
from events.choices import ReservationDecision
from events.models import Event, Reservation
from events.selectors import ProgramContext
from events.services.reservation import CandidateFilters
from programs.models import Program

from .choices import EventSettlementStatus
from .models import EventSettlement

DEFAULT_DELIVERED_SHARE = Decimal("1")
SETTLED_STATUSES = (EventSettlementStatus.CALCULATED, EventSettlementStatus.DEFERRED, EventSettlementStatus.APPROVED)
_KW = Decimal("0.001")
_SHARE = Decimal("0.0001")


@dataclass(frozen=True)
class DeliveredShare:
    share: Decimal
    events: int  # settled events with reserved capacity the share is computed from
    delivered_kw: Decimal
    reserved_kw: Decimal

    @property
    def is_default(self) -> bool:
        return self.events == 0


@dataclass(frozen=True)
class Forecast:
    devices: int
    enrolled_kw: Decimal
    online_devices: int
    online_rate: Decimal
    delivered_share: Decimal
    share_events: int
    forecast_kw: Decimal

    @property
    def share_is_default(self) -> bool:
        return self.share_events == 0

    def explanation(self) -> str:
        history = (f"no settled event with reserved capacity yet: default delivered share {self.delivered_share}"
                   if self.share_is_default
                   else f"delivered share {self.delivered_share} over {self.share_events} settled event"
                        f"{'s' if self.share_events != 1 else ''}")
        return (f"{self.enrolled_kw} kW enrolled on {self.devices} device{'s' if self.devices != 1 else ''} x online "
                f"rate {self.online_rate} ({self.online_devices} online) x {history} = {self.forecast_kw} kW")

    def as_json(self) -> dict:
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(self).items()}


def forecast_kw(enrolled_kw: Decimal, online_rate: Decimal, delivered_share: Decimal) -> Decimal:
    """The product, rounded half-up to the watt."""
    return (Decimal(enrolled_kw) * Decimal(online_rate) * Decimal(delivered_share)).quantize(_KW, ROUND_HALF_UP)


def delivered_shares(*, program_ids: Iterable[int], exclude_event_id: int | None = None,
                     ended_by: dt.datetime | None = None) -> dict[int, DeliveredShare]:
    """The delivered share of each program (two queries whatever the number of programs or events). ``ended_by``:
    only events ended by that instant (a forecast as of a past day uses no later event)."""
    program_ids = list(program_ids)
    settled = EventSettlement.objects.filter(program_id__in=program_ids, status__in=SETTLED_STATUSES)
    if ended_by is not None:
        settled = settled.filter(event__end__lte=ended_by)
    settled = (settled.exclude(event_id=exclude_event_id).order_by().values("event_id", "program_id")
               .annotate(kw=Sum("kw_drop_avg")))
    delivered = {row["event_id"]: (row["program_id"], row["kw"] or Decimal(0)) for row in settled}
    reserved = dict(Reservation.objects.filter(event_id__in=list(delivered), decision=ReservationDecision.RESERVED)
                    .order_by().values("event_id").annotate(kw=Sum("capacity_kw")).values_list("event_id", "kw"))
    sums: dict[int, list] = {pid: [0, Decimal(0), Decimal(0)] for pid in program_ids}
    for event_id, (program_id, kw) in delivered.items():
        cap = reserved.get(event_id) or Decimal(0)
        if cap > 0:
            acc = sums[program_id]
            acc[0] += 1
            acc[1] += kw
            acc[2] += cap
    out = {}
    for pid, (n, kw, cap) in sums.items():
        share = max(Decimal(0), kw / cap).quantize(_SHARE, ROUND_HALF_UP) if n else DEFAULT_DELIVERED_SHARE
        out[pid] = DeliveredShare(share, n, kw, cap)
    return out


def available_kw_forecast(*, program: Program, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                          device_types: Iterable[str] = (), territories: Iterable[str] = (),
                          event: Event | None = None, share: DeliveredShare | None = None) -> Forecast:
    """The forecast for ``program`` in ``[start, end)`` (UTC) for the targeting (empty = all devices). ``event``:
    use a saved event's whole targeting instead (and leave it out of its own history). The delivered share comes
    from events ended by ``now``. Three queries (two fewer when ``share`` is given)."""
    if event is None:
        event = Event(program=program, start=start, end=end, target_device_types=list(device_types),
                      target_territories=list(territories))
    ctx = ProgramContext(program=program, tz=zone(program.time_zone), rules=[], seasons=[])
    online_since = now - dt.timedelta(minutes=program.device_online_threshold_minutes)
    subscriptions = CandidateFilters.of(event, ctx).queryset().filter(
        enrollment__status=EnrollmentStatus.ACTIVE, device__isnull=False, device__status=DeviceStatus.ACTIVE)
    agg = subscriptions.aggregate(devices=Count("pk"), kw=Sum("device__capacity_kw"),
                                  online=Count("pk", filter=Q(device__last_seen_at__gte=online_since)))
    devices, online = agg["devices"], agg["online"]
    enrolled = (agg["kw"] or Decimal(0)).quantize(_KW)
    rate = (Decimal(online) / Decimal(devices)).quantize(_SHARE, ROUND_HALF_UP) if devices else Decimal(0)
    if share is None:
        share = delivered_shares(program_ids=[program.pk], exclude_event_id=event.pk, ended_by=now)[program.pk]
    return Forecast(devices=devices, enrolled_kw=enrolled, online_devices=online, online_rate=rate,
                    delivered_share=share.share, share_events=share.events,
                    forecast_kw=forecast_kw(enrolled, rate, share.share))


def on_event_reserved(sender=None, *, event: Event, now: dt.datetime, actor: Any, **kwargs) -> Forecast:
    """Receiver of ``events.signals.event_reserved``: store the event's forecast (an internal step of
    ``event.reserve``/``event.update``, already checked; audited by the reservation's actor)."""
    program = event.program
    result = available_kw_forecast(program=program, start=event.start, end=event.end, now=now, event=event)
    Event.objects.filter(pk=event.pk).update(forecast_kw=result.forecast_kw)
    event.forecast_kw = result.forecast_kw
    audit_record(obj=event, action="update", now=now, actor=actor, reason="forecast", code="event.forecast",
                 changes={"forecast": result.as_json(), "explanation": result.explanation()})
    return result


def connect() -> None:
    from events.signals import event_reserved

    event_reserved.connect(on_event_reserved, sender=Event, dispatch_uid="settlement.forecast.on_event_reserved")
