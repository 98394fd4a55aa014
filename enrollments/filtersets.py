"""django-filter FilterSets of the enrollments app, shared by the API and pages."""

from __future__ import annotations

import django_filters as filters
from django.db.models import Q

from cpm.base.filters import IdFilter
from devices.choices import DeviceType

from .choices import AccountStatus, EnrollmentSource, EnrollmentStatus
from .models import Account, Customer, Enrollment, ProgramSubscription, ServiceAgreement


class CustomerFilterSet(filters.FilterSet):
    cis_person_id = filters.CharFilter()
    last_name = filters.CharFilter(lookup_expr="iexact")
    life_support = filters.BooleanFilter()

    class Meta:
        model = Customer
        fields = ["cis_person_id", "last_name", "life_support"]


class AccountFilterSet(filters.FilterSet):
    status = filters.ChoiceFilter(choices=AccountStatus.choices)
    customer = filters.CharFilter(field_name="customer__cis_person_id", help_text="CIS person id.")
    service_point = filters.CharFilter(field_name="service_agreements__service_point__service_point_id",
                                       distinct=True)

    class Meta:
        model = Account
        fields = ["status", "customer", "service_point"]


class ServiceAgreementFilterSet(filters.FilterSet):
    account = filters.CharFilter(field_name="account__account_number")
    service_point = filters.CharFilter(field_name="service_point__service_point_id")
    active_on = filters.DateFilter(method="filter_active_on", help_text="In effect on this local date.")

    class Meta:
        model = ServiceAgreement
        fields = ["account", "service_point", "active_on"]

    def filter_active_on(self, queryset, name, value):
        return queryset.filter(Q(end_date__isnull=True) | Q(end_date__gt=value), start_date__lte=value)


class EnrollmentFilterSet(filters.FilterSet):
    program = filters.CharFilter(field_name="program__code", help_text="Program code.")
    status = filters.MultipleChoiceFilter(choices=EnrollmentStatus.choices)
    source = filters.ChoiceFilter(choices=EnrollmentSource.choices)
    account = filters.CharFilter(field_name="account__account_number")
    customer = filters.CharFilter(field_name="account__customer__cis_person_id", help_text="CIS person id.")
    service_point = filters.CharFilter(field_name="service_point__service_point_id")
    aggregator = filters.CharFilter(method="filter_aggregator", help_text="Aggregator code of a subscribed device.")
    device_type = filters.ChoiceFilter(choices=DeviceType.choices, method="filter_device_type")
    territory = filters.CharFilter(field_name="service_point__premise__service_territory")
    substation = filters.CharFilter(field_name="service_point__premise__substation")
    feeder = filters.CharFilter(field_name="service_point__premise__feeder")
    effective_after = filters.DateFilter(
        field_name="effective_date", lookup_expr="gte",
        help_text="Effective date (program's local date) on or after this date (included).")
    effective_before = filters.DateFilter(
        field_name="effective_date", lookup_expr="lt",
        help_text="Effective date (program's local date) before this date; the date itself not included.")
    active_on = filters.DateFilter(method="filter_active_on",
                                   help_text="Enrolled on this local date ([effective_date, end_date)).")
    external_transaction_id = filters.CharFilter()

    class Meta:
        model = Enrollment
        fields = ["program", "status", "source", "account", "customer", "service_point", "aggregator", "device_type",
                  "territory", "substation", "feeder", "effective_after", "effective_before", "active_on",
                  "external_transaction_id"]

    def filter_aggregator(self, queryset, name, value):
        return queryset.filter(pk__in=ProgramSubscription.objects.filter(device__aggregator__code=value)
                               .values("enrollment_id"))

    def filter_device_type(self, queryset, name, value):
        return queryset.filter(pk__in=ProgramSubscription.objects.filter(device__device_type=value)
                               .values("enrollment_id"))

    def filter_active_on(self, queryset, name, value):
        return queryset.filter(Q(end_date__isnull=True) | Q(end_date__gt=value), effective_date__lte=value,
                               status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.SUSPENDED,
                                           EnrollmentStatus.UNENROLLED])


class SubscriptionFilterSet(filters.FilterSet):
    program = filters.CharFilter(field_name="enrollment__program__code")
    enrollment = IdFilter(field_name="enrollment_id")
    device = IdFilter(field_name="device_id")
    aggregator = filters.CharFilter(field_name="device__aggregator__code")
    device_type = filters.ChoiceFilter(field_name="device__device_type", choices=DeviceType.choices)
    active_on = filters.DateFilter(method="filter_active_on", help_text="Running on this local date.")
    open = filters.BooleanFilter(field_name="end_date", lookup_expr="isnull", label="Open (no end date)")

    class Meta:
        model = ProgramSubscription
        fields = ["program", "enrollment", "device", "aggregator", "device_type", "active_on", "open"]

    def filter_active_on(self, queryset, name, value):
        return queryset.filter(Q(end_date__isnull=True) | Q(end_date__gt=value), start_date__lte=value)
