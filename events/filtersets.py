"""FilterSets shared by the API and pages."""

import django_filters

from cpm.base.filters import AwareIsoDateTimeFilter, IdFilter
from enrollments.models import ProgramSubscription

from .choices import DispatchKind, EventCategory, EventStatus, ParticipationStatus, ReservationDecision
from .models import DispatchMessage, Event, Participation, Reservation, Unavailability


class EventFilterSet(django_filters.FilterSet):
    program = django_filters.CharFilter(field_name="program__code", help_text="Program code.")
    status = django_filters.MultipleChoiceFilter(choices=EventStatus.choices)
    category = django_filters.ChoiceFilter(choices=EventCategory.choices)
    start_after = AwareIsoDateTimeFilter(field_name="start", lookup_expr="gte",
                                         help_text="ISO 8601 with a UTC offset; events starting at or after it.")
    start_before = AwareIsoDateTimeFilter(field_name="start", lookup_expr="lt",
                                          help_text="ISO 8601 with a UTC offset; events starting before it.")

    class Meta:
        model = Event
        fields = ["program", "status", "category", "direction"]


class ReservationFilterSet(django_filters.FilterSet):
    decision = django_filters.MultipleChoiceFilter(choices=ReservationDecision.choices)
    subscription = django_filters.ModelChoiceFilter(
        queryset=ProgramSubscription.objects.all(), method="_of_subscription",
        help_text="Program subscription id: its ledger rows in every event.")

    def _of_subscription(self, queryset, name, value):
        """A subscription's ledger rows, with its enrollment named: the ledger's index is (enrollment, subscription)
        (events migration 0016), and a row's enrollment is its subscription's (the key checked by the database)."""
        return queryset.filter(subscription=value, enrollment_id=value.enrollment_id)

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


class AggregatorMessageFilterSet(django_filters.FilterSet):
    """An aggregator polling its dispatch messages: ``after_id`` (those written after the last one it handled),
    ``event`` (id), ``kind`` (dispatch, modify, cancel, release)."""

    after_id = IdFilter(field_name="pk", lookup_expr="gt", help_text="Messages with an id greater than this one.")
    event = IdFilter(field_name="event_id", help_text="The event's id.")
    kind = django_filters.MultipleChoiceFilter(choices=DispatchKind.choices)

    class Meta:
        model = DispatchMessage
        fields = ["after_id", "event", "kind"]
