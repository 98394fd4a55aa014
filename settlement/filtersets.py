"""FilterSets shared by the API and pages."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Exists, OuterRef, Q
from django_filters import rest_framework as rest_filters

from cpm.base.filters import AwareIsoDateTimeFilter, IdFilter, describe

from .choices import BatchKind, BatchStatus, CustomerSettlementStatus, EventSettlementStatus, ExportStatus, PeriodKind
from .models import AbnormalDay, BillCreditExport, CustomerSettlement, EventSettlement, SettlementBatch


class SettlementBatchFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=BatchKind.choices)
    status = filters.ChoiceFilter(choices=BatchStatus.choices)
    program = IdFilter(field_name="program_id")
    event = IdFilter(field_name="event_id")

    class Meta:
        model = SettlementBatch
        fields = ["kind", "status", "program", "event"]


class EventSettlementFilter(filters.FilterSet):
    """``period_after`` / ``period_before``: local event dates, inclusive."""

    program = IdFilter(field_name="program_id")
    program_code = filters.CharFilter(field_name="program__code")
    event = IdFilter(field_name="event_id")
    account = IdFilter(field_name="account_id")
    account_number = filters.CharFilter(field_name="account__account_number")
    service_point = IdFilter(field_name="service_point_id")
    status = filters.MultipleChoiceFilter(choices=EventSettlementStatus.choices)
    period_after = filters.DateFilter(field_name="event_day", lookup_expr="gte",
                                      help_text="Event day (program's local date) on or after this date (included).")
    period_before = filters.DateFilter(field_name="event_day", lookup_expr="lte",
                                       help_text="Event day (program's local date) on or before this date (included).")

    class Meta:
        model = EventSettlement
        fields = ["program", "program_code", "event", "account", "account_number", "service_point", "status",
                  "measurement_status"]


class CustomerSettlementFilter(filters.FilterSet):
    """``period_after``: periods ending after the date; ``period_before``: periods starting on or before it."""

    program = IdFilter(field_name="program_id")
    program_code = filters.CharFilter(field_name="program__code")
    account = IdFilter(field_name="account_id")
    account_number = filters.CharFilter(field_name="account__account_number")
    status = filters.MultipleChoiceFilter(choices=CustomerSettlementStatus.choices)
    period_kind = filters.ChoiceFilter(choices=PeriodKind.choices)
    period_after = filters.DateFilter(
        field_name="period_end", lookup_expr="gt",
        help_text="Periods whose last day is on or after this date (period_end, exclusive, later than it).")
    period_before = filters.DateFilter(
        field_name="period_start", lookup_expr="lte",
        help_text="Periods whose first day is on or before this date (period_start on or before it).")
    export_batch = IdFilter(field_name="export_batch_id")

    class Meta:
        model = CustomerSettlement
        fields = ["program", "program_code", "account", "account_number", "status", "period_kind", "export_batch"]


class BillCreditExportFilter(filters.FilterSet):
    """``program``: the batches holding the program's credits (its own batches and those exported for every program
    that hold its settlements); ``created_after`` / ``created_before``: instants, ``[after, before)``."""

    status = filters.ChoiceFilter(choices=ExportStatus.choices)
    program = IdFilter(method="filter_program")
    created_after = AwareIsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte",
        help_text="Created at or after this instant (ISO 8601 with its UTC offset; included).")
    created_before = AwareIsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt",
        help_text="Created before this instant (ISO 8601 with its UTC offset; not included).")

    class Meta:
        model = BillCreditExport
        fields = ["status", "program", "created_after", "created_before"]

    def filter_program(self, queryset, name, value):
        if value is None:
            return queryset
        holds = CustomerSettlement.objects.filter(export_batch=OuterRef("pk"), program_id=value)
        return queryset.filter(Q(program_id=value) | Q(program__isnull=True) & Exists(holds))


class AbnormalDayFilter(rest_filters.FilterSet):
    """The API's abnormal-day filters (as generated from ``Meta.fields`` before), described."""

    class Meta:
        model = AbnormalDay
        fields = {"scope": ["exact"], "kind": ["exact"], "day": ["exact", "gte", "lte"]}


describe(AbnormalDayFilter, day="The abnormal day (local date).",
         day__gte="Abnormal days on or after this date (included).",
         day__lte="Abnormal days on or before this date (included).")
