"""FilterSets shared by the API and pages."""

import django_filters

from .choices import EventCategory, EventStatus, ParticipationStatus, ReservationDecision
from .models import Event, Participation, Reservation, Unavailability


class EventFilterSet(django_filters.FilterSet):
    program = django_filters.CharFilter(field_name="program__code")
    status = django_filters.MultipleChoiceFilter(choices=EventStatus.choices)
    category = django_filters.ChoiceFilter(choices=EventCategory.choices)
    start_after = django_filters.IsoDateTimeFilter(field_name="start", lookup_expr="gte")
    start_before = django_filters.IsoDateTimeFilter(field_name="start", lookup_expr="lt")

    class Meta:
        model = Event
        fields = ["program", "status", "category", "direction"]


class ReservationFilterSet(django_filters.FilterSet):
    decision = django_filters.MultipleChoiceFilter(choices=ReservationDecision.choices)

    class Meta:
        model = Reservation
        fields = ["event", "device", "enrollment", "service_point", "subscription", "decision"]


class ParticipationFilterSet(django_filters.FilterSet):
    """``account`` (account number) and ``customer`` (CIS person id): one customer's events, as a portal lists them."""

    status = django_filters.MultipleChoiceFilter(choices=ParticipationStatus.choices)
    account = django_filters.CharFilter(field_name="enrollment__account__account_number",
                                        help_text="Account number.")
    customer = django_filters.CharFilter(field_name="enrollment__account__customer__cis_person_id",
                                         help_text="CIS person id.")

    class Meta:
        model = Participation
        fields = ["event", "device", "enrollment", "service_point", "status", "account", "customer"]


class UnavailabilityFilterSet(django_filters.FilterSet):
    class Meta:
        model = Unavailability
        fields = ["enrollment", "device"]
