"""Programs API (under /api/v1/): input serializer -> service -> output serializer.

Status changes are POST actions (``/programs/{id}/activate/`` etc.) that return 409 when the transition is refused.
Nested items are read with the program and written at program creation or through their own endpoints.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cpm.base.api import WriteThrottle, api_now, validated
from cpm.base.errors import DomainValidationError

from .. import selectors, services
from ..filtersets import (
    IncentiveRuleFilterSet,
    MutualExclusionFilterSet,
    ParticipationRuleFilterSet,
    PriceSetFilterSet,
    ProgramFilterSet,
    QuestionFilterSet,
    SeasonFilterSet,
)
from ..models import IncentiveRule, ParticipationRule, QualificationQuestion, Season
from . import serializers as s

NESTED = ("seasons", "participation_rules", "incentive_rules", "questions")
NESTED_ENDPOINTS = {"seasons": "seasons", "participation_rules": "participation-rules",
                    "incentive_rules": "incentive-rules", "questions": "qualification-questions"}


class ServiceViewSet(viewsets.GenericViewSet):
    """Common shape: ``output_serializer`` renders, ``input_serializer`` validates; services write."""

    throttle_classes = [WriteThrottle]
    output_serializer: type = None
    input_serializer: type = None
    update_serializer: type | None = None

    def get_serializer_class(self):
        if self.action == "create":
            return self.input_serializer
        if self.action in ("update", "partial_update"):
            return self.update_serializer or self.input_serializer
        return self.output_serializer

    def validated_input(self, data, **kwargs) -> dict:
        """The action's input serializer (``get_serializer_class``) run on ``data``; 400 per field if refused."""
        return validated(self.get_serializer_class(), data, context=self.get_serializer_context(), **kwargs)

    def render(self, obj, code=status.HTTP_200_OK):
        return Response(self.output_serializer(obj, context=self.get_serializer_context()).data, status=code)

    def reload(self, obj):
        return self.get_queryset().get(pk=obj.pk)


def crud_use_cases(entity: str) -> dict[str, str]:
    """The write use cases of an item's create/update/delete routes (``season`` -> ``season.create`` ...)."""
    return {"create": f"{entity}.create", "update": f"{entity}.update", "partial_update": f"{entity}.update",
            "destroy": f"{entity}.delete"}


class CrudServiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Create/update/delete through ``create_service(program=..., data=...)`` etc."""

    create_service = update_service = delete_service = None
    instance_kwarg = ""

    def create(self, request, *args, **kwargs):
        data = self.validated_input(request.data)
        program = data.pop("program")
        obj = type(self).create_service(program=program, data=data, now=api_now(), actor=request.user)
        return self.render(self.reload(obj), status.HTTP_201_CREATED)

    def update(self, request, *args, partial=False, **kwargs):
        instance = self.get_object()
        data = self.validated_input(request.data, instance=instance, partial=partial)
        program = data.pop("program", None)
        if program is not None and program.pk != instance.program_id:
            raise DomainValidationError({"program": ["An item cannot move to another program."]})
        obj = type(self).update_service(**{self.instance_kwarg: instance}, data=data, now=api_now(),
                                        actor=request.user)
        return self.render(self.reload(obj))

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request, *args, **kwargs):
        type(self).delete_service(**{self.instance_kwarg: self.get_object()}, now=api_now(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _crud_schema(output, input_, update=None):
    return extend_schema_view(
        create=extend_schema(request=input_, responses={201: output}),
        update=extend_schema(request=update or input_, responses=output),
        partial_update=extend_schema(request=update or input_, responses=output),
    )


@_crud_schema(s.ProgramSerializer, s.ProgramCreateSerializer, s.ProgramUpdateSerializer)
class ProgramViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Programs with nested seasons, participation rules, incentive rules and qualification questions.

    Filters: ``program_type``, ``status`` (repeatable), ``device_type`` (eligible device type), ``season_date``
    (programs with a season containing that local date), ``code``; ``search`` in code, name, description.
    """

    use_cases = {"create": "program.create", "update": "program.update", "partial_update": "program.update",
                 "destroy": "program.delete", "activate": "program.activate", "suspend": "program.suspend",
                 "resume": "program.resume", "close": "program.close"}
    queryset = selectors.program_list()
    output_serializer = s.ProgramSerializer
    input_serializer = s.ProgramCreateSerializer
    update_serializer = s.ProgramUpdateSerializer
    filterset_class = ProgramFilterSet
    search_fields = ["code", "name", "description"]
    ordering_fields = ["code", "name", "status", "created_at"]

    def get_queryset(self):
        return selectors.program_list()

    def create(self, request, *args, **kwargs):
        data = self.validated_input(request.data)
        nested = {key: [dict(item) for item in data.pop(key, [])] for key in NESTED}
        program = services.program_create(data=data, **nested, now=api_now(), actor=request.user)
        return self.render(self.reload(program), status.HTTP_201_CREATED)

    def update(self, request, *args, partial=False, **kwargs):
        instance = self.get_object()
        sent_nested = [key for key in NESTED if key in request.data]
        if sent_nested:
            raise DomainValidationError({key: [f"Change {key} through /api/v1/{NESTED_ENDPOINTS[key]}/."]
                                         for key in sent_nested})
        data = self.validated_input(request.data, instance=instance, partial=partial)
        program = services.program_update(program=instance, data=data, now=api_now(), actor=request.user)
        return self.render(self.reload(program))

    def partial_update(self, request, *args, **kwargs):
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request, *args, **kwargs):
        services.program_delete(program=self.get_object(), now=api_now(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _status(self, request, service):
        data = validated(s.StatusChangeSerializer, request.data)
        program = service(program=self.get_object(), now=api_now(), actor=request.user,
                          reason=data.get("reason", ""))
        return self.render(self.reload(program))

    @extend_schema(request=s.StatusChangeSerializer, responses=s.ProgramSerializer,
                   description="DRAFT -> ACTIVE (needs a season, a participation rule and an incentive rule); 409 "
                               "if refused.")
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        return self._status(request, services.program_activate)

    @extend_schema(request=s.StatusChangeSerializer, responses=s.ProgramSerializer,
                   description="ACTIVE -> SUSPENDED; 409 if refused.")
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        return self._status(request, services.program_suspend)

    @extend_schema(request=s.StatusChangeSerializer, responses=s.ProgramSerializer,
                   description="SUSPENDED -> ACTIVE; 409 if refused.")
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._status(request, services.program_resume)

    @extend_schema(request=s.StatusChangeSerializer, responses=s.ProgramSerializer,
                   description="ACTIVE or SUSPENDED -> CLOSED (final); 409 if refused.")
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._status(request, services.program_close)


@_crud_schema(s.SeasonSerializer, s.SeasonCreateSerializer)
class SeasonViewSet(CrudServiceViewSet):
    """Seasons (local dates, inclusive); overlapping seasons of one program are refused."""

    use_cases = crud_use_cases("season")
    queryset = Season.objects.select_related("program").order_by("program_id", "start_date")
    output_serializer = s.SeasonSerializer
    input_serializer = s.SeasonCreateSerializer
    filterset_class = SeasonFilterSet
    create_service = staticmethod(services.season_create)
    update_service = staticmethod(services.season_update)
    delete_service = staticmethod(services.season_delete)
    instance_kwarg = "season"


@_crud_schema(s.ParticipationRuleSerializer, s.ParticipationRuleCreateSerializer)
class ParticipationRuleViewSet(CrudServiceViewSet):
    """Participation rules, effective-dated (the latest rule in effect on a day wins)."""

    use_cases = crud_use_cases("participation_rule")
    queryset = ParticipationRule.objects.select_related("program").order_by("program_id", "effective_from")
    output_serializer = s.ParticipationRuleSerializer
    input_serializer = s.ParticipationRuleCreateSerializer
    filterset_class = ParticipationRuleFilterSet
    create_service = staticmethod(services.participation_rule_create)
    update_service = staticmethod(services.participation_rule_update)
    delete_service = staticmethod(services.participation_rule_delete)
    instance_kwarg = "rule"


@_crud_schema(s.IncentiveRuleSerializer, s.IncentiveRuleCreateSerializer)
class IncentiveRuleViewSet(CrudServiceViewSet):
    """Incentive rules (kind/basis combinations are checked)."""

    use_cases = crud_use_cases("incentive_rule")
    queryset = IncentiveRule.objects.select_related("program", "season", "price_set").order_by("program_id", "id")
    output_serializer = s.IncentiveRuleSerializer
    input_serializer = s.IncentiveRuleCreateSerializer
    filterset_class = IncentiveRuleFilterSet
    create_service = staticmethod(services.incentive_rule_create)
    update_service = staticmethod(services.incentive_rule_update)
    delete_service = staticmethod(services.incentive_rule_delete)
    instance_kwarg = "incentive"


@_crud_schema(s.QuestionSerializer, s.QuestionCreateSerializer)
class QuestionViewSet(CrudServiceViewSet):
    """Qualification questions asked at enrollment."""

    use_cases = crud_use_cases("question")
    queryset = QualificationQuestion.objects.select_related("program").order_by("program_id", "position", "id")
    output_serializer = s.QuestionSerializer
    input_serializer = s.QuestionCreateSerializer
    filterset_class = QuestionFilterSet
    create_service = staticmethod(services.question_create)
    update_service = staticmethod(services.question_update)
    delete_service = staticmethod(services.question_delete)
    instance_kwarg = "question"


@extend_schema_view(create=extend_schema(request=s.MutualExclusionCreateSerializer,
                                         responses={201: s.MutualExclusionSerializer}))
class MutualExclusionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Pairs of mutually exclusive programs (stored lower id first); filter ``program`` matches either side."""

    use_cases = {"create": "mutual_exclusion.create", "destroy": "mutual_exclusion.delete"}
    queryset = selectors.mutual_exclusion_list()
    output_serializer = s.MutualExclusionSerializer
    input_serializer = s.MutualExclusionCreateSerializer
    filterset_class = MutualExclusionFilterSet

    def create(self, request, *args, **kwargs):
        data = self.validated_input(request.data)
        exclusion = services.mutual_exclusion_create(program_a=data["program_a"], program_b=data["program_b"],
                                                     reason=data.get("reason", ""), now=api_now(),
                                                     actor=request.user)
        return self.render(self.reload(exclusion), status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.mutual_exclusion_delete(exclusion=self.get_object(), now=api_now(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(create=extend_schema(request=s.PriceSetCreateSerializer,
                                         responses={201: s.PriceSetDetailSerializer}))
class PriceSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ServiceViewSet):
    """Interval price sets ($/kWh per interval, in the program's zone); the detail lists the prices."""

    use_cases = {"create": "price_set.create", "destroy": "price_set.delete"}
    queryset = selectors.price_set_list()
    output_serializer = s.PriceSetSerializer
    input_serializer = s.PriceSetCreateSerializer
    filterset_class = PriceSetFilterSet

    def get_serializer_class(self):
        if self.action == "retrieve":
            return s.PriceSetDetailSerializer
        return super().get_serializer_class()

    def retrieve(self, request, *args, **kwargs):
        return Response(s.PriceSetDetailSerializer(self.get_object()).data)

    def create(self, request, *args, **kwargs):
        data = self.validated_input(request.data)
        price_set = services.price_set_create(program=data["program"], name=data["name"],
                                              interval_minutes=data["interval_minutes"],
                                              rows=[dict(r) for r in data["rows"]], now=api_now(),
                                              actor=request.user)
        return Response(s.PriceSetDetailSerializer(price_set).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        services.price_set_delete(price_set=self.get_object(), now=api_now(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
