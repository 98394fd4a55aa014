"""Events: the read path, shared by the API, the admin and CSR pages (constant queries per page)."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from devices.models import Aggregator

from .choices import EventStatus, ReservationDecision
from .models import Event, Participation, Reservation, Unavailability


def decision_count_annotations() -> dict:
    """``n_<decision>`` counts of the reservation ledger, one per decision: correlated subqueries (index-only counts
    on ``(event_id, decision)``) evaluated for the listed page's events only, instead of a GROUP BY over the join
    with every reservation (which the pagination COUNT(*) repeated)."""
    def count(value: str):
        ledger = (Reservation.objects.filter(event_id=OuterRef("pk"), decision=value).order_by().values("event_id")
                  .annotate(n=Count("pk")).values("n"))
        return Coalesce(Subquery(ledger, output_field=IntegerField()), 0)

    return {f"n_{value}": count(value) for value in ReservationDecision.values}


def event_list() -> QuerySet[Event]:
    """Events with their program and the reservation counts by decision (one query)."""
    return (Event.objects.select_related("program").prefetch_related("target_devices")
            .annotate(**decision_count_annotations()).order_by("-start", "-id"))


def reservation_list() -> QuerySet[Reservation]:
    return Reservation.objects.select_related("event", "event__program", "device", "service_point",
                                              "enrollment")


def reservation_decisions_for_device(*, device_id: int) -> QuerySet[Reservation]:
    """"Why was my device (not) called?": every decision for a device, newest event first, with the detail
    sentence (for the CSR page)."""
    return reservation_list().filter(device_id=device_id).order_by("-event__start", "-id")


def participation_list() -> QuerySet[Participation]:
    return Participation.objects.select_related("event", "event__program", "device", "service_point",
                                                "enrollment", "opt_out")


def unavailability_list() -> QuerySet[Unavailability]:
    return Unavailability.objects.select_related("enrollment", "device")


def aggregator_for_user(user) -> Aggregator | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Aggregator.objects.filter(api_user=user).first()


def aggregator_events(*, aggregator: Aggregator) -> QuerySet[Event]:
    """Every upcoming (dispatched) or active event with a device of ``aggregator`` taking part, oldest start first;
    ``agg_participations`` holds that aggregator's participations (constant queries)."""
    from django.db.models import Prefetch

    mine = Participation.objects.filter(device__aggregator=aggregator).select_related("device").order_by("id")
    return (Event.objects.filter(status__in=(EventStatus.DISPATCHED, EventStatus.ACTIVE),
                                 participations__device__aggregator=aggregator)
            .distinct().select_related("program").order_by("start", "id")
            .prefetch_related(Prefetch("participations", queryset=mine, to_attr="agg_participations")))
