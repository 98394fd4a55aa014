"""Devices API (under /api/v1/): input serializer -> service -> output serializer.

An aggregator's API client (``Aggregator.api_user``) sees and changes only its own devices: every queryset is
filtered, so another aggregator's device is a 404.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cpm.base.api import WriteThrottle, api_now, validated
from cpm.base.errors import DomainValidationError, PermissionDenied

from .. import selectors, services
from ..filtersets import AggregatorFilterSet, DeviceFilterSet, PremiseFilterSet, ServicePointFilterSet
from . import serializers as s


class PremiseViewSet(viewsets.ReadOnlyModelViewSet):
    """Premises (loaded from CIS extracts; read-only here)."""

    serializer_class = s.PremiseSerializer
    filterset_class = PremiseFilterSet
    search_fields = ["premise_id", "address_line1", "city", "postal_code"]
    ordering_fields = ["premise_id", "city"]

    def get_queryset(self):
        return selectors.premise_list(user=self.request.user)


class ServicePointViewSet(viewsets.ReadOnlyModelViewSet):
    """Service points with their premise's network location (loaded from CIS extracts)."""

    serializer_class = s.ServicePointSerializer
    filterset_class = ServicePointFilterSet
    search_fields = ["service_point_id", "meter_number", "premise__premise_id"]
    ordering_fields = ["service_point_id"]

    def get_queryset(self):
        return selectors.service_point_list(user=self.request.user)


class AggregatorViewSet(viewsets.ReadOnlyModelViewSet):
    """Aggregators (OEM clouds and DERMS that operate customers' devices): code, name, contact, webhook; written in
    the admin."""

    serializer_class = s.AggregatorSerializer
    filterset_class = AggregatorFilterSet
    search_fields = ["code", "name"]

    def get_queryset(self):
        return selectors.aggregator_list(user=self.request.user)


class DeviceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Devices: register (POST), update attributes (PATCH), and actions install, remove, set-status, heartbeat."""

    serializer_class = s.DeviceSerializer
    filterset_class = DeviceFilterSet
    search_fields = ["serial_number", "aggregator_device_id", "manufacturer", "model"]
    ordering_fields = ["id", "last_seen_at", "capacity_kw"]
    throttle_classes = [WriteThrottle]
    use_cases = {"create": "device.register", "partial_update": "device.update", "install": "device.install",
                 "remove": "device.remove", "set_status": "device.set_status", "heartbeat": "device.heartbeat"}

    def get_queryset(self):
        return selectors.device_list(user=self.request.user)

    def _render(self, device, code=status.HTTP_200_OK):
        device = self.get_queryset().get(pk=device.pk)
        return Response(s.DeviceSerializer(device).data, status=code)

    @extend_schema(request=s.DeviceRegisterSerializer, responses={201: s.DeviceSerializer})
    def create(self, request):
        data = validated(s.DeviceRegisterSerializer, request.data)
        own = selectors.aggregator_of(request.user)
        aggregator = data.pop("aggregator", None)
        if own is not None:
            selectors.refuse_unlinked(request.user, own)
            if aggregator is not None and aggregator != own:
                raise PermissionDenied("An aggregator registers only its own devices.", field="aggregator")
            aggregator = own
        if aggregator is None:
            raise DomainValidationError({"aggregator": ["This field is required."]})
        device = services.device_register(aggregator=aggregator, **data, now=api_now(), actor=request.user)
        return self._render(device, status.HTTP_201_CREATED)

    @extend_schema(request=s.DeviceUpdateSerializer, responses=s.DeviceSerializer)
    def partial_update(self, request, pk=None):
        device = self.get_object()
        data = validated(s.DeviceUpdateSerializer, request.data)
        services.device_update(device=device, data=data, now=api_now(), actor=request.user)
        return self._render(device)

    @extend_schema(request=s.DeviceInstallSerializer, responses=s.DeviceSerializer)
    @action(detail=True, methods=["post"])
    def install(self, request, pk=None):
        device = self.get_object()
        data = validated(s.DeviceInstallSerializer, request.data)
        services.device_install(device=device, **data, now=api_now(), actor=request.user)
        return self._render(device)

    @extend_schema(request=s.DeviceRemoveSerializer, responses=s.DeviceSerializer)
    @action(detail=True, methods=["post"])
    def remove(self, request, pk=None):
        device = self.get_object()
        data = validated(s.DeviceRemoveSerializer, request.data)
        services.device_remove(device=device, **data, now=api_now(), actor=request.user)
        return self._render(device)

    @extend_schema(request=s.DeviceStatusSerializer, responses=s.DeviceSerializer)
    @action(detail=True, methods=["post"], url_path="set-status")
    def set_status(self, request, pk=None):
        device = self.get_object()
        data = validated(s.DeviceStatusSerializer, request.data)
        services.device_set_status(device=device, **data, now=api_now(), actor=request.user)
        return self._render(device)

    @extend_schema(request=s.HeartbeatSerializer, responses=s.DeviceSerializer)
    @action(detail=True, methods=["post"])
    def heartbeat(self, request, pk=None):
        device = self.get_object()
        data = validated(s.HeartbeatSerializer, request.data)
        services.device_heartbeat(device=device, **data, now=api_now(), actor=request.user)
        return self._render(device)
