"""Serializers of the enrollments API: output serializers render, input serializers validate (services write)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cpm.base.masking import contact_visible, masked_contact
from cpm.base.naturalkeys import KeyField, NaturalKeyRelatedField
from devices.models import ServicePoint
from programs.models import Program

from ..choices import EnrollmentSource, ReasonCode
from ..models import Account, Customer, Enrollment, ProgramSubscription, ServiceAgreement


class ReasonSerializer(serializers.Serializer):
    """One eligibility reason (``enrollments.eligibility.Reason``)."""

    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField()
    enrollment_id = serializers.IntegerField(required=False)
    program_code = serializers.CharField(required=False)
    device_id = serializers.IntegerField(required=False)


class CustomerSerializer(serializers.ModelSerializer):
    """A customer; ``email`` and ``phone`` are masked for a user without ``view_personal_data``
    (``cpm.base.masking``): the request's user is read from the serializer context."""

    class Meta:
        model = Customer
        fields = ["id", "cis_person_id", "first_name", "last_name", "email", "phone", "life_support"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        context = self.context  # the list's one context: the user's visibility is read once per request
        user = getattr(context.get("request"), "user", None)
        visible = context.get("_contact_visible")
        if visible is None:
            visible = context["_contact_visible"] = contact_visible(user)
        data.update(masked_contact(user, email=data.get("email") or "", phone=data.get("phone") or "",
                                   visible=visible))
        return data


class AccountSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.cis_person_id", read_only=True)
    customer_name = serializers.CharField(source="customer.__str__", read_only=True)

    class Meta:
        model = Account
        fields = ["id", "account_number", "customer", "customer_name", "status", "opened_on", "closed_on"]


class ServiceAgreementSerializer(serializers.ModelSerializer):
    account = serializers.CharField(source="account.account_number", read_only=True)
    service_point = serializers.CharField(source="service_point.service_point_id", read_only=True)

    class Meta:
        model = ServiceAgreement
        fields = ["id", "agreement_id", "account", "service_point", "start_date", "end_date"]


class SubscriptionSerializer(serializers.ModelSerializer):
    device_type = serializers.CharField(source="device.device_type", read_only=True, allow_null=True, default=None)
    program = serializers.CharField(source="enrollment.program.code", read_only=True)

    class Meta:
        model = ProgramSubscription
        fields = ["id", "enrollment", "program", "device", "device_type", "start_date", "end_date", "end_reason",
                  "exclusive"]


class NestedSubscriptionSerializer(serializers.ModelSerializer):
    device_type = serializers.CharField(source="device.device_type", read_only=True, allow_null=True, default=None)

    class Meta:
        model = ProgramSubscription
        fields = ["id", "device", "device_type", "start_date", "end_date", "end_reason"]


class EnrollmentSerializer(serializers.ModelSerializer):
    program_code = serializers.CharField(source="program.code", read_only=True)
    account_number = serializers.CharField(source="account.account_number", read_only=True)
    service_point_code = serializers.CharField(source="service_point.service_point_id", read_only=True)
    subscriptions = NestedSubscriptionSerializer(many=True, read_only=True)

    class Meta:
        model = Enrollment
        fields = ["id", "program", "program_code", "account", "account_number", "service_point",
                  "service_point_code", "status", "source", "external_transaction_id", "requested_at",
                  "effective_date", "end_date", "reason_code", "reason_text", "answers", "subscriptions",
                  "created_at", "updated_at"]


class EnrollmentRequestSerializer(serializers.Serializer):
    account = NaturalKeyRelatedField(keys=("account_number",), queryset=Account.objects.all(),
                                     help_text="Account number (e.g. DEMO-XX-0053) or id.")
    service_point = NaturalKeyRelatedField(keys=("service_point_id",), queryset=ServicePoint.objects.all(),
                                           help_text="Service point id (the utility's) or cpm id.")
    program = NaturalKeyRelatedField(keys=("code",), queryset=Program.objects.all(), help_text="Program code or id.")
    devices = serializers.ListField(child=KeyField(), required=False, default=list,
                                    help_text="Devices by serial number, aggregator device id or id (empty for "
                                              "programs that need no device).")
    source = serializers.ChoiceField(choices=EnrollmentSource.choices, required=False,
                                     help_text="Defaults to aggregator_api for an aggregator client, else csr.")
    external_transaction_id = serializers.CharField(max_length=128, required=False, allow_null=True,
                                                    allow_blank=True, help_text="Idempotency key of the channel.")
    effective_date = serializers.DateField(required=False, allow_null=True,
                                           help_text="Local date; default today in the program's zone; at most "
                                                     "one year after today there.")
    answers = serializers.DictField(required=False, default=dict, help_text="Answers by question code.")


class ReasonInputSerializer(serializers.Serializer):
    reason_code = serializers.ChoiceField(choices=ReasonCode.choices, default=ReasonCode.OTHER)
    reason_text = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class UnenrollSerializer(ReasonInputSerializer):
    reason_code = serializers.ChoiceField(choices=ReasonCode.choices, default=ReasonCode.CUSTOMER_REQUEST)
    effective_date = serializers.DateField(help_text="First local day no longer enrolled; at most one year after "
                                                     "today in the program's zone.")


class NoteSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AddDeviceSerializer(serializers.Serializer):
    device = KeyField(help_text="Serial number, aggregator device id or id.")
    start_date = serializers.DateField(required=False, allow_null=True)


class ReplaceDeviceSerializer(serializers.Serializer):
    old_device = KeyField(help_text="Serial number, aggregator device id or id.")
    new_device = KeyField(help_text="Serial number, aggregator device id or id.")
    on = serializers.DateField(required=False, allow_null=True, help_text="Local replacement date; default today.")


class AccountCloseSerializer(serializers.Serializer):
    closed_on = serializers.DateField(help_text="Local date the account closes; at most one year after today in "
                                                "the zone of its programs.")
    reason_text = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class EligibilityQuerySerializer(serializers.Serializer):
    date = serializers.DateField(required=False, help_text="Local date; default today in each program's zone.")


class EligibilityLineSerializer(serializers.Serializer):
    program = serializers.IntegerField(source="program.id")
    program_code = serializers.CharField(source="program.code")
    program_status = serializers.CharField(source="program.status")
    date = serializers.DateField(source="on", help_text="The local date the program was checked on.")
    service_point = serializers.IntegerField(source="site.service_point_id", allow_null=True)
    service_point_code = serializers.CharField(source="site.service_point_label")
    eligible = serializers.BooleanField()
    reasons = serializers.SerializerMethodField()
    eligible_devices = serializers.ListField(source="eligible_device_ids", child=serializers.IntegerField())
    questions = serializers.SerializerMethodField()

    @extend_schema_field(ReasonSerializer(many=True))
    def get_reasons(self, obj):
        return [r.as_dict() for r in obj.reasons]

    def get_questions(self, obj) -> list[str]:
        return [q.code for q in obj.program.questions]


class EligibilityResponseSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    date = serializers.DateField(allow_null=True, help_text="The date asked for; null: today in each program's zone "
                                                            "(each line's date).")
    programs = EligibilityLineSerializer(many=True)

