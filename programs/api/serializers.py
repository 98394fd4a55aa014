"""Serializers of the programs API: input serializers check types, services decide, output serializers render.

Validation errors are flattened to path keys (``seasons[1].end_date``, ``rows[0].interval_start``) by the views, the
same keys the services use, so a client sees one error shape.
"""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cpm.base.naturalkeys import NaturalKeyRelatedField
from cpm.base.timeutils import zone

from ..choices import CustomerClass, DeviceType, OptOutConsequence
from ..models import (
    IncentiveRule,
    IntervalPrice,
    IntervalPriceSet,
    MutualExclusion,
    ParticipationRule,
    Program,
    QualificationQuestion,
    Season,
)
from ..services import INCENTIVE_FIELDS, PROGRAM_FIELDS, QUESTION_FIELDS, RULE_FIELDS, SEASON_FIELDS

# --- output ------------------------------------------------------------------------------------------------------


class SeasonSerializer(serializers.ModelSerializer):
    class Meta:
        model = Season
        fields = ["id", "program", *SEASON_FIELDS]
        read_only_fields = fields


class ParticipationRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ParticipationRule
        fields = ["id", "program", *RULE_FIELDS]
        read_only_fields = fields


class IncentiveRuleSerializer(serializers.ModelSerializer):
    # Blank for every kind but the opt-out penalty: declared so the schema's enum admits "" as the API answers it.
    opt_out_consequence = serializers.ChoiceField(choices=OptOutConsequence.choices, allow_blank=True, read_only=True)

    class Meta:
        model = IncentiveRule
        fields = ["id", "program", *INCENTIVE_FIELDS]
        read_only_fields = fields


_ANSWER = {"oneOf": [{"type": "string"}, {"type": "boolean"}, {"type": "number"}]}


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class QuestionChoicesField(serializers.JSONField):
    """A question's allowed answers (a list of strings), stored as JSON and checked by the services."""


@extend_schema_field({"oneOf": [
    {"type": "array", "items": _ANSWER, "description": "The answers that qualify (choices, or true / false)."},
    {"type": "object", "properties": {"min": {"type": "number", "nullable": True},
                                      "max": {"type": "number", "nullable": True}},
     "description": "A number question's qualifying range (bounds included; null: no bound)."}]})
class QualifyingAnswersField(serializers.JSONField):
    """The answers that qualify: a list, or a number question's ``{"min", "max"}``; checked by the services."""


def _question_fields(**kwargs) -> dict:
    """The JSON fields of a question, declared so that the schema describes them (they were "any value")."""
    return {"choices": QuestionChoicesField(help_text="Allowed answers for a choice question.", **kwargs),
            "qualifying_answers": QualifyingAnswersField(help_text="Answers that qualify; empty = any.", **kwargs)}


class QuestionSerializer(serializers.ModelSerializer):
    choices, qualifying_answers = _question_fields(read_only=True).values()

    class Meta:
        model = QualificationQuestion
        fields = ["id", "program", *QUESTION_FIELDS]
        read_only_fields = fields


class ProgramSerializer(serializers.ModelSerializer):
    """A program with its seasons, participation rules, incentive rules and qualification questions."""

    eligible_device_types = serializers.ListField(child=serializers.ChoiceField(choices=DeviceType.choices))
    eligible_customer_classes = serializers.ListField(child=serializers.ChoiceField(choices=CustomerClass.choices))
    eligible_rate_codes = serializers.ListField(child=serializers.CharField())
    eligible_territories = serializers.ListField(child=serializers.CharField())
    eligible_substations = serializers.ListField(child=serializers.CharField())
    eligible_feeders = serializers.ListField(child=serializers.CharField())
    baseline_params = serializers.DictField()
    seasons = SeasonSerializer(many=True, read_only=True)
    participation_rules = ParticipationRuleSerializer(many=True, read_only=True)
    incentive_rules = IncentiveRuleSerializer(many=True, read_only=True)
    questions = QuestionSerializer(many=True, read_only=True)

    class Meta:
        model = Program
        fields = ["id", "status", *PROGRAM_FIELDS, "created_at", "updated_at", "seasons", "participation_rules",
                  "incentive_rules", "questions"]
        read_only_fields = fields


class MutualExclusionSerializer(serializers.ModelSerializer):
    program_a_code = serializers.CharField(source="program_a.code", read_only=True)
    program_b_code = serializers.CharField(source="program_b.code", read_only=True)

    class Meta:
        model = MutualExclusion
        fields = ["id", "program_a", "program_b", "program_a_code", "program_b_code", "reason"]
        read_only_fields = fields


class IntervalPriceSerializer(serializers.ModelSerializer):
    interval_start_local = serializers.SerializerMethodField()

    class Meta:
        model = IntervalPrice
        fields = ["interval_start", "interval_start_local", "price_per_kwh"]
        read_only_fields = fields

    def get_interval_start_local(self, obj) -> dt.datetime:
        return obj.interval_start.astimezone(zone(self.context["time_zone"]))


class PriceSetSerializer(serializers.ModelSerializer):
    program_code = serializers.CharField(source="program.code", read_only=True)

    class Meta:
        model = IntervalPriceSet
        fields = ["id", "program", "program_code", "name", "interval_minutes"]
        read_only_fields = fields


