"""Read path of the devices app: querysets with the joins their pages need, and the aggregator scope of a user."""

from __future__ import annotations

import datetime as dt

from django.db.models import Prefetch, Q, QuerySet

from .models import Aggregator, Device, DeviceInstallation, Premise, ServicePoint


def aggregator_of(user) -> Aggregator | None:
    """The aggregator whose API client ``user`` is, or None (staff and CSR users see everything; a superuser, who
    holds every capability, is never narrowed to one aggregator, and costs no query to tell)."""
    if user is None or not getattr(user, "is_authenticated", False) or getattr(user, "is_superuser", False):
        return None
    try:
        return user.aggregator
    except Aggregator.DoesNotExist:
        return None


def open_installations_prefetch() -> Prefetch:
    """Prefetch of each device's open installation (with its service point) into ``device.open_installations``."""
    return Prefetch("installations",
                    queryset=DeviceInstallation.objects.filter(removed_on__isnull=True).select_related(
                        "service_point"),
                    to_attr="open_installations")


def device_list(*, user=None) -> QuerySet[Device]:
    """Devices with aggregator and current installation; an aggregator's API client sees only its own."""
    qs = Device.objects.select_related("aggregator").prefetch_related(open_installations_prefetch())
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(aggregator=aggregator)
    return qs


def aggregator_list(*, user=None) -> QuerySet[Aggregator]:
    qs = Aggregator.objects.all()
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(pk=aggregator.pk)
    return qs


def service_point_list(*, user=None) -> QuerySet[ServicePoint]:
    """Service points with their premise; an aggregator sees only points where one of its devices is installed."""
    qs = ServicePoint.objects.select_related("premise")
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(installations__device__aggregator=aggregator).distinct()
    return qs


def premise_list(*, user=None) -> QuerySet[Premise]:
    qs = Premise.objects.all()
    aggregator = aggregator_of(user)
    if aggregator is not None:
        qs = qs.filter(service_points__installations__device__aggregator=aggregator).distinct()
    return qs


def installations_at(*, service_point_ids, on: dt.date) -> QuerySet[DeviceInstallation]:
    """Installations in effect on local date ``on`` at the given service points (``[installed_on, removed_on)``)."""
    return DeviceInstallation.objects.filter(
        Q(removed_on__isnull=True) | Q(removed_on__gt=on), service_point_id__in=service_point_ids,
        installed_on__lte=on).select_related("device", "service_point")


def installations_of(*, device_ids, on: dt.date) -> QuerySet[DeviceInstallation]:
    """Installations of the given devices in effect on local date ``on``."""
    return DeviceInstallation.objects.filter(
        Q(removed_on__isnull=True) | Q(removed_on__gt=on), device_id__in=device_ids, installed_on__lte=on)
