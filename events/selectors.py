"""Events: the read path, shared by the API, the admin and CSR pages (constant queries per page)."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from devices.models import Aggregator

from .choices import EventStatus, ParticipationStatus, ReservationDecision
from .models import Event, Participation, Reservation, Unavailability


def decision_count_annotations() -> dict:
    """``n_<decision>`` counts of the reservation ledger, one per decision (aggregated in the list query)."""
    return {f"n_{value}": Count("reservations", filter=Q(reservations__decision=value))
            for value in ReservationDecision.values}


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


AGGREGATOR_EVENT_STATUSES = (EventStatus.SCHEDULED, EventStatus.DISPATCHED, EventStatus.ACTIVE)


def aggregator_events(*, aggregator: Aggregator) -> QuerySet[Event]:
    """Every upcoming (SCHEDULED with reserved participations, DISPATCHED) or ACTIVE event in which a device of
    ``aggregator`` takes part (a participation that is not cancelled), oldest start first, all of them (back-to-back
    events are both listed). ``agg_participations`` holds that aggregator's participations with their devices, in
    id order. A constant number of queries (the events, then the participations) whatever the number of rows."""
    mine = (Participation.objects.filter(device__aggregator=aggregator).exclude(status=ParticipationStatus.CANCELLED)
            .select_related("device").order_by("id"))
    return (Event.objects.filter(status__in=AGGREGATOR_EVENT_STATUSES)
            .filter(Exists(mine.filter(event_id=OuterRef("pk"))))
            .select_related("program").order_by("start", "id")
            .prefetch_related(Prefetch("participations", queryset=mine, to_attr="agg_participations")))
