"""Factories for the programs app. Programs default to ACTIVE thermostat programs in America/Los_Angeles."""

import datetime as dt
import itertools
from decimal import Decimal

import factory

from programs.choices import AnswerType, IncentiveBasis, IncentiveKind, ProgramStatus, ProgramType
from programs.models import IncentiveRule, MutualExclusion, ParticipationRule, Program, QualificationQuestion, Season


class ProgramFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Program

    code = factory.Sequence(lambda n: f"prog-{n}")
    name = factory.Sequence(lambda n: f"Program {n}")
    description = "Test program"
    program_type = ProgramType.THERMOSTAT_DR
    time_zone = "America/Los_Angeles"
    status = ProgramStatus.ACTIVE
    eligible_device_types = factory.LazyFunction(lambda: ["thermostat"])
    eligible_customer_classes = factory.LazyFunction(lambda: ["residential"])


class SeasonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Season

    program = factory.SubFactory(ProgramFactory)
    name = "Summer 2026"
    start_date = dt.date(2026, 6, 1)
    end_date = dt.date(2026, 9, 30)


class ParticipationRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ParticipationRule

    program = factory.SubFactory(ProgramFactory)
    effective_from = dt.date(2026, 1, 1)
    weekdays_allowed = True
    weekends_allowed = False
    holidays_allowed = False
    window_start = dt.time(14, 0)
    window_end = dt.time(21, 0)
    min_duration_minutes = 30
    max_duration_minutes = 240


class IncentiveRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncentiveRule

    program = factory.SubFactory(ProgramFactory)
    kind = IncentiveKind.PERFORMANCE_KWH
    basis = IncentiveBasis.PER_KWH
    amount = Decimal("1.25")


class QuestionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QualificationQuestion

    program = factory.SubFactory(ProgramFactory)
    code = factory.Sequence(lambda n: f"q{n}")
    text = "Does the thermostat control central air conditioning?"
    answer_type = AnswerType.BOOLEAN
    qualifying_answers = factory.LazyFunction(lambda: [True])


class MutualExclusionFactory(factory.django.DjangoModelFactory):
    """Pass two saved programs; they are stored lower id first."""

    class Meta:
        model = MutualExclusion

    program_a = factory.SubFactory(ProgramFactory)
    program_b = factory.SubFactory(ProgramFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        a, b = kwargs["program_a"], kwargs["program_b"]
        kwargs["program_a"], kwargs["program_b"] = (a, b) if a.pk < b.pk else (b, a)
        return super()._create(model_class, *args, **kwargs)


def draft_program_data(**changes) -> dict:
    """Program fields for ``programs.services.program_create`` (a thermostat program in Los Angeles)."""
    n = next(_draft_counter)
    return {"code": f"draft-{n}", "name": f"Draft program {n}", "program_type": ProgramType.THERMOSTAT_DR,
            "time_zone": "America/Los_Angeles", "eligible_device_types": ["thermostat"],
            "eligible_customer_classes": ["residential"], **changes}


_draft_counter = itertools.count(1)
