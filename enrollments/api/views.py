"""Enrollments API (under /api/v1/): input serializer -> service -> output serializer.

- ``POST /enrollments/`` enrolls (201; 200 with the same enrollment for a retried external transaction id); an
  ineligible request is a 400 listing every reason, a conflict a 409 naming the enrollment/program.
- Actions: approve, reject, unenroll, suspend, resume, add-device, replace-device; ``POST /accounts/{id}/close/``;
  ``GET /accounts/{id}/eligibility/?date=YYYY-MM-DD``.
- An aggregator's API client sees only enrollments of its own devices; naming another aggregator's device is a 404.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cpm.base.api import WriteThrottle, api_now, validated
from cpm.base.errors import DomainValidationError, NotFound
from cpm.base.masking import contact_lookup_allowed
from cpm.base.naturalkeys import lookup_many
from devices.selectors import aggregator_of, device_list

from .. import selectors, services
from ..choices import EnrollmentSource
from ..filtersets import (
    AccountFilterSet,
    CustomerFilterSet,
    EnrollmentFilterSet,
    ServiceAgreementFilterSet,
    SubscriptionFilterSet,
)
from . import serializers as s

DEVICE_KEYS = ("serial_number", "aggregator_device_id")


def visible_devices(user, keys, *, field: str = "devices"):
    """Resolve devices named by id, serial number or aggregator device id through the user's visible devices; an
    unknown or foreign device is a 404 naming the field, a key naming two devices a 400."""
    try:
        found = lookup_many(device_list(user=user), keys, DEVICE_KEYS)
    except ValueError as exc:
        raise DomainValidationError({field: [str(exc)]}) from exc
    for key, device in zip(keys, found, strict=True):
        if device is None:
            raise NotFound(f"Device {key if isinstance(key, int) else repr(key)} not found.", field=field)
    return found


class CustomerViewSet(viewsets.ReadOnlyModelViewSet):
    """Customers (persons from CIS, written by the CIS import): names, contact details (masked without the
    personal-data capability) and the life-support flag. Search by CIS person id, name or e-mail."""

    serializer_class = s.CustomerSerializer
    filterset_class = CustomerFilterSet
    search_fields = ["cis_person_id", "last_name", "first_name", "email"]
    ordering_fields = ["last_name", "cis_person_id"]

    def get_queryset(self):
        return selectors.customer_list(user=self.request.user)

    def get_search_fields(self, request):
        """Searching by e-mail would reveal it (a guess answered by the customer's row): only for users who may see
        contact details."""
        return [f for f in self.search_fields if contact_lookup_allowed(request.user, f)]


class ServiceAgreementViewSet(viewsets.ReadOnlyModelViewSet):
    """Service agreements (from CIS): which account takes service at which service point, from and to which
    date."""

    serializer_class = s.ServiceAgreementSerializer
    filterset_class = ServiceAgreementFilterSet
    search_fields = ["agreement_id"]

    def get_queryset(self):
        return selectors.service_agreement_list(user=self.request.user)


class AccountViewSet(viewsets.ReadOnlyModelViewSet):
    """Accounts (from CIS); ``close`` ends every enrollment at the close date; ``eligibility`` lists programs."""

    serializer_class = s.AccountSerializer
    filterset_class = AccountFilterSet
    search_fields = ["account_number", "customer__last_name", "customer__cis_person_id"]
    ordering_fields = ["account_number", "opened_on"]
    throttle_classes = [WriteThrottle]

    def get_queryset(self):
        return selectors.account_list(user=self.request.user)

    use_cases = {"close": "account.close"}

    @extend_schema(parameters=[OpenApiParameter("date", str, description="Local date YYYY-MM-DD; default today in "
                                                                         "each program's zone")],
                   responses=s.EligibilityResponseSerializer)
    @action(detail=True, methods=["get"])
    def eligibility(self, request, pk=None):
        """Every program (drafts excepted) with eligible / ineligible and every reason, per service point."""
        account = self.get_object()
        query = validated(s.EligibilityQuerySerializer, request.query_params)
        on = query.get("date")
        if on is not None:
            lines = selectors.account_eligibility(account=account, on=on)
        else:  # today in each program's zone, the date a request made now would take
            lines = selectors.account_eligibility_today(account=account, now=api_now())
        body = {"account": account.pk, "date": on, "programs": lines}
        return Response(s.EligibilityResponseSerializer(body).data)

    @extend_schema(request=s.AccountCloseSerializer, responses=s.AccountSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        account = self.get_object()
        data = validated(s.AccountCloseSerializer, request.data)
        services.account_close(account=account, **data, now=api_now(), actor=request.user)
        account.refresh_from_db()
        return Response(s.AccountSerializer(account).data)


class EnrollmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Enrollments: an account's service point in a program, with its status (requested, pending approval, active,
    suspended, unenrolled, rejected, cancelled), effective and end dates, reason and devices (subscriptions).
    Status changes are the actions below; the account, service point and program are given by id or natural key
    (account number, service point id, program code)."""

    serializer_class = s.EnrollmentSerializer
    filterset_class = EnrollmentFilterSet
    search_fields = ["account__account_number", "service_point__service_point_id", "external_transaction_id"]
    ordering_fields = ["requested_at", "effective_date", "id"]
    throttle_classes = [WriteThrottle]
    # Approvals are a program administrator's capability, not a mere change (a CSR may unenroll, not approve).
    use_cases = {"create": "enrollment.request", "approve": "enrollment.approve", "reject": "enrollment.reject",
                 "suspend": "enrollment.suspend", "resume": "enrollment.resume", "unenroll": "enrollment.unenroll",
                 "add_device": "enrollment.add_device", "replace_device": "enrollment.replace_device"}

    def get_queryset(self):
        return selectors.enrollment_list(user=self.request.user)

    def _render(self, enrollment, code=status.HTTP_200_OK):
        enrollment = selectors.enrollment_list(user=self.request.user).get(pk=enrollment.pk)  # as the user may see it
        return Response(s.EnrollmentSerializer(enrollment).data, status=code)

    @extend_schema(request=s.EnrollmentRequestSerializer,
                   responses={201: s.EnrollmentSerializer, 200: s.EnrollmentSerializer})
    def create(self, request):
        """Enroll (idempotent on source + external_transaction_id). 400 lists every eligibility reason."""
        data = validated(s.EnrollmentRequestSerializer, request.data)
        aggregator = aggregator_of(request.user)
        source = data.pop("source", None)
        if aggregator is not None:
            source = EnrollmentSource.AGGREGATOR_API
        devices = visible_devices(request.user, data.pop("devices"))
        enrollment, created = services.enrollment_request(**data, devices=devices, source=source or "csr",
                                                          now=api_now(), actor=request.user)
        return self._render(enrollment, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=s.NoteSerializer, responses=s.EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve a pending request (pending approval -> active). 409 if the program stopped taking enrollments or
        the account closed."""
        data = validated(s.NoteSerializer, request.data)
        return self._render(services.enrollment_approve(enrollment=self.get_object(), now=api_now(), actor=request.user,
                                                        reason=data["reason"]))

    @extend_schema(request=s.ReasonInputSerializer, responses=s.EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Reject a request (requested / pending approval -> rejected) with a coded reason; the devices it held are
        released."""
        data = validated(s.ReasonInputSerializer, request.data)
        return self._render(services.enrollment_reject(enrollment=self.get_object(), **data, now=api_now(),
                                                       actor=request.user))

    @extend_schema(request=s.UnenrollSerializer, responses=s.EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def unenroll(self, request, pk=None):
        """Unenroll (active / suspended -> unenrolled) from a local date in the program's zone, the first day no
        longer enrolled; a request not yet active is cancelled instead."""
        data = validated(s.UnenrollSerializer, request.data)
        return self._render(services.enrollment_unenroll(enrollment=self.get_object(), **data, now=api_now(),
                                                         actor=request.user))

    @extend_schema(request=s.NoteSerializer, responses=s.EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        """Suspend an active enrollment (not called for events; its devices stay held)."""
        data = validated(s.NoteSerializer, request.data)
        return self._render(services.enrollment_suspend(enrollment=self.get_object(), **data, now=api_now(),
                                                        actor=request.user))

    @extend_schema(request=s.NoteSerializer, responses=s.EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Resume a suspended enrollment (suspended -> active)."""
        data = validated(s.NoteSerializer, request.data)
        return self._render(services.enrollment_resume(enrollment=self.get_object(), **data, now=api_now(),
                                                       actor=request.user))

    @extend_schema(request=s.AddDeviceSerializer, responses={201: s.EnrollmentSerializer})
    @action(detail=True, methods=["post"], url_path="add-device")
    def add_device(self, request, pk=None):
        """Subscribe one more device (by id, serial number or aggregator device id) from a local date, default today
        in the program's zone; 400/409 list every reason it cannot be."""
        enrollment = self.get_object()
        data = validated(s.AddDeviceSerializer, request.data)
        (device,) = visible_devices(request.user, [data["device"]], field="device")
        services.enrollment_add_device(enrollment=enrollment, device=device, start_date=data.get("start_date"),
                                       now=api_now(), actor=request.user)
        return self._render(enrollment, status.HTTP_201_CREATED)

    @extend_schema(request=s.ReplaceDeviceSerializer, responses=s.EnrollmentSerializer)
    @action(detail=True, methods=["post"], url_path="replace-device")
    def replace_device(self, request, pk=None):
        """Replace one subscribed device by another from a local date: the enrollment, its season's event counts
        and opt-outs carry on."""
        enrollment = self.get_object()
        data = validated(s.ReplaceDeviceSerializer, request.data)
        old, new = visible_devices(request.user, [data["old_device"], data["new_device"]], field="new_device")
        services.enrollment_replace_device(enrollment=enrollment, old_device=old, new_device=new, on=data.get("on"),
                                           now=api_now(), actor=request.user)
        return self._render(enrollment)


class SubscriptionViewSet(viewsets.ReadOnlyModelViewSet):
    """Program subscriptions (an enrollment's device for a dated period); written through enrollment actions."""

    serializer_class = s.SubscriptionSerializer
    filterset_class = SubscriptionFilterSet
    ordering_fields = ["start_date", "id"]

    def get_queryset(self):
        return selectors.subscription_list(user=self.request.user)
