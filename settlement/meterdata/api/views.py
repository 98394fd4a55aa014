"""API of interval data: load jobs (file upload, bulk readings) and stored interval days."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from cpm.base.api import BoundedJSONParser, WriteThrottle, api_now, validated
from settlement.meterdata.filtersets import IntervalDayFilter, MeterDataLoadFilter
from settlement.meterdata.loaders import meter_data_load_retry, meter_data_load_submit, readings_to_csv
from settlement.meterdata.models import IntervalDay, MeterDataLoad

from .serializers import (
    BulkReadingsSerializer,
    IntervalDaySerializer,
    MeterDataLoadSerializer,
    MeterFileUploadSerializer,
)


class MeterDataLoadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Meter data loads (jobs). POST ``upload/`` (a CSV or Green Button file) or ``bulk/`` (JSON readings) creates a
    load and queues its job; the response is the load record (202), to be polled for counts and row errors.
    POST ``{id}/retry/`` runs a failed load again from its stored file."""

    use_cases = {"upload": "meter_data.load", "bulk": "meter_data.load", "retry": "meter_data.retry"}

    queryset = MeterDataLoad.objects.all()
    serializer_class = MeterDataLoadSerializer
    filterset_class = MeterDataLoadFilter
    ordering_fields = ["created_at", "id"]
    throttle_classes = [WriteThrottle]

    @extend_schema(request={"multipart/form-data": MeterFileUploadSerializer},
                   responses={202: MeterDataLoadSerializer})
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request):
        v = validated(MeterFileUploadSerializer, request.data)
        upload = v["file"]
        # A large upload is already a temporary file on disk: spool it by path, without reading it into memory.
        on_disk = {"path": upload.temporary_file_path()} if hasattr(upload, "temporary_file_path") else {
            "content": upload.read()}
        load = meter_data_load_submit(source=v["source"], **on_disk, now=api_now(),
                                      file_name=upload.name or "", tz=v.get("tz") or None,
                                      service_point_id=v.get("service_point_id") or None,
                                      usage_point=v.get("usage_point") or None, actor=request.user)
        load.refresh_from_db()
        return Response(MeterDataLoadSerializer(load).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=BulkReadingsSerializer, responses={202: MeterDataLoadSerializer})
    @action(detail=False, methods=["post"], parser_classes=[BoundedJSONParser])
    def bulk(self, request):
        data = validated(BulkReadingsSerializer, request.data)
        text, _ = readings_to_csv(data["readings"])
        load = meter_data_load_submit(source=MeterDataLoad.Source.API, content=text.encode(), now=api_now(),
                                      file_name="bulk", tz=data.get("tz") or None, row_offset=-1,
                                      actor=request.user)
        load.refresh_from_db()
        return Response(MeterDataLoadSerializer(load).data, status=status.HTTP_202_ACCEPTED)


    @extend_schema(request=None, responses={202: MeterDataLoadSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        load = meter_data_load_retry(load_id=self.get_object().pk, now=api_now(), actor=request.user)
        load.refresh_from_db()
        return Response(MeterDataLoadSerializer(load).data, status=status.HTTP_202_ACCEPTED)


class IntervalDayViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Stored UTC days of interval kWh (all versions; filter ``is_current=true`` for the current ones)."""

    queryset = IntervalDay.objects.select_related("service_point")
    serializer_class = IntervalDaySerializer
    filterset_class = IntervalDayFilter
    ordering_fields = ["day", "id", "version"]
