"""The demo's forecast section: per event, the available-kW forecast stored when it was reserved
(``settlement.forecast``) against the kW drop its settled participations delivered. Kept apart from
``cpm.demo.report`` (its settlement sections change on their own)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, Sum

from events.models import Event
from settlement.forecast import SETTLED_STATUSES, delivered_shares
from settlement.models import EventSettlement


def forecast_rows(event_ids: list[int]) -> list[tuple[Event, Decimal | None, Decimal, int]]:
    """``(event, forecast kW, delivered kW drop, settled participations)`` in event order (two queries)."""
    events = list(Event.objects.filter(pk__in=event_ids).select_related("program").order_by("program__name", "start"))
    delivered = {row["event_id"]: (row["kw"] or Decimal(0), row["n"]) for row in
                 EventSettlement.objects.filter(event_id__in=event_ids, status__in=SETTLED_STATUSES).order_by()
                 .values("event_id").annotate(kw=Sum("kw_drop_avg"), n=Count("pk"))}
    return [(e, e.forecast_kw, *delivered.get(e.pk, (Decimal(0), 0))) for e in events]


def forecast_text(event_ids: list[int]) -> str:
    rows = forecast_rows(event_ids)
    if not rows:
        return ""
    out = ["", "Forecast of available kW (stored when each event was reserved: enrolled capacity x online rate x the "
                "program's delivered share in its events settled by then) versus the kW drop delivered:"]
    out.append(f"  {'event':44} {'forecast kW':>12} {'delivered kW':>13} {'ratio':>6} {'settled':>8}")
    for event, forecast, delivered, n in rows:
        ratio = f"{delivered / forecast:6.2f}" if forecast else f"{'-':>6}"
        shown = f"{forecast:12.1f}" if forecast is not None else f"{'not stored':>12}"
        out.append(f"  {event.name[:44]:44} {shown} {delivered:13.1f} {ratio} {n:8d}")
    shares = delivered_shares(program_ids=sorted({e.program_id for e, *_ in rows}))
    names = {e.program_id: e.program.name for e, *_ in rows}
    for pid, share in shares.items():
        basis = ("no settled event with reserved capacity: default" if share.is_default else
                 f"{share.delivered_kw:.1f} kW delivered / {share.reserved_kw:.1f} kW reserved over {share.events} "
                 f"settled event{'s' if share.events != 1 else ''}")
        out.append(f"  {names[pid]}: delivered share now {share.share} ({basis})")
    return "\n".join(out)
