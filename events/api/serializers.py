"""Input and output serializers of the events API (input -> service -> output)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cpm.base.api import AwareDateTimeField
from cpm.base.naturalkeys import KeyField, NaturalKeyRelatedField
from devices.choices import DeviceType
from devices.models import Device
from enrollments.models import Enrollment
from programs.models import Program

from ..choices import EventCategory, EventDirection, OptOutChannel, ParticipationStatus, ReservationDecision
from ..models import DispatchMessage, Event, EventRevision, OptOut, Participation, Reservation, Unavailability


class WallClockDateTimeField(serializers.DateTimeField):
    """An ISO datetime; with an offset it is an instant, without one it is local wall-clock time in the program's
    zone (the service refuses times skipped or repeated by a DST change)."""

    def enforce_timezone(self, value):
        return value


class EventWriteSerializer(serializers.Serializer):
    program = NaturalKeyRelatedField(keys=("code",), queryset=Program.objects.all(), help_text="Program code or id.")
    name = serializers.CharField(max_length=200)
    category = serializers.ChoiceField(choices=EventCategory.choices, default=EventCategory.ECONOMIC)
    direction = serializers.ChoiceField(choices=EventDirection.choices, default=EventDirection.REDUCE)
    start = WallClockDateTimeField()
    end = WallClockDateTimeField()
    notification_at = WallClockDateTimeField(required=False, allow_null=True)
    target_territories = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    target_substations = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    target_feeders = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    target_device_types = serializers.ListField(child=serializers.CharField(max_length=20), required=False)
    target_device_ids = serializers.ListField(child=KeyField(), required=False,
                                              help_text="Devices by id, serial number or aggregator device id.")
    target_kw = serializers.DecimalField(max_digits=12, decimal_places=3, required=False, allow_null=True)


class EventUpdateSerializer(EventWriteSerializer):
    program = None
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ScheduleSerializer(serializers.Serializer):
    override_rules = serializers.BooleanField(default=False)
    override_reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class LocalWindowSerializer(serializers.Serializer):
    """``start_local``/``end_local``: the event window in the program's zone (ISO with offset)."""

    start_local = serializers.SerializerMethodField()
    end_local = serializers.SerializerMethodField()

    def _local(self, obj, value):
        return value.astimezone(ZoneInfo(obj.program.time_zone)).isoformat()

    @extend_schema_field(serializers.CharField())
    def get_start_local(self, obj) -> str:
        return self._local(obj, obj.start)

    @extend_schema_field(serializers.CharField())
    def get_end_local(self, obj) -> str:
        return self._local(obj, obj.end)


class EventSerializer(LocalWindowSerializer, serializers.ModelSerializer):
    program = serializers.SlugRelatedField(slug_field="code", read_only=True)
    # Plain strings in the schema: status enums of several apps share the field name (see events.choices).
    status = serializers.CharField(read_only=True, help_text="draft, scheduled, dispatched, active, completed, "
                                                             "cancelled")
    duration_minutes = serializers.SerializerMethodField()
    quarter_hours = serializers.SerializerMethodField()
    target_devices = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    reservation_counts = serializers.SerializerMethodField()
    # Stored as JSON lists: declared so that the schema gives their items (they were "any value").
    target_territories = serializers.ListField(child=serializers.CharField(), read_only=True)
    target_substations = serializers.ListField(child=serializers.CharField(), read_only=True)
    target_feeders = serializers.ListField(child=serializers.CharField(), read_only=True)
    target_device_types = serializers.ListField(child=serializers.ChoiceField(choices=DeviceType.choices),
                                                read_only=True)

    class Meta:
        model = Event
        fields = ["id", "program", "name", "category", "direction", "status", "revision", "start", "end",
                  "notification_at", "start_local", "end_local", "duration_minutes", "quarter_hours",
                  "target_territories", "target_substations", "target_feeders", "target_device_types",
                  "target_devices", "target_kw", "overrides_rules", "override_reason", "cancel_reason",
                  "reserved_at", "settlement_handed_off_at", "reservation_counts"]

    def get_duration_minutes(self, obj) -> float:
        return (obj.end - obj.start).total_seconds() / 60

    def get_quarter_hours(self, obj) -> int:
        """Whole quarter-hours of real elapsed time (16 for 00:00-03:00 local on the autumn DST night)."""
        return int((obj.end - obj.start).total_seconds() // 900)

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_reservation_counts(self, obj) -> dict:
        """Counts by decision (annotated by the list query; empty decisions left out)."""
        return {d: getattr(obj, f"n_{d}") for d in ReservationDecision.values if getattr(obj, f"n_{d}", 0)}


class EventRevisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = EventRevision
        fields = ["revision", "snapshot", "changed_at", "changed_by", "reason"]


class ReservationSerializer(serializers.ModelSerializer):
    event_name = serializers.CharField(source="event.name", read_only=True)
    program = serializers.CharField(source="event.program.code", read_only=True)
    decision_label = serializers.CharField(source="get_decision_display", read_only=True)

    class Meta:
        model = Reservation
        fields = ["id", "event", "event_name", "program", "subscription", "enrollment", "device", "service_point",
                  "decision", "decision_label", "detail", "capacity_kw", "decided_at"]


class OptOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = OptOut
        fields = ["id", "participation", "channel", "at", "reason"]


class ParticipationSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="reserved, dispatched, participated, opted_out, "
                                                             "non_responsive, failed, cancelled")
    opt_out = OptOutSerializer(read_only=True, allow_null=True)
    minutes_participated = serializers.FloatField(read_only=True)

    class Meta:
        model = Participation
        fields = ["id", "event", "subscription", "enrollment", "device", "service_point", "status", "start", "end",
                  "opted_out_at", "minutes_participated", "outcome_revision", "outcome_reported_at", "opt_out"]


class OptOutWriteSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=[OptOutChannel.CSR, OptOutChannel.PORTAL,
                                               OptOutChannel.AGGREGATOR_API], default=OptOutChannel.CSR)
    at = AwareDateTimeField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class UnavailabilitySerializer(serializers.ModelSerializer):
    enrollment = serializers.PrimaryKeyRelatedField(queryset=Enrollment.objects.all())
    device = NaturalKeyRelatedField(keys=("serial_number", "aggregator_device_id"), queryset=Device.objects.all(),
                                    required=False, allow_null=True,
                                    help_text="Serial number, aggregator device id or id; empty = all devices.")
    start = AwareDateTimeField()
    end = AwareDateTimeField()

    class Meta:
        model = Unavailability
        fields = ["id", "enrollment", "device", "start", "end", "reason", "created_at"]
        read_only_fields = ["created_at"]


class DispatchMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = DispatchMessage
        fields = ["id", "event", "kind", "revision", "payload", "delivery_status", "attempts", "created_at"]


class AggregatorDeviceSerializer(serializers.Serializer):
    device = serializers.CharField(source="device.aggregator_device_id", help_text="The aggregator's device id.")
    participation = serializers.IntegerField(source="pk")
    status = serializers.CharField(help_text="reserved, dispatched, participated, opted_out, non_responsive, failed")
    capacity_kw = serializers.DecimalField(source="device.capacity_kw", max_digits=9, decimal_places=3,
                                           allow_null=True)
    opted_out_at = serializers.DateTimeField(allow_null=True)


class AggregatorEventSerializer(LocalWindowSerializer, serializers.ModelSerializer):
    """One event as an aggregator polls it: the revision to report outcomes against, the window (UTC and in the
    program's zone), direction, target and the aggregator's own devices taking part."""

    program = serializers.SlugRelatedField(slug_field="code", read_only=True)
    status = serializers.CharField(read_only=True, help_text="scheduled, dispatched or active")
    time_zone = serializers.CharField(source="program.time_zone", read_only=True)
    device_ids = serializers.SerializerMethodField()
    devices = AggregatorDeviceSerializer(source="agg_participations", many=True, read_only=True)

    class Meta:
        model = Event
        fields = ["id", "program", "name", "category", "direction", "status", "revision", "start", "end",
                  "start_local", "end_local", "time_zone", "notification_at", "target_kw", "device_ids", "devices"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_device_ids(self, obj) -> list[str]:
        """The aggregator's device ids taking part (opted-out ones included: their status says so)."""
        return [p.device.aggregator_device_id for p in obj.agg_participations]


OUTCOMES = (ParticipationStatus.PARTICIPATED.value, ParticipationStatus.OPTED_OUT.value,
            ParticipationStatus.NON_RESPONSIVE.value, ParticipationStatus.FAILED.value)


class OutcomeRowSerializer(serializers.Serializer):
    event = serializers.IntegerField()
    device = serializers.CharField(max_length=128, help_text="The aggregator's device id.")
    revision = serializers.IntegerField(min_value=1)
    status = serializers.CharField(help_text="participated, opted_out, non_responsive or failed.")
    opted_out_at = AwareDateTimeField(required=False, allow_null=True)

    def validate_status(self, value: str) -> str:
        if value not in OUTCOMES:
            raise serializers.ValidationError(f"Must be one of {', '.join(OUTCOMES)}.")
        return value

    def validate(self, attrs: dict) -> dict:
        """The time of an opt-out goes only with ``opted_out`` (another status would drop it silently)."""
        if attrs.get("opted_out_at") is not None and attrs["status"] != ParticipationStatus.OPTED_OUT:
            raise serializers.ValidationError({"opted_out_at": [
                f"Only an opted_out outcome has an opted_out_at (this row is {attrs['status']})."]})
        return attrs


class OutcomesSerializer(serializers.Serializer):
    outcomes = OutcomeRowSerializer(many=True, allow_empty=False, max_length=10000)


class OutcomeResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    event = serializers.IntegerField()
    device = serializers.CharField()
    result = serializers.ChoiceField(choices=["recorded", "unchanged", "error"])
    detail = serializers.CharField(allow_blank=True)


class OutcomesResultSerializer(serializers.Serializer):
    results = OutcomeResultSerializer(many=True)


class ReserveResultSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