class PriceSetDetailSerializer(PriceSetSerializer):
    prices = serializers.SerializerMethodField()

    class Meta(PriceSetSerializer.Meta):
        fields = [*PriceSetSerializer.Meta.fields, "prices"]
        read_only_fields = fields

    @extend_schema_field(IntervalPriceSerializer(many=True))
    def get_prices(self, obj):
        return IntervalPriceSerializer(obj.prices.all(), many=True,
                                       context={"time_zone": obj.program.time_zone}).data


# --- input -------------------------------------------------------------------------------------------------------

class SeasonInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Season
        fields = list(SEASON_FIELDS)
        validators = []


class ParticipationRuleInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ParticipationRule
        fields = list(RULE_FIELDS)
        validators = []


class IncentiveRuleInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = IncentiveRule
        fields = list(INCENTIVE_FIELDS)
        validators = []


class NestedIncentiveRuleInputSerializer(serializers.ModelSerializer):
    """An incentive rule inside a program create: names its season by ``season_name`` (no price set yet)."""

    season_name = serializers.CharField(required=False, allow_blank=True)

    class Meta:
        model = IncentiveRule
        fields = ["season_name", *(f for f in INCENTIVE_FIELDS if f not in ("season", "price_set"))]
        validators = []


class QuestionInputSerializer(serializers.ModelSerializer):
    choices, qualifying_answers = _question_fields(required=False).values()

    class Meta:
        model = QualificationQuestion
        fields = list(QUESTION_FIELDS)
        validators = []


class ProgramUpdateSerializer(serializers.ModelSerializer):
    eligible_device_types = serializers.ListField(child=serializers.ChoiceField(choices=DeviceType.choices),
                                                  required=False)
    eligible_customer_classes = serializers.ListField(
        child=serializers.ChoiceField(choices=CustomerClass.choices), required=False)
    eligible_rate_codes = serializers.ListField(child=serializers.CharField(), required=False)
    eligible_territories = serializers.ListField(child=serializers.CharField(), required=False)
    eligible_substations = serializers.ListField(child=serializers.CharField(), required=False)
    eligible_feeders = serializers.ListField(child=serializers.CharField(), required=False)
    baseline_params = serializers.DictField(required=False)

    class Meta:
        model = Program
        fields = list(PROGRAM_FIELDS)
        extra_kwargs = {"code": {"validators": []}}


class ProgramCreateSerializer(ProgramUpdateSerializer):
    """A new program with (optionally) its seasons, participation rules, incentive rules and questions."""

    seasons = SeasonInputSerializer(many=True, required=False)
    participation_rules = ParticipationRuleInputSerializer(many=True, required=False)
    incentive_rules = NestedIncentiveRuleInputSerializer(many=True, required=False)
    questions = QuestionInputSerializer(many=True, required=False)

    class Meta(ProgramUpdateSerializer.Meta):
        fields = [*PROGRAM_FIELDS, "seasons", "participation_rules", "incentive_rules", "questions"]


def _program_key() -> NaturalKeyRelatedField:
    """A sub-resource's program, by its code (what a client knows) or its id."""
    return NaturalKeyRelatedField(keys=("code",), queryset=Program.objects.all(), help_text="Program code or id.")


class SeasonCreateSerializer(SeasonInputSerializer):
    program = _program_key()

    class Meta(SeasonInputSerializer.Meta):
        fields = ["program", *SEASON_FIELDS]


class ParticipationRuleCreateSerializer(ParticipationRuleInputSerializer):
    program = _program_key()

    class Meta(ParticipationRuleInputSerializer.Meta):
        fields = ["program", *RULE_FIELDS]


class IncentiveRuleCreateSerializer(IncentiveRuleInputSerializer):
    program = _program_key()

    class Meta(IncentiveRuleInputSerializer.Meta):
        fields = ["program", *INCENTIVE_FIELDS]


class QuestionCreateSerializer(QuestionInputSerializer):
    program = _program_key()

    class Meta(QuestionInputSerializer.Meta):
        fields = ["program", *QUESTION_FIELDS]


class StatusChangeSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class MutualExclusionCreateSerializer(serializers.Serializer):
    program_a = NaturalKeyRelatedField(keys=("code",), queryset=Program.objects.all(), help_text="Program code or id.")
    program_b = NaturalKeyRelatedField(keys=("code",), queryset=Program.objects.all(), help_text="Program code or id.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class PriceRowSerializer(serializers.Serializer):
    interval_start = serializers.CharField(
        help_text="ISO 8601; with an offset (e.g. 2026-07-01T17:00:00-07:00 or ...Z) it is that instant, without "
                  "one it is local wall-clock time in the program's zone.")
    price_per_kwh = serializers.DecimalField(max_digits=10, decimal_places=5, min_value=0)


class PriceSetCreateSerializer(serializers.Serializer):
    program = NaturalKeyRelatedField(keys=("code",), queryset=Program.objects.all(), help_text="Program code or id.")
    name = serializers.CharField(max_length=100)
    interval_minutes = serializers.ChoiceField(choices=[5, 15, 30, 60])
    rows = PriceRowSerializer(many=True, allow_empty=False)
