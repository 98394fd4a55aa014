"""Serializers of interval data and meter data loads."""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cpm.base.uploads import validate_upload
from settlement.meterdata import intervals
from settlement.meterdata.models import IntervalDay, MeterDataLoad


class MeterDataLoadSerializer(serializers.ModelSerializer):
    summary = serializers.CharField(read_only=True)

    class Meta:
        model = MeterDataLoad
        fields = ["id", "source", "file_name", "status", "created_at", "started_at", "finished_at", "readings_new",
                  "readings_unchanged", "readings_corrected", "readings_rejected", "summary", "errors"]
        read_only_fields = fields


class MeterFileUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    source = serializers.ChoiceField(choices=[MeterDataLoad.Source.CSV, MeterDataLoad.Source.GREEN_BUTTON,
                                              MeterDataLoad.Source.KW_DROP],
                                     default=MeterDataLoad.Source.CSV,
                                     help_text="csv (interval readings), green_button, or kw_drop (aggregator-reported "
                                               "kW drop per event and service point: settlement.meterdata.kwdrop).")
    tz = serializers.CharField(required=False, allow_blank=True,
                               help_text="IANA zone of CSV times given without offset.")
    service_point_id = serializers.CharField(required=False, allow_blank=True,
                                             help_text="Service point of a Green Button file (required for it).")
    usage_point = serializers.CharField(required=False, allow_blank=True,
                                        help_text="UsagePoint title or href when the file holds several.")

    def validate(self, attrs):
        kinds = ("xml",) if attrs.get("source") == MeterDataLoad.Source.GREEN_BUTTON else ("csv",)
        try:
            validate_upload(attrs["file"], kinds=kinds)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"file": exc.messages}) from exc
        return attrs


class ReadingSerializer(serializers.Serializer):
    service_point_id = serializers.CharField(max_length=64)
    channel = serializers.CharField(required=False, default="delivered",
                                    help_text="delivered, received or net (anything else is a row error).")
    interval_start = serializers.CharField(help_text="ISO 8601 with offset, or local time with the load's tz.")
    interval_minutes = serializers.IntegerField(required=False, default=60)
    kwh = serializers.FloatField(allow_null=True, help_text="kWh of the interval; null = not provided.")
    device = serializers.CharField(required=False, allow_blank=True, default="", help_text="Device serial.")


class BulkReadingsSerializer(serializers.Serializer):
    tz = serializers.CharField(required=False, allow_blank=True)
    readings = ReadingSerializer(many=True, allow_empty=False, max_length=100_000)


class IntervalDaySerializer(serializers.ModelSerializer):
    service_point_id = serializers.CharField(source="service_point.service_point_id", read_only=True)
    kwh = serializers.SerializerMethodField(help_text="kWh per interval from 00:00 UTC; null = missing.")

    class Meta:
        model = IntervalDay
        fields = ["id", "service_point", "service_point_id", "device", "channel", "day", "interval_minutes",
                  "version", "is_current", "received_at", "load", "kwh"]
        read_only_fields = fields

    @extend_schema_field({"type": "array", "items": {"type": "number", "nullable": True}})
    def get_kwh(self, obj) -> list:
        return [None if math.isnan(v) else float(v) for v in intervals.decode(obj.values)]

