"""django-filter FilterSets of the devices app, shared by the API and pages."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q

from cpm.base.filters import AwareIsoDateTimeFilter

from .choices import CustomerClass, DeviceStatus, DeviceType
from .models import Aggregator, Device, Premise, ServicePoint


class PremiseFilterSet(filters.FilterSet):
    territory = filters.CharFilter(field_name="service_territory")
    substation = filters.CharFilter()
    feeder = filters.CharFilter()
    postal_code = filters.CharFilter()

    class Meta:
        model = Premise
        fields = ["territory", "substation", "feeder", "postal_code"]


class ServicePointFilterSet(filters.FilterSet):
    premise = filters.CharFilter(field_name="premise__premise_id")
    territory = filters.CharFilter(field_name="premise__service_territory")
    substation = filters.CharFilter(field_name="premise__substation")
    feeder = filters.CharFilter(field_name="premise__feeder")
    customer_class = filters.ChoiceFilter(choices=CustomerClass.choices)
    rate_code = filters.CharFilter()
    is_active = filters.BooleanFilter()

    class Meta:
        model = ServicePoint
        fields = ["premise", "territory", "substation", "feeder", "customer_class", "rate_code", "is_active"]


class AggregatorFilterSet(filters.FilterSet):
    code = filters.CharFilter()

    class Meta:
        model = Aggregator
        fields = ["code"]


class DeviceFilterSet(filters.FilterSet):
    aggregator = filters.CharFilter(field_name="aggregator__code", help_text="Aggregator code.")
    device_type = filters.ChoiceFilter(choices=DeviceType.choices)
    status = filters.ChoiceFilter(choices=DeviceStatus.choices)
    manufacturer = filters.CharFilter(lookup_expr="iexact")
    serial_number = filters.CharFilter()
    aggregator_device_id = filters.CharFilter()
    service_point = filters.CharFilter(method="filter_service_point",
                                       help_text="Service point id where the device is installed now.")
    territory = filters.CharFilter(method="filter_territory", help_text="Territory of its current service point.")
    seen_since = AwareIsoDateTimeFilter(field_name="last_seen_at", lookup_expr="gte",
                                        help_text="ISO 8601 with a UTC offset; devices seen at or after it.")

    class Meta:
        model = Device
        fields = ["aggregator", "device_type", "status", "manufacturer", "serial_number", "aggregator_device_id",
                  "service_point", "territory", "seen_since"]

    def filter_service_point(self, queryset, name, value):
        return queryset.filter(installations__removed_on__isnull=True,
                               installations__service_point__service_point_id=value)

    def filter_territory(self, queryset, name, value):
        return queryset.filter(Q(installations__removed_on__isnull=True)
                               & Q(installations__service_point__premise__service_territory=value))
