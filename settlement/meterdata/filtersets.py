"""FilterSets of meter data, shared by the API (and any page listing loads or interval days)."""

from __future__ import annotations

import django_filters

from .models import IntervalDay, MeterDataLoad


class MeterDataLoadFilter(django_filters.FilterSet):
    class Meta:
        model = MeterDataLoad
        fields = {"status": ["exact"], "source": ["exact"], "created_at": ["gte", "lt"]}


class IntervalDayFilter(django_filters.FilterSet):
    service_point_id = django_filters.CharFilter(field_name="service_point__service_point_id")

    class Meta:
        model = IntervalDay
        fields = {"service_point": ["exact"], "device": ["exact", "isnull"], "channel": ["exact"],
                  "day": ["exact", "gte", "lte"], "is_current": ["exact"], "load": ["exact"]}
