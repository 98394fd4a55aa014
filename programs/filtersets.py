"""FilterSets of the programs app, shared by the API and pages."""

from __future__ import annotations

import django_filters
from django.db import connection
from django.db.models import Exists, OuterRef

from cpm.base.filters import IdFilter

from .choices import DeviceType, ProgramStatus, ProgramType
from .models import (
    IncentiveRule,
    IntervalPriceSet,
    MutualExclusion,
    ParticipationRule,
    Program,
    QualificationQuestion,
    Season,
)


def filter_device_type(queryset, name: str, value: str):
    """Programs whose ``eligible_device_types`` list contains ``value``.

    PostgreSQL uses JSON containment (``@>``, indexable); SQLite has no containment lookup, so it matches the quoted
    code in the stored JSON text (safe because ``value`` is a known device type code without quotes).
    """
    if not value:
        return queryset
    if connection.features.supports_json_field_contains:
        return queryset.filter(eligible_device_types__contains=[value])
    return queryset.filter(eligible_device_types__icontains=f'"{value}"')


class ProgramFilterSet(django_filters.FilterSet):
    program_type = django_filters.MultipleChoiceFilter(choices=ProgramType.choices)
    status = django_filters.MultipleChoiceFilter(choices=ProgramStatus.choices)
    device_type = django_filters.ChoiceFilter(choices=DeviceType.choices, method="filter_device_type",
                                              label="Eligible device type")
    season_date = django_filters.DateFilter(method="filter_season_date",
                                            label="Programs with a season containing this local date")
    code = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Program
        fields = ["program_type", "status", "device_type", "season_date", "code", "settlement_timing"]

    def filter_device_type(self, queryset, name, value):
        return filter_device_type(queryset, name, value)

    def filter_season_date(self, queryset, name, value):
        if not value:
            return queryset
        seasons = Season.objects.filter(program=OuterRef("pk"), start_date__lte=value, end_date__gte=value)
        return queryset.filter(Exists(seasons))


class SeasonFilterSet(django_filters.FilterSet):
    contains_date = django_filters.DateFilter(method="filter_contains", label="Season containing this local date")

    class Meta:
        model = Season
        fields = ["program", "contains_date"]

    def filter_contains(self, queryset, name, value):
        return queryset.filter(start_date__lte=value, end_date__gte=value) if value else queryset


class ParticipationRuleFilterSet(django_filters.FilterSet):
    class Meta:
        model = ParticipationRule
        fields = ["program"]


class IncentiveRuleFilterSet(django_filters.FilterSet):
    class Meta:
        model = IncentiveRule
        fields = ["program", "season", "kind"]


class QuestionFilterSet(django_filters.FilterSet):
    class Meta:
        model = QualificationQuestion
        fields = ["program", "answer_type"]


class PriceSetFilterSet(django_filters.FilterSet):
    class Meta:
        model = IntervalPriceSet
        fields = ["program"]


class MutualExclusionFilterSet(django_filters.FilterSet):
    program = IdFilter(method="filter_program", label="Either program of the pair")

    class Meta:
        model = MutualExclusion
        fields = ["program"]

    def filter_program(self, queryset, name, value):
        from django.db.models import Q

        return queryset.filter(Q(program_a_id=value) | Q(program_b_id=value)) if value else queryset
