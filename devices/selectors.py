"""Read path of the devices app: querysets with the joins their pages need, and the aggregator scope of a user."""

from __future__ import annotations

import datetime as dt

from django.db.models import Prefetch, Q, QuerySet

from cpm.base.capabilities import Cap, permission_name
from cpm.base.errors import PermissionDenied

from .models import Aggregator, Device, DeviceInstallation, Premise, ServicePoint

# The scope of a user who acts as an aggregator (it holds the aggregator's capability ``report_outcomes``) but is the
# API client of none: the old client of an aggregator whose client was replaced, or a user made before the link.
# Not a row (pk 0 names none): every query narrowed to it finds nothing, every check of "its own" device refuses.
NO_AGGREGATOR_PK = 0


def unlinked_aggregator() -> Aggregator:
    return Aggregator(pk=NO_AGGREGATOR_PK, code="(no aggregator)", name="no aggregator")


def is_unlinked(aggregator: Aggregator | None) -> bool:
    """Whether ``aggregator`` (an ``aggregator_of`` answer) is the empty scope of an unlinked aggregator user."""
    return aggregator is not None and aggregator.pk == NO_AGGREGATOR_PK


def refuse_unlinked(user, aggregator: Aggregator | None) -> None:
    """Raise ``PermissionDenied`` (403, code ``aggregator_unlinked``) when ``aggregator`` is the empty scope of an
    aggregator's user linked to no aggregator: it writes nothing."""
    if is_unlinked(aggregator):
        who = getattr(user, "get_username", lambda: str(user))()
        raise PermissionDenied(f"{who} holds the Aggregator role but is not the API client of an aggregator: ask "
                               "the utility to link it to its aggregator.", code="aggregator_unlinked")


def aggregator_of(user) -> Aggregator | None:
    """The aggregator whose API client ``user`` is, or None (staff and CSR users see everything; a superuser, who
    holds every capability, is never narrowed to one aggregator, and costs no query to tell).

    A user holding the aggregator's capability (the Aggregator role) without being any aggregator's API client is
    narrowed to no aggregator (``unlinked_aggregator``: sees nothing, changes nothing), never widened to the
    utility's view of every aggregator's devices, enrollments and events."""
    if user is None or not getattr(user, "is_authenticated", False) or getattr(user, "is_superuser", False):
        return None
    try:
        return user.aggregator
    except Aggregator.DoesNotExist:
        has_perm = getattr(user, "has_perm", None)
        if callable(has_perm) and has_perm(permission_name(Cap.REPORT_OUTCOMES)):
            return unlinked_aggregator()
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
