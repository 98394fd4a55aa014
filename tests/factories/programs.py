"""Factories for the programs app. Programs default to ACTIVE thermostat programs in America/Los_Angeles."""

import datetime as dt
from decimal import Decimal

import factory

from programs.choices import IncentiveBasis, IncentiveKind, ProgramStatus, ProgramType
from programs.models import IncentiveRule, ParticipationRule, Program, Season


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
