"""Settlement API: jobs (batches), event settlements, customer settlements, bill-credit exports.

Input serializer -> service -> output serializer. Lists run a constant number of queries (joins in selectors).
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from cpm.base.api import BoundedJSONParser, WriteThrottle, api_now, validated

from .. import selectors, services
from ..filtersets import (
    AbnormalDayFilter,
    BillCreditExportFilter,
    CustomerSettlementFilter,
    EventSettlementFilter,
    SettlementBatchFilter,
)
from . import serializers as s


class SettlementBatchViewSet(viewsets.ReadOnlyModelViewSet):
    """Settlement jobs with their progress (chunks done / total) and counts."""

    use_cases = {"settle_event": "event.settle", "settle_season": "season.settle"}

    serializer_class = s.SettlementBatchSerializer
    filterset_class = SettlementBatchFilter
    ordering_fields = ["created_at", "id"]
    throttle_classes = [WriteThrottle]

    def get_queryset(self):
        return selectors.batch_list()

    @extend_schema(request=s.SettleEventInputSerializer, responses={202: s.SettlementBatchSerializer})
    @action(detail=False, methods=["post"], url_path="settle-event")
    def settle_event(self, request):
        data = validated(s.SettleEventInputSerializer, request.data)
        batch = services.event_settle(event=data["event"], now=api_now(), actor=request.user,
                                      recalculate=data["recalculate"])
        batch.refresh_from_db()
        return Response(s.SettlementBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.SettleSeasonInputSerializer, responses={202: s.SettlementBatchSerializer})
    @action(detail=False, methods=["post"], url_path="settle-season")
    def settle_season(self, request):
        data = validated(s.SettleSeasonInputSerializer, request.data)
        batch = services.season_settle(program=data["program"], season=data["season"], now=api_now(),
                                       actor=request.user)
        batch.refresh_from_db()
        return Response(s.SettlementBatchSerializer(batch).data, status=status.HTTP_202_ACCEPTED)


class EventSettlementViewSet(viewsets.ReadOnlyModelViewSet):
    """Event settlements; filters: program, event, account, status (repeatable), period_after/period_before."""

    use_cases = {"approve": "event_settlement.approve", "reverse": "event_settlement.reverse"}

    filterset_class = EventSettlementFilter
    ordering_fields = ["event_day", "amount", "id"]
    search_fields = ["account__account_number", "service_point__service_point_id"]
    throttle_classes = [WriteThrottle]

    def get_queryset(self):
        qs = selectors.event_settlement_list().defer("inputs", "components")
        if self.action == "retrieve":
            return selectors.event_settlement_list().prefetch_related("lines")
        return qs

    def get_serializer_class(self):
        return s.EventSettlementDetailSerializer if self.action == "retrieve" else s.EventSettlementSerializer

    @extend_schema(request=None, responses={200: s.EventSettlementDetailSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        es = services.event_settlement_approve(settlement=self.get_object(), now=api_now(), actor=request.user)
        return Response(s.EventSettlementDetailSerializer(selectors.event_settlement_get(es.pk)).data)

    @extend_schema(request=s.SettlementReasonInputSerializer, responses={200: s.EventSettlementDetailSerializer})
    @action(detail=True, methods=["post"])
    def reverse(self, request, pk=None):
        data = validated(s.SettlementReasonInputSerializer, request.data)
        es = services.event_settlement_reverse(settlement=self.get_object(), reason=data["reason"],
                                               now=api_now(), actor=request.user)
        return Response(s.EventSettlementDetailSerializer(selectors.event_settlement_get(es.pk)).data)


class CustomerSettlementViewSet(viewsets.ReadOnlyModelViewSet):
    """Customer settlements; filters: program, account, status, period_kind, period_after/period_before."""

    use_cases = {"calculate": "customer_settlement.calculate", "approve": "customer_settlement.approve"}

    filterset_class = CustomerSettlementFilter
    ordering_fields = ["period_end", "total_amount", "id"]
    search_fields = ["account__account_number"]
    throttle_classes = [WriteThrottle]

    def get_queryset(self):
        qs = selectors.customer_settlement_list()
        return qs.prefetch_related("lines") if self.action == "retrieve" else qs.defer("inputs")

    def get_serializer_class(self):
        return s.CustomerSettlementDetailSerializer if self.action == "retrieve" else s.CustomerSettlementSerializer

    @extend_schema(request=s.CustomerSettlementCalculateInputSerializer,
                   responses={200: s.CustomerSettlementDetailSerializer})
    @action(detail=False, methods=["post"])
    def calculate(self, request):
        data = validated(s.CustomerSettlementCalculateInputSerializer, request.data)
        cs = services.customer_settlement_calculate(**data, now=api_now(), actor=request.user)
        return Response(s.CustomerSettlementDetailSerializer(
            selectors.customer_settlement_list().prefetch_related("lines").get(pk=cs.pk)).data)

    @extend_schema(request=None, responses={200: s.CustomerSettlementDetailSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        cs = services.customer_settlement_approve(settlement=self.get_object(), now=api_now(),
                                                  actor=request.user)
        return Response(s.CustomerSettlementDetailSerializer(
            selectors.customer_settlement_list().prefetch_related("lines").get(pk=cs.pk)).data)


class BillCreditExportViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Bill-credit export batches for billing: create (export approved settlements), list, download, acknowledge or
    reject."""

    use_cases = {"create": "bill_credits.export", "acknowledge": "bill_credits.acknowledge",
                 "reject": "bill_credits.reject"}
    action_permissions = {"download": "cpm.pull_bill_credits"}  # a read of the file, by capability

    serializer_class = s.BillCreditExportSerializer
    filterset_class = BillCreditExportFilter
    ordering_fields = ["created_at", "id"]
    throttle_classes = [WriteThrottle]

    def get_queryset(self):
        return selectors.export_list()

    @extend_schema(request=s.ExportCreateInputSerializer,
                   responses={201: s.BillCreditExportSerializer,
                              204: OpenApiResponse(description="Nothing to export (no approved settlement left).")})
    def create(self, request, *args, **kwargs):
        data = validated(s.ExportCreateInputSerializer, request.data)
        export = services.bill_credit_export_create(now=api_now(), actor=request.user, program=data.get("program"))
        if export is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.BillCreditExportSerializer(export).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        export = self.get_object()
        content = type(export).objects.values_list("content", flat=True).get(pk=export.pk)
        response = HttpResponse(content.encode(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{export.file_name}"'
        return response

    @extend_schema(request=None, responses={200: s.BillCreditExportSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        export = services.bill_credit_export_acknowledge(export=self.get_object(), now=api_now(),
                                                         actor=request.user)
        return Response(s.BillCreditExportSerializer(export).data)

    @extend_schema(request=s.SettlementReasonInputSerializer, responses={200: s.BillCreditExportSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Billing could not load the batch: its settlements are approved again and go in the next export (409 for
        an acknowledged batch; rejecting again changes nothing)."""
        data = validated(s.SettlementReasonInputSerializer, request.data)
        export = services.bill_credit_export_reject(export=self.get_object(), reason=data["reason"], now=api_now(),
                                                    actor=request.user)
        return Response(s.BillCreditExportSerializer(export).data)


class AbnormalDayViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Abnormal days (outages, abnormal operation) left out of baseline day selection. POST creates one (idempotent:
    the same day, target and reason returns the existing record); DELETE removes one; POST ``import/`` a CSV (all
    or nothing: 400 with ``errors`` as ``line N: field: message``). Filters: ``scope``, ``kind``, ``day``."""

    use_cases = {"create": "abnormal_day.create", "destroy": "abnormal_day.delete",
                 "import_csv": "abnormal_days.import"}

    serializer_class = s.AbnormalDaySerializer
    filterset_class = AbnormalDayFilter
    ordering_fields = ["day", "id"]
    throttle_classes = [WriteThrottle]
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.abnormal_day_list()

    @extend_schema(request=s.AbnormalDayInputSerializer,
                   responses={201: s.AbnormalDaySerializer, 200: s.AbnormalDaySerializer})
    def create(self, request, *args, **kwargs):
        """201 with the new record; 200 with the existing one when the same day, target and reason were recorded
        before (a retry), as enrollment requests answer a retry."""
        data = validated(s.AbnormalDayInputSerializer, request.data)
        now = api_now()
        record = services.abnormal_day_create(data=data, now=now, actor=request.user)
        return Response(s.AbnormalDaySerializer(selectors.abnormal_day_list().get(pk=record.pk)).data,
                        status=status.HTTP_201_CREATED if record.created_at == now else status.HTTP_200_OK)

    def destroy(self, request, *args, **kwargs):
        services.abnormal_day_delete(abnormal_day=self.get_object(), now=api_now(), actor=request.user,
                                     reason=str(request.query_params.get("reason", ""))[:300])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request={"multipart/form-data": s.AbnormalDayImportSerializer},
                   responses={200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser, FormParser])
    def import_csv(self, request):
        from devices.imports import ImportFailed

        upload = validated(s.AbnormalDayImportSerializer, request.data)["file"]
        try:
            report = services.abnormal_days_import(upload, now=api_now(), actor=request.user, name=upload.name)
        except ImportFailed as exc:
            return Response({"code": "import_failed", "detail": "Nothing was imported.",
                             "errors": exc.report.error_lines()}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"rows": report.rows, "counts": report.counts})

