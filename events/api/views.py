"""Events API: ViewSets (input serializer -> service -> output serializer). Status changes are POST actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cpm.base.api import ModelPermissions, api_now, validated
from cpm.base.errors import DomainValidationError, PermissionDenied, TransitionNotAllowed
from cpm.base.filters import FilterBackend
from cpm.base.naturalkeys import lookup_many
from cpm.base.tasks import enqueue_on_commit
from devices.models import Device
from devices.selectors import aggregator_of, refuse_unlinked

from .. import selectors, services
from ..filtersets import (
    AggregatorMessageFilterSet,
    EventFilterSet,
    ParticipationFilterSet,
    ReservationFilterSet,
    UnavailabilityFilterSet,
)
from ..models import DispatchMessage
from ..tasks import reserve_event
from . import serializers as s

DEVICE_KEYS = ("serial_number", "aggregator_device_id")


def _device_ids(data: dict) -> dict:
    """``target_device_ids`` named by id, serial number or aggregator device id -> ids (400 naming the field for an
    unknown or ambiguous device)."""
    keys = data.get("target_device_ids")
    if not keys:
        return data
    try:
        found = lookup_many(Device.objects.all(), keys, DEVICE_KEYS)
    except ValueError as exc:
        raise DomainValidationError({"target_device_ids": [str(exc)]}) from exc
    unknown = [key for key, device in zip(keys, found, strict=True) if device is None]
    if unknown:
        raise DomainValidationError({"target_device_ids": [
            f"No device has serial number, aggregator device id or id {unknown[0]!r}."]})
    return {**data, "target_device_ids": [d.pk for d in found]}


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Events with reservation counts by decision. Create and modify through services; statuses by actions."""

    queryset = selectors.event_list()
    serializer_class = s.EventSerializer
    filterset_class = EventFilterSet
    search_fields = ["name", "program__code"]
    ordering_fields = ["start", "id", "status"]
    use_cases = {"create": "event.create", "partial_update": "event.update", "schedule": "event.schedule",
                 "dispatch_now": "event.dispatch", "cancel": "event.cancel", "reserve": "event.reserve"}

    def get_queryset(self):
        """Every event for staff; an aggregator's client only the events of its own devices (404 for another's)."""
        return selectors.event_list(user=self.request.user)

    def _out(self, event, code=status.HTTP_200_OK):
        return Response(s.EventSerializer(selectors.event_list(user=self.request.user).get(pk=event.pk)).data,
                        status=code)

    @extend_schema(request=s.EventWriteSerializer, responses={201: s.EventSerializer})
    def create(self, request):
        event = services.event_create(**_device_ids(validated(s.EventWriteSerializer, request.data)), now=api_now(),
                                      actor=request.user)
        return self._out(event, status.HTTP_201_CREATED)

    @extend_schema(request=s.EventUpdateSerializer, responses=s.EventSerializer)
    def partial_update(self, request, pk=None):
        event = self.get_object()
        changes = _device_ids(validated(s.EventUpdateSerializer, request.data, partial=True))
        reason = changes.pop("reason", "")
        services.event_update(event=event, changes=changes, now=api_now(), actor=request.user, reason=reason)
        return self._out(event)

    @extend_schema(request=s.ScheduleSerializer, responses=s.EventSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        event = services.event_schedule(event=self.get_object(), now=api_now(), actor=request.user,
                                        **validated(s.ScheduleSerializer, request.data))
        return self._out(event)

    @extend_schema(request=None, responses=s.EventSerializer)
    @action(detail=True, methods=["post"])
    def dispatch_now(self, request, pk=None):
        """Dispatch before the notification time (the tick does it at notification time)."""
        return self._out(services.event_dispatch(event=self.get_object(), now=api_now(), actor=request.user))

    @extend_schema(request=s.CancelSerializer, responses=s.EventSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        data = validated(s.CancelSerializer, request.data)
        event = services.event_cancel(event=self.get_object(), reason=data["reason"], now=api_now(),
                                      actor=request.user)
        return self._out(event)

    @extend_schema(request=None, responses={202: s.EventSerializer})
    @action(detail=True, methods=["post"])
    def reserve(self, request, pk=None):
        """Run the reservation again (Celery task after commit, running ``event_reserve`` as the requesting user,
        who is named in the audit trail; the ``event.reserve`` capability is checked here first and by the service
        again; 202)."""
        event = self.get_object()
        if event.status != "scheduled":
            raise TransitionNotAllowed(f"Event {event} is {event.status}; devices are reserved only for a scheduled "
                                       "event.", from_status=event.status, to_status=event.status)
        enqueue_on_commit(reserve_event, event_id=event.pk, requested_by=request.user.pk)
        return self._out(event, status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.EventRevisionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # an event has a handful: one plain list
    def revisions(self, request, pk=None):
        """The event's revisions (each change after scheduling), oldest first: one list, not paginated."""
        return Response(s.EventRevisionSerializer(self.get_object().revisions.all(), many=True).data)


def _own_devices_only(queryset, user):
    """An aggregator's API client sees only the rows of its own devices; other users see all they may view."""
    aggregator = aggregator_of(user)
    return queryset if aggregator is None else queryset.filter(device__aggregator=aggregator)


class ReservationViewSet(viewsets.ReadOnlyModelViewSet):
    """The reservation ledger: one decision per candidate and event, with the reason in words."""

    # Newest events first by id (index order), not through a join on the event's start: constant at 100k rows.
    queryset = selectors.reservation_list().order_by("-event_id", "id")
    serializer_class = s.ReservationSerializer
    filterset_class = ReservationFilterSet
    ordering_fields = ["decided_at", "id", "capacity_kw"]

    def get_queryset(self):
        return _own_devices_only(super().get_queryset(), self.request.user)


class ParticipationViewSet(viewsets.ReadOnlyModelViewSet):
    """Participations: a device's part in an event (reserved, dispatched, participated, opted out, non-responsive,
    failed, cancelled) with its window; an aggregator sees its own devices' only."""

    queryset = selectors.participation_list().order_by("-start", "id")
    serializer_class = s.ParticipationSerializer
    filterset_class = ParticipationFilterSet
    # A CSR (or portal) opts out on the customer's behalf; an aggregator for its own devices (queryset below, and
    # the service refuses another aggregator's device).
    use_cases = {"opt_out": "participation.opt_out"}

    def get_queryset(self):
        return _own_devices_only(super().get_queryset(), self.request.user)

    @extend_schema(request=s.OptOutWriteSerializer, responses={201: s.ParticipationSerializer})
    @action(detail=True, methods=["post"], url_path="opt-out")
    def opt_out(self, request, pk=None):
        """Opt the device out of the event (channel, optional time ``at`` with an offset, reason); refused (409)
        after the program's opt-out cut-off or beyond its allowance. The minutes before the opt-out still count."""
        data = validated(s.OptOutWriteSerializer, request.data)
        participation = self.get_object()
        services.participation_opt_out(participation=participation, channel=data["channel"], at=data.get("at"),
                                       now=api_now(), actor=request.user, reason=data["reason"])
        fresh = selectors.participation_list().get(pk=participation.pk)
        return Response(s.ParticipationSerializer(fresh).data, status=status.HTTP_201_CREATED)


class UnavailabilityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                            viewsets.GenericViewSet):
    """Customer-declared periods ``[start, end)`` when an enrollment's devices (or one device) must not be called;
    reservations they cover are released at once."""

    queryset = selectors.unavailability_list().order_by("start", "id")
    serializer_class = s.UnavailabilitySerializer
    filterset_class = UnavailabilityFilterSet
    use_cases = {"create": "unavailability.create"}

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.unavailability_create(
            enrollment=data["enrollment"], device=data.get("device"), start=data["start"], end=data["end"],
            reason=data.get("reason", ""), now=api_now(), actor=self.request.user)


class IsAggregatorClient(permissions.BasePermission):
    """The request's user is an aggregator's API client (``Aggregator.api_user``)."""

    def has_permission(self, request, view):
        view.aggregator = aggregator_of(request.user)
        refuse_unlinked(request.user, view.aggregator)
        return view.aggregator is not None


class AggregatorEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """For an aggregator's API client: every upcoming (scheduled with reserved devices, dispatched) or active event
    in which its devices take part, oldest start first (all of them, not only the newest), with the revision to
    report outcomes against, the window, direction, target and its device ids."""

    permission_classes = [IsAggregatorClient]
    serializer_class = s.AggregatorEventSerializer
    filter_backends: list = []
    queryset = selectors.event_list().none()

    def get_queryset(self):
        return selectors.aggregator_events(aggregator=self.aggregator)


class AggregatorMessageViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """For an aggregator's API client: the dispatch messages cpm wrote for it (dispatch, modification,
    cancellation, release of devices), oldest first, with the payload its webhook is sent. An aggregator without a
    webhook (``delivery_status`` ``poll_only``) learns of a cancellation or a change here; one with a webhook can
    catch up after an outage. Poll with ``?after_id=<the last id handled>``; reading changes nothing."""

    permission_classes = [IsAggregatorClient]
    serializer_class = s.DispatchMessageSerializer
    filter_backends = [FilterBackend]
    filterset_class = AggregatorMessageFilterSet
    queryset = DispatchMessage.objects.none()

    def get_queryset(self):
        return selectors.aggregator_messages(aggregator=self.aggregator)


class AggregatorOutcomeViewSet(viewsets.GenericViewSet):
    """Per-device outcomes in bulk; idempotent per (event, device, revision); per-row results."""

    permission_classes = [IsAggregatorClient, ModelPermissions]
    use_cases = {"create": "participation.report_outcomes"}
    serializer_class = s.OutcomesSerializer
    filter_backends: list = []
    queryset = Device.objects.none()

    @extend_schema(request=s.OutcomesSerializer, responses=s.OutcomesResultSerializer)
    def create(self, request):
        data = validated(s.OutcomesSerializer, request.data)
        if self.aggregator is None:
            raise PermissionDenied("Only an aggregator's API client may report outcomes.")
        results = services.participation_outcomes_report(aggregator=self.aggregator,
                                                         outcomes=data["outcomes"], now=api_now(),
                                                         actor=request.user)
        return Response({"results": results})
