"""Serializers of the settlement API: output serializers for lists and details, input serializers for actions."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from cpm.base.naturalkeys import NaturalKeyRelatedField
from cpm.base.uploads import validate_upload
from devices.models import ServicePoint
from events.models import Event
from programs.models import Program, Season

from ..choices import PeriodKind
from ..models import AbnormalDay, BillCreditExport, CustomerSettlement, EventSettlement, SettlementBatch, SettlementLine


class SettlementBatchSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)
    program_code = serializers.CharField(source="program.code", read_only=True, default=None)

    class Meta:
        model = SettlementBatch
        fields = ["id", "kind", "status", "program", "program_code", "event", "season", "period_start", "period_end",
                  "chunks_total", "chunks_done", "progress_percent", "items_total", "items_calculated",
                  "items_unchanged", "items_corrected", "items_pending", "items_failed", "errors", "actor_label",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class SettlementLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = SettlementLine
        fields = ["id", "kind", "line_code", "amount", "quantity", "unit", "rate", "description", "incentive_key",
                  "event_settlement", "customer_settlement", "reverses", "event_revision", "created_at"]
        read_only_fields = fields


class EventSettlementSerializer(serializers.ModelSerializer):
    account_number = serializers.CharField(source="account.account_number", read_only=True)
    service_point_id = serializers.CharField(source="service_point.service_point_id", read_only=True)
    program_code = serializers.CharField(source="program.code", read_only=True)
    event_name = serializers.CharField(source="event.name", read_only=True)

    class Meta:
        model = EventSettlement
        fields = ["id", "event", "event_name", "event_day", "participation", "program", "program_code", "enrollment",
                  "account", "account_number", "service_point", "service_point_id", "device", "status",
                  "measurement_status", "method", "kwh_avoided", "kw_drop_avg", "participation_fraction",
                  "opted_out", "amount", "posted_amount", "revision", "explanation", "calculated_at", "approved_at"]
        read_only_fields = fields


class EventSettlementDetailSerializer(EventSettlementSerializer):
    lines = SettlementLineSerializer(many=True, read_only=True)

    class Meta(EventSettlementSerializer.Meta):
        fields = [*EventSettlementSerializer.Meta.fields, "components", "inputs", "lines"]
        read_only_fields = fields


class CustomerSettlementSerializer(serializers.ModelSerializer):
    account_number = serializers.CharField(source="account.account_number", read_only=True)
    program_code = serializers.CharField(source="program.code", read_only=True)

    class Meta:
        model = CustomerSettlement
        fields = ["id", "account", "account_number", "program", "program_code", "season", "period_kind",
                  "period_start", "period_end", "status", "total_amount", "explanation", "export_batch",
                  "calculated_at", "approved_at", "exported_at"]
        read_only_fields = fields


class CustomerSettlementDetailSerializer(CustomerSettlementSerializer):
    lines = SettlementLineSerializer(many=True, read_only=True)

    class Meta(CustomerSettlementSerializer.Meta):
        fields = [*CustomerSettlementSerializer.Meta.fields, "inputs", "lines"]
        read_only_fields = fields


class BillCreditExportSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillCreditExport
        fields = ["id", "status", "program", "file_name", "sha256", "line_count", "settlement_count", "total_amount",
                  "created_at", "created_by_label", "acknowledged_at", "acknowledged_by_label"]
        read_only_fields = fields


class SettleEventInputSerializer(serializers.Serializer):
    event = serializers.PrimaryKeyRelatedField(queryset=Event.objects.select_related("program"))
    recalculate = serializers.BooleanField(default=False, help_text="Recalculate after new meter data or prices.")


def _program_key(**kwargs) -> NaturalKeyRelatedField:
    """A program by its code (what a client knows) or its id."""
    return NaturalKeyRelatedField(keys=("code",), queryset=Program.objects.all(),
                                  **{"help_text": "Program code or id.", **kwargs})


class SettleSeasonInputSerializer(serializers.Serializer):
    program = _program_key()
    season = serializers.PrimaryKeyRelatedField(queryset=Season.objects.all())

    def validate(self, attrs):
        if attrs["season"].program_id != attrs["program"].pk:
            raise serializers.ValidationError({"season": ["The season belongs to another program."]})
        return attrs


class CustomerSettlementCalculateInputSerializer(serializers.Serializer):
    account = NaturalKeyRelatedField(keys=("account_number",), help_text="Account number or id.",
                                     queryset=CustomerSettlement._meta.get_field("account").related_model.objects.all())
    program = _program_key()
    period_kind = serializers.ChoiceField(choices=PeriodKind.choices)
    period_start = serializers.DateField(help_text="Local date (program zone), inclusive.")
    period_end = serializers.DateField(help_text="Local date, exclusive.")


class SettlementReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ExportCreateInputSerializer(serializers.Serializer):
    program = _program_key(required=False, allow_null=True,
                           help_text="Only this program's settlements (its code or id); empty = all.")


class AbnormalDaySerializer(serializers.ModelSerializer):
    service_point_id = serializers.CharField(source="service_point.service_point_id", default=None, read_only=True,
                                             allow_null=True)
    program_code = serializers.CharField(source="program.code", default=None, read_only=True, allow_null=True)
    target = serializers.CharField(source="target_label", read_only=True)

    class Meta:
        model = AbnormalDay
        fields = ["id", "day", "scope", "service_point", "service_point_id", "program", "program_code", "network_id",
                  "target", "kind", "reason", "created_at"]
        read_only_fields = fields


class AbnormalDayInputSerializer(serializers.Serializer):
    """One abnormal day: the target matching ``scope``: ``service_point`` (the utility's id or the pk),
    ``program`` (code or pk) or ``network_id`` (feeder / substation / territory code)."""

    day = serializers.DateField()
    scope = serializers.CharField()
    service_point = NaturalKeyRelatedField(keys=("service_point_id",), queryset=ServicePoint.objects.all(),
                                           required=False, allow_null=True,
                                           help_text="Service point id (the utility's) or cpm id.")
    program = _program_key(required=False, allow_null=True)
    network_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    kind = serializers.CharField(required=False, allow_blank=True, max_length=16)
    reason = serializers.CharField(max_length=300)


class AbnormalDayImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, UTF-8: day, scope, target, kind, reason.")

    def validate_file(self, upload):
        """The limits of every upload (``CPM_MAX_UPLOAD_BYTES``, a CSV file name); the importer reports bytes that
        are not UTF-8 by line and column itself."""
        try:
            validate_upload(upload, kinds=("csv",), text=False)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return upload
