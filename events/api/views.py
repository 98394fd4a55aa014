"""Events API: ViewSets (input serializer -> service -> output serializer). Status changes are POST actions."""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cpm.base.errors import PermissionDenied
from cpm.base.tasks import enqueue_on_commit
from devices.models import Device

from .. import selectors, services
from ..filtersets import EventFilterSet, ParticipationFilterSet, ReservationFilterSet, UnavailabilityFilterSet
from ..tasks import reserve_event
from . import serializers as s


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Events with reservation counts by decision. Create and modify through services; statuses by actions."""

    queryset = selectors.event_list()
    serializer_class = s.EventSerializer
    filterset_class = EventFilterSet
    search_fields = ["name", "program__code"]
    ordering_fields = ["start", "id", "status"]

    def _out(self, event, code=status.HTTP_200_OK):
        return Response(s.EventSerializer(selectors.event_list().get(pk=event.pk)).data, status=code)

    @extend_schema(request=s.EventWriteSerializer, responses={201: s.EventSerializer})
    def create(self, request):
        data = s.EventWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.event_create(**data.validated_data, now=_now(), actor=request.user)
        return self._out(event, status.HTTP_201_CREATED)

    @extend_schema(request=s.EventUpdateSerializer, responses=s.EventSerializer)
    def partial_update(self, request, pk=None):
        event = self.get_object()
        data = s.EventUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason", "")
        services.event_update(event=event, changes=changes, now=_now(), actor=request.user, reason=reason)
        return self._out(event)

    @extend_schema(request=s.ScheduleSerializer, responses=s.EventSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        data = s.ScheduleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.event_schedule(event=self.get_object(), now=_now(), actor=request.user,
                                        **data.validated_data)
        return self._out(event)

    @extend_schema(request=None, responses=s.EventSerializer)
    @action(detail=True, methods=["post"])
    def dispatch_now(self, request, pk=None):
        """Dispatch before the notification time (the tick does it at notification time)."""
        return self._out(services.event_dispatch(event=self.get_object(), now=_now(), actor=request.user))

    @extend_schema(request=s.CancelSerializer, responses=s.EventSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        data = s.CancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.event_cancel(event=self.get_object(), reason=data.validated_data["reason"], now=_now(),
                                      actor=request.user)
        return self._out(event)

    @extend_schema(request=None, responses={202: s.EventSerializer})
    @action(detail=True, methods=["post"])
    def reserve(self, request, pk=None):
        """Run the reservation again (Celery task after commit; 202)."""
        event = self.get_object()
        if event.status != "scheduled":
            from cpm.base.errors import TransitionNotAllowed

            raise TransitionNotAllowed(f"Event {event} is {event.status}; devices are reserved only for a scheduled "
                                       "event.", from_status=event.status, to_status=event.status)
        enqueue_on_commit(reserve_event, event_id=event.pk)
        return self._out(event, status.HTTP_202_ACCEPTED)

    @extend_schema(responses=s.EventRevisionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def revisions(self, request, pk=None):
        return Response(s.EventRevisionSerializer(self.get_object().revisions.all(), many=True).data)


def _own_devices_only(queryset, user):
    """An aggregator's API client sees only the rows of its own devices; other users see all they may view."""
    aggregator = selectors.aggregator_for_user(user)
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
    queryset = selectors.participation_list().order_by("-start", "id")
    serializer_class = s.ParticipationSerializer
    filterset_class = ParticipationFilterSet
    # A CSR (or portal) opts out on the customer's behalf; an aggregator for its own devices (queryset below).
    action_permissions = {"opt_out": ("cpm.opt_out_on_behalf", "cpm.report_outcomes")}

    def get_queryset(self):
        return _own_devices_only(super().get_queryset(), self.request.user)

    @extend_schema(request=s.OptOutWriteSerializer, responses={201: s.ParticipationSerializer})
    @action(detail=True, methods=["post"], url_path="opt-out")
    def opt_out(self, request, pk=None):
        data = s.OptOutWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        participation = self.get_object()
        services.participation_opt_out(participation=participation, channel=data.validated_data["channel"],
                                       at=data.validated_data.get("at"), now=_now(), actor=request.user,
                                       reason=data.validated_data["reason"])
        fresh = selectors.participation_list().get(pk=participation.pk)
        return Response(s.ParticipationSerializer(fresh).data, status=status.HTTP_201_CREATED)


class UnavailabilityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                            viewsets.GenericViewSet):
    queryset = selectors.unavailability_list().order_by("start", "id")
    serializer_class = s.UnavailabilitySerializer
    filterset_class = UnavailabilityFilterSet

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.unavailability_create(
            enrollment=data["enrollment"], device=data.get("device"), start=data["start"], end=data["end"],
            reason=data.get("reason", ""), now=_now(), actor=self.request.user)


class IsAggregatorClient(permissions.BasePermission):
    """The request's user is an aggregator's API client (``Aggregator.api_user``)."""

    def has_permission(self, request, view):
        view.aggregator = selectors.aggregator_for_user(request.user)
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


class AggregatorOutcomeViewSet(viewsets.GenericViewSet):
    """Per-device outcomes in bulk; idempotent per (event, device, revision); per-row results."""

    permission_classes = [IsAggregatorClient]
    serializer_class = s.OutcomesSerializer
    filter_backends: list = []
    queryset = Device.objects.none()

    @extend_schema(request=s.OutcomesSerializer, responses=s.OutcomesResultSerializer)
    def create(self, request):
        data = s.OutcomesSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if self.aggregator is None:
            raise PermissionDenied("Only an aggregator's API client may report outcomes.")
        results = services.participation_outcomes_report(aggregator=self.aggregator,
                                                         outcomes=data.validated_data["outcomes"], now=_now(),
                                                         actor=request.user)
        return Response({"results": results})
