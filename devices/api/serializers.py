"""Serializers of the devices API: output serializers render, input serializers validate (services write)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cpm.base.api import AwareDateTimeField
from cpm.base.naturalkeys import NaturalKeyRelatedField

from ..choices import DeviceOwnership, DeviceStatus, DeviceType
from ..models import Aggregator, Device, DeviceInstallation, Premise, ServicePoint


class PremiseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Premise
        fields = ["id", "premise_id", "address_line1", "address_line2", "city", "state", "postal_code",
                  "service_territory", "substation", "feeder", "transformer", "latitude", "longitude"]


class ServicePointSerializer(serializers.ModelSerializer):
    premise = serializers.CharField(source="premise.premise_id", read_only=True)
    service_territory = serializers.CharField(source="premise.service_territory", read_only=True)
    substation = serializers.CharField(source="premise.substation", read_only=True)
    feeder = serializers.CharField(source="premise.feeder", read_only=True)

    class Meta:
        model = ServicePoint
        fields = ["id", "service_point_id", "meter_number", "premise", "customer_class", "rate_code", "is_active",
                  "net_metered", "service_territory", "substation", "feeder"]


class AggregatorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Aggregator
        fields = ["id", "code", "name", "contact_name", "contact_email", "webhook_url"]


class InstallationSerializer(serializers.ModelSerializer):
    service_point = serializers.CharField(source="service_point.service_point_id", read_only=True)
    service_point_pk = serializers.IntegerField(source="service_point_id", read_only=True)

    class Meta:
        model = DeviceInstallation
        fields = ["id", "service_point", "service_point_pk", "installed_on", "removed_on"]


class DeviceSerializer(serializers.ModelSerializer):
    aggregator = serializers.CharField(source="aggregator.code", read_only=True)
    installation = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = ["id", "device_type", "manufacturer", "model", "serial_number", "aggregator",
                  "aggregator_device_id", "ownership", "capacity_kw", "usable_energy_kwh", "firmware_version",
                  "status", "last_seen_at", "installation", "created_at", "updated_at"]

    @extend_schema_field(InstallationSerializer(allow_null=True))
    def get_installation(self, obj):
        """The open installation (where the device is now), or null."""
        current = getattr(obj, "open_installations", None)
        if current is None:
            current = list(obj.installations.filter(removed_on__isnull=True).select_related("service_point"))
        return InstallationSerializer(current[0]).data if current else None


class DeviceRegisterSerializer(serializers.Serializer):
    aggregator = NaturalKeyRelatedField(keys=("code",), queryset=Aggregator.objects.all(), required=False,
                                        help_text="Aggregator code or id; implied for an aggregator's API client.")
    aggregator_device_id = serializers.CharField(max_length=128)
    device_type = serializers.ChoiceField(choices=DeviceType.choices)
    capacity_kw = serializers.DecimalField(max_digits=9, decimal_places=3, min_value=0)
    usable_energy_kwh = serializers.DecimalField(max_digits=9, decimal_places=3, min_value=0, required=False,
                                                 allow_null=True)
    manufacturer = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    model = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    serial_number = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    firmware_version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    ownership = serializers.ChoiceField(choices=DeviceOwnership.choices, default=DeviceOwnership.CUSTOMER_OWNED)


class DeviceUpdateSerializer(serializers.Serializer):
    device_type = serializers.ChoiceField(choices=DeviceType.choices, required=False)
    capacity_kw = serializers.DecimalField(max_digits=9, decimal_places=3, min_value=0, required=False)
    usable_energy_kwh = serializers.DecimalField(max_digits=9, decimal_places=3, min_value=0, required=False,
                                                 allow_null=True)
    manufacturer = serializers.CharField(max_length=100, required=False, allow_blank=True)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    serial_number = serializers.CharField(max_length=100, required=False, allow_blank=True)
    firmware_version = serializers.CharField(max_length=64, required=False, allow_blank=True)
    ownership = serializers.ChoiceField(choices=DeviceOwnership.choices, required=False)


class DeviceInstallSerializer(serializers.Serializer):
    service_point = NaturalKeyRelatedField(keys=("service_point_id",), queryset=ServicePoint.objects.all(),
                                           help_text="Service point id (the utility's) or cpm id.")
    installed_on = serializers.DateField()


class DeviceRemoveSerializer(serializers.Serializer):
    removed_on = serializers.DateField()


class DeviceStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DeviceStatus.choices)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class HeartbeatSerializer(serializers.Serializer):
    seen_at = AwareDateTimeField()
