"""FilterSets of meter data, shared by the API (and any page listing loads or interval days)."""

from __future__ import annotations

import django_filters

from cpm.base.filters import describe

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


describe(MeterDataLoadFilter,
         created_at__gte="Loads created at or after this instant (ISO 8601 with its UTC offset; included).",
         created_at__lt="Loads created before this instant (ISO 8601 with its UTC offset; not included).")
describe(IntervalDayFilter, day="The readings' day (the service point's local date).",
         day__gte="Readings' days on or after this date (included).",
         day__lte="Readings' days on or before this date (included).")
