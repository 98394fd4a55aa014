"""Services of the programs app: validation per field, constraints, status transitions, seasons, rules,
incentives, exclusions, price sets, auto-activation."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from cpm.base.errors import ConflictError, DomainValidationError, TransitionNotAllowed
from cpm.models import AuditEntry
from programs import services
from programs.choices import ProgramStatus
from programs.models import IncentiveRule, IntervalPrice, ParticipationRule, Program, Season
from tests.actors import TEST_ACTOR
from tests.factories.programs import (
    IncentiveRuleFactory,
    ParticipationRuleFactory,
    ProgramFactory,
    SeasonFactory,
    draft_program_data,
)

pytestmark = pytest.mark.django_db

SUMMER = {"name": "Summer 2026", "start_date": dt.date(2026, 6, 1), "end_date": dt.date(2026, 9, 30)}
RULE = {"effective_from": dt.date(2026, 1, 1), "window_start": dt.time(14), "window_end": dt.time(21),
        "max_duration_minutes": 240}
INCENTIVE = {"kind": "performance_kwh", "basis": "per_kwh", "amount": Decimal("1.25")}


def complete_draft(now, **changes):
    return services.program_create(data=draft_program_data(**changes), seasons=[SUMMER], participation_rules=[RULE],
                                   incentive_rules=[INCENTIVE], now=now, actor=TEST_ACTOR)


def errors_of(excinfo):
    return excinfo.value.errors


# --- program create / update -------------------------------------------------------------------------------------

def test_program_create_with_nested_items_is_draft_and_audited(now):
    program = services.program_create(
        data=draft_program_data(code="sep"), seasons=[SUMMER], participation_rules=[RULE],
        incentive_rules=[{**INCENTIVE}, {"kind": "seasonal", "basis": "per_device", "amount": Decimal("25"),
                                         "season_name": "Summer 2026", "max_opt_outs": 3}],
        questions=[{"code": "central_ac", "text": "Central A/C?", "answer_type": "boolean",
                    "qualifying_answers": [True]}], now=now, actor=TEST_ACTOR)
    assert program.status == ProgramStatus.DRAFT
    assert program.seasons.get().name == "Summer 2026"
    seasonal = program.incentive_rules.get(kind="seasonal")
    assert seasonal.season.name == "Summer 2026" and seasonal.max_opt_outs == 3
    assert program.questions.get().qualifying_answers == [True]
    entry = AuditEntry.objects.get(object_type="programs.program", object_id=str(program.pk))
    assert (entry.action, entry.actor_label, entry.changes["seasons"]) == ("create", "system:tests", 1)


def test_utility_owned_program_rejected_by_service_and_database(now):
    with pytest.raises(DomainValidationError) as exc:
        services.program_create(data=draft_program_data(device_ownership="utility_owned"), now=now, actor=TEST_ACTOR)
    assert "utility-owned devices are out of scope" in errors_of(exc)["device_ownership"][0]
    with pytest.raises(IntegrityError), transaction.atomic():
        ProgramFactory(device_ownership="utility_owned")


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"time_zone": "Pacific/Nowhere"}, "time_zone", "'Pacific/Nowhere' is not an IANA time zone"),
    ({"eligible_device_types": ["toaster"]}, "eligible_device_types", "Unknown device type 'toaster'"),
    ({"eligible_device_types": []}, "eligible_device_types", "needs at least one eligible device type"),
    ({"eligible_customer_classes": ["gold"]}, "eligible_customer_classes", "Unknown customer class 'gold'"),
    ({"eligible_rate_codes": "TOU-D"}, "eligible_rate_codes", "must be a list of non-empty codes"),
    ({"enrollment_opens_on": dt.date(2026, 6, 1), "enrollment_closes_on": dt.date(2026, 5, 1)},
     "enrollment_closes_on", "enrollment_closes_on (2026-05-01) must be on or after enrollment_opens_on (2026-06-01)"),
    ({"program_type": "peak_time_rebate", "requires_device": True}, "requires_device", "no device"),
    ({"holiday_calendar": "XX"}, "holiday_calendar", "Unknown holiday calendar"),
    ({"baseline_params": [1]}, "baseline_params", "must be an object"),
    ({"baseline_params": {"adjustment_hours": "1_0"}}, "baseline_params",
     "adjustment_hours: must be a number, not '1_0'."),
    ({"baseline_params": {"adjustment_hours": "abc"}}, "baseline_params",
     "adjustment_hours: must be a number, not 'abc'."),
    ({"baseline_params": {"low_usage_threshold": "0.25"}}, "baseline_params",
     "low_usage_threshold: must be a number, not '0.25'."),
    ({"baseline_params": {"adjustment_cap": ["0.8", 1.2]}}, "baseline_params",
     "adjustment_cap: each bound must be a number or null, not ['0.8', 1.2]."),
    ({"baseline_params": {"adjustment_cap": 5}}, "baseline_params", "adjustment_cap: must be (low, high)."),
    ({"baseline_params": {"x": "10"}}, "baseline_params", "x: must be a positive integer, not '10'."),
    ({"baseline_params": {"x": 12}}, "baseline_params", "x: must not exceed y (12 > 10)."),
    ({"baseline_params": {"shoe_size": 9}}, "baseline_params", "shoe_size: unknown baseline parameter (known: x, y,"),
    ({"colour": "red"}, "colour", "Unknown field."),
    ({"reported_min_completeness_pct": 101}, "reported_min_completeness_pct",
     "a whole percent from 0 to 100, not 101"),
    ({"reported_min_completeness_pct": -5}, "reported_min_completeness_pct", "not -5"),
])
def test_program_values_refused_per_field(now, changes, field, message):
    with pytest.raises(DomainValidationError) as exc:
        services.program_create(data=draft_program_data(**changes), now=now, actor=TEST_ACTOR)
    assert any(message in m for m in errors_of(exc)[field]), errors_of(exc)
    assert not Program.objects.exists()


def test_baseline_params_are_checked_against_the_method_on_update(now):
    """{"x": 6} suits caiso-auto (y = 10) but not pjm-high-4-of-5 (y = 5): changing the method alone is refused,
    naming the key; every bad key is listed at once."""
    program = complete_draft(now)
    services.program_update(program=program, data={"baseline_params": {"x": 6}}, now=now, actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        services.program_update(program=program, data={"baseline_method": "pjm-high-4-of-5"}, now=now,
                                actor=TEST_ACTOR)
    assert errors_of(exc) == {"baseline_params": ["x: must not exceed y (6 > 5)."]}
    with pytest.raises(DomainValidationError) as exc:
        services.program_update(program=program, data={"baseline_params": {
            "adjustment_hours": "abc", "adjustment_gap_hours": "1_0"}}, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"baseline_params": ["adjustment_hours: must be a number, not 'abc'.",
                                                  "adjustment_gap_hours: must be a number, not '1_0'."]}
    program.refresh_from_db()
    assert (program.baseline_method, program.baseline_params) == ("caiso-auto", {"x": 6})


def test_nested_errors_carry_the_path_and_nothing_is_written(now):
    with pytest.raises(DomainValidationError) as exc:
        services.program_create(
            data=draft_program_data(), seasons=[SUMMER, {"name": "Bad", "start_date": dt.date(2026, 12, 1),
                                                         "end_date": dt.date(2026, 11, 1)}], now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"seasons[1].end_date": ["end_date (2026-11-01) must be on or after start_date "
                                                      "(2026-12-01)."]}
    with pytest.raises(DomainValidationError) as exc:
        services.program_create(data=draft_program_data(), participation_rules=[{**RULE, "window_end": dt.time(9)}],
                                now=now, actor=TEST_ACTOR)
    assert list(errors_of(exc)) == ["participation_rules[0].window_end"]
    with pytest.raises(DomainValidationError) as exc:
        services.program_create(data=draft_program_data(), incentive_rules=[{**INCENTIVE, "season_name": "Nope"}],
                                now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"incentive_rules[0].season_name": ["No season named 'Nope'."]}
    assert not Program.objects.exists() and not Season.objects.exists()


def test_update_freezes_code_and_zone_after_draft_and_closed_is_read_only(now):
    program = complete_draft(now)
    services.program_update(program=program, data={"name": "Renamed", "time_zone": "America/New_York"}, now=now,
                            actor=TEST_ACTOR)
    program.refresh_from_db()
    assert (program.name, program.time_zone) == ("Renamed", "America/New_York")
    services.program_activate(program=program, now=now, actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        services.program_update(program=program, data={"time_zone": "America/Chicago", "name": "X"}, now=now,
                                actor=TEST_ACTOR)
    assert errors_of(exc) == {"time_zone": ["time_zone cannot change once the program has been activated."]}
    services.program_update(program=program, data={"description": "Now with a source URL"}, now=now, actor=TEST_ACTOR)
    services.program_close(program=program, now=now, actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match="is closed; its definition can no longer change"):
        services.program_update(program=program, data={"name": "Y"}, now=now, actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match="is closed"):
        services.season_create(program=program, data={**SUMMER, "name": "Summer 2027"}, now=now, actor=TEST_ACTOR)


# --- status transitions ------------------------------------------------------------------------------------------

def test_full_lifecycle_audited(now, admin_user):
    program = complete_draft(now)
    services.program_activate(program=program, now=now, actor=admin_user, reason="launch")
    assert program.status == ProgramStatus.ACTIVE
    services.program_suspend(program=program, now=now, actor=admin_user)
    services.program_resume(program=program, now=now, actor=admin_user)
    services.program_close(program=program, now=now, actor=admin_user)
    program.refresh_from_db()
    assert program.status == ProgramStatus.CLOSED
    moves = list(AuditEntry.objects.filter(action="status_change", object_id=str(program.pk)).order_by("id")
                 .values_list("from_status", "to_status", "reason", "actor"))
    assert moves == [("draft", "active", "launch", admin_user.pk), ("active", "suspended", "suspend", admin_user.pk),
                     ("suspended", "active", "resume", admin_user.pk), ("active", "closed", "close", admin_user.pk)]


def test_suspended_program_can_close(now):
    program = complete_draft(now)
    services.program_activate(program=program, now=now, actor=TEST_ACTOR)
    services.program_suspend(program=program, now=now, actor=TEST_ACTOR)
    services.program_close(program=program, now=now, actor=TEST_ACTOR)
    assert Program.objects.get(pk=program.pk).status == ProgramStatus.CLOSED


@pytest.mark.parametrize(("status", "service", "message"), [
    ("draft", services.program_suspend, "is draft: suspend applies to active programs"),
    ("draft", services.program_close, "is draft: close applies to active or suspended programs"),
    ("draft", services.program_resume, "is draft: resume applies to suspended programs"),
    ("active", services.program_activate, "is active: activate applies to draft programs"),
    ("active", services.program_resume, "is active: resume applies to suspended programs"),
    ("suspended", services.program_suspend, "is suspended: suspend applies to active programs"),
    ("closed", services.program_resume, "is closed: resume applies to suspended programs"),
    ("closed", services.program_activate, "is closed: activate applies to draft programs"),
])
def test_refused_transitions(now, status, service, message):
    program = ProgramFactory(status=status)
    with pytest.raises(TransitionNotAllowed, match=message) as exc:
        service(program=program, now=now, actor=TEST_ACTOR)
    assert exc.value.status_code == 409
    program.refresh_from_db()
    assert program.status == status
    assert not AuditEntry.objects.filter(action="status_change").exists()


def test_activation_needs_season_rule_and_incentive(now):
    program = services.program_create(data=draft_program_data(code="bare"), now=now, actor=TEST_ACTOR)
    with pytest.raises(ConflictError) as exc:
        services.program_activate(program=program, now=now, actor=TEST_ACTOR)
    assert exc.value.message == ("Program bare cannot be activated: it needs at least one season, a participation "
                                 "rule, an incentive rule.")
    assert Program.objects.get(pk=program.pk).status == ProgramStatus.DRAFT


def test_status_column_has_a_check_constraint():
    with pytest.raises(IntegrityError), transaction.atomic():
        ProgramFactory(status="bogus")


# --- seasons -----------------------------------------------------------------------------------------------------

def test_overlapping_season_refused_naming_field_and_season(now):
    program = complete_draft(now)
    with pytest.raises(DomainValidationError) as exc:
        services.season_create(program=program, data={"name": "Shoulder", "start_date": dt.date(2026, 9, 15),
                                                      "end_date": dt.date(2026, 10, 31)}, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"start_date": ["Season 'Shoulder' (2026-09-15 to 2026-10-31) overlaps season "
                                             "'Summer 2026' (2026-06-01 to 2026-09-30)."]}
    with pytest.raises(DomainValidationError) as exc:
        services.season_create(program=program, data={"name": "Spring", "start_date": dt.date(2026, 3, 1),
                                                      "end_date": dt.date(2026, 6, 1)}, now=now, actor=TEST_ACTOR)
    assert list(errors_of(exc)) == ["end_date"]
    with pytest.raises(DomainValidationError) as exc:
        services.season_create(program=program, data={**SUMMER, "start_date": dt.date(2027, 6, 1),
                                                      "end_date": dt.date(2027, 9, 30)}, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"name": [f"Program {program.code} already has a season named 'Summer 2026'."]}
    winter = services.season_create(program=program, data={"name": "Winter 2026-27", "start_date":
                                                            dt.date(2026, 12, 1), "end_date": dt.date(2027, 2, 28)},
                                    now=now, actor=TEST_ACTOR)
    assert winter.pk and program.seasons.count() == 2


def test_season_in_an_implausible_year_is_refused_naming_the_field(now):
    """A season typed for 9999 (or 0026) is a slip: refused on the field, as the importers refuse such dates."""
    program = ProgramFactory(status="draft")
    with pytest.raises(DomainValidationError) as exc:
        services.season_create(program=program, data={"name": "Summer 9999", "start_date": dt.date(9999, 6, 1),
                                                      "end_date": dt.date(9999, 9, 30)}, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"start_date": ["start_date (9999-06-01) is outside the plausible years 1900..2100."],
                              "end_date": ["end_date (9999-09-30) is outside the plausible years 1900..2100."]}
    assert not program.seasons.exists()


def test_db_refuses_season_ending_before_start():
    with pytest.raises(IntegrityError), transaction.atomic():
        SeasonFactory(start_date=dt.date(2026, 9, 1), end_date=dt.date(2026, 8, 1))


def test_started_season_is_frozen_on_active_program_future_one_is_not(now):
    program = ProgramFactory()  # active
    spring = SeasonFactory(program=program, name="Spring 2026", start_date=dt.date(2026, 3, 1),
                           end_date=dt.date(2026, 5, 31))
    summer = SeasonFactory(program=program)
    with pytest.raises(ConflictError, match="Season 'Spring 2026' of program .* is already in effect"):
        services.season_update(season=spring, data={"end_date": dt.date(2026, 5, 20)}, now=now, actor=TEST_ACTOR)
    with pytest.raises(ConflictError):
        services.season_delete(season=spring, now=now, actor=TEST_ACTOR)
    services.season_update(season=summer, data={"end_date": dt.date(2026, 9, 15)}, now=now, actor=TEST_ACTOR)
    assert Season.objects.get(pk=summer.pk).end_date == dt.date(2026, 9, 15)


# --- participation rules -----------------------------------------------------------------------------------------

def test_rule_validation_errors_per_field_through_service(now):
    program = ProgramFactory(status="draft")
    with pytest.raises(DomainValidationError) as exc:
        services.participation_rule_create(program=program, data={
            "effective_from": dt.date(2026, 1, 1), "min_duration_minutes": 120, "max_duration_minutes": 60,
            "opt_out_allowance_kind": "count"}, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {
        "max_duration_minutes": ["max_duration_minutes (60) must be at least min_duration_minutes (120)."],
        "opt_out_allowance_count": ["opt_out_allowance_count is required when the allowance kind is count."]}
    with pytest.raises(DomainValidationError) as exc:
        services.participation_rule_create(program=program, data={"effective_from": "soon"}, now=now, actor=TEST_ACTOR)
    assert "effective_from" in errors_of(exc)


def test_rule_effective_dates_unique_and_frozen_once_in_effect(now):
    program = ProgramFactory()  # active; today in Los Angeles is 2026-05-15
    current = ParticipationRuleFactory(program=program, effective_from=dt.date(2026, 1, 1))
    with pytest.raises(ConflictError, match="already in effect"):
        services.participation_rule_update(rule=current, data={"max_duration_minutes": 120}, now=now, actor=TEST_ACTOR)
    with pytest.raises(ConflictError, match="A participation rule of program .* is already in effect \\(2026-05-15\\)"):
        services.participation_rule_create(program=program, data={"effective_from": dt.date(2026, 5, 15)}, now=now,
                                           actor=TEST_ACTOR)
    later = services.participation_rule_create(program=program, data={"effective_from": dt.date(2026, 5, 16),
                                                                      "max_duration_minutes": 120}, now=now,
                                                                          actor=TEST_ACTOR)
    assert later.max_duration_minutes == 120
    with pytest.raises(DomainValidationError) as exc:
        services.participation_rule_create(program=program, data={"effective_from": dt.date(2026, 5, 16)}, now=now,
                                           actor=TEST_ACTOR)
    assert errors_of(exc) == {"effective_from": [f"Program {program.code} already has a rule effective from "
                                                 "2026-05-16."]}


@pytest.mark.parametrize("changes", [
    {"window_start": dt.time(14), "window_end": dt.time(13)},
    {"opt_out_allowance_kind": "count", "opt_out_allowance_count": None},
    {"opt_out_allowance_kind": "percent_hours", "opt_out_allowance_percent": None},
    {"min_duration_minutes": 90, "max_duration_minutes": 60},
    {"weekdays_allowed": False, "weekends_allowed": False, "holidays_allowed": False},
    {"max_event_hours_per_day": Decimal("30")},
])
def test_database_check_constraints_on_rules(changes):
    with pytest.raises(IntegrityError), transaction.atomic():
        ParticipationRuleFactory(**changes)


def test_window_end_midnight_allowed_in_database():
    rule = ParticipationRuleFactory(window_start=dt.time(20), window_end=dt.time(0))
    assert ParticipationRule.objects.get(pk=rule.pk).window_end == dt.time(0)


# --- incentive rules ---------------------------------------------------------------------------------------------

def test_incentive_kind_basis_and_price_set_ownership(now):
    program = ProgramFactory(status="draft")
    other = ProgramFactory()
    rows = [{"interval_start": "2026-07-01T14:00", "price_per_kwh": "0.80"}]
    own = services.price_set_create(program=program, name="Summer prices", interval_minutes=60, rows=rows, now=now,
                                    actor=TEST_ACTOR)
    foreign = services.price_set_create(program=other, name="Other", interval_minutes=60, rows=rows, now=now,
                                        actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        services.incentive_rule_create(program=program, data={"kind": "performance_kwh", "basis": "price_set",
                                                              "price_set": foreign}, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"price_set": [f"Price set 'Other' belongs to another program; use one of program "
                                            f"{program.code}."]}
    rule = services.incentive_rule_create(program=program, data={"kind": "performance_kwh", "basis": "price_set",
                                                                 "price_set": own}, now=now, actor=TEST_ACTOR)
    assert rule.price_set == own
    with pytest.raises(DomainValidationError) as exc:
        services.incentive_rule_create(program=program, data={"kind": "performance_kw", "basis": "flat",
                                                              "amount": Decimal("275")}, now=now, actor=TEST_ACTOR)
    assert errors_of(exc)["basis"] == ["Basis 'flat' does not fit a performance_kw incentive (allowed: per_kw)."]
    with pytest.raises(ConflictError, match="used by incentive rule"):
        services.price_set_delete(price_set=own, now=now, actor=TEST_ACTOR)


@pytest.mark.parametrize("changes", [
    {"kind": "performance_kwh", "basis": "flat"},
    {"kind": "performance_kw", "basis": "per_kwh"},
    {"kind": "opt_out_penalty", "basis": "flat", "opt_out_consequence": ""},
    {"basis": "price_set", "price_set": None},
    {"amount": Decimal("-1")},
])
def test_database_check_constraints_on_incentives(changes):
    with pytest.raises(IntegrityError), transaction.atomic():
        IncentiveRuleFactory(**changes)


def test_incentive_season_must_belong_to_program(now):
    program = ProgramFactory(status="draft")
    stranger = SeasonFactory()
    with pytest.raises(DomainValidationError) as exc:
        services.incentive_rule_create(program=program, data={"kind": "seasonal", "basis": "per_device",
                                                              "amount": Decimal("25"), "season": stranger}, now=now,
                                                                  actor=TEST_ACTOR)
    assert errors_of(exc) == {"season": ["Season 'Summer 2026' belongs to another program."]}
    assert not IncentiveRule.objects.filter(program=program).exists()


# --- questions ---------------------------------------------------------------------------------------------------

def test_question_create_and_duplicate_code(now):
    program = ProgramFactory(status="draft")
    data = {"code": "heating", "text": "Heating?", "answer_type": "choice", "choices": ["heat_pump", "gas"],
            "qualifying_answers": ["heat_pump"]}
    question = services.question_create(program=program, data=data, now=now, actor=TEST_ACTOR)
    assert question.choices == ["heat_pump", "gas"]
    with pytest.raises(DomainValidationError) as exc:
        services.question_create(program=program, data=data, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"code": [f"Program {program.code} already has a question 'heating'."]}
    with pytest.raises(DomainValidationError) as exc:
        services.question_create(program=program, data={**data, "code": "h2", "qualifying_answers": ["wood"]},
                                 now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"qualifying_answers": ["'wood' is not a possible answer to this choice question."]}


# --- mutual exclusions -------------------------------------------------------------------------------------------

def test_mutual_exclusion_ordered_unique_not_self(now):
    first, second = ProgramFactory(), ProgramFactory()
    pair = services.mutual_exclusion_create(program_a=second, program_b=first, reason="same devices", now=now,
                                            actor=TEST_ACTOR)
    assert (pair.program_a_id, pair.program_b_id) == (first.pk, second.pk)
    with pytest.raises(ConflictError, match=f"Programs {first.code} and {second.code} are already mutually"):
        services.mutual_exclusion_create(program_a=first, program_b=second, now=now, actor=TEST_ACTOR)
    with pytest.raises(DomainValidationError) as exc:
        services.mutual_exclusion_create(program_a=first, program_b=first, now=now, actor=TEST_ACTOR)
    assert errors_of(exc) == {"program_b": [f"Program {first.code} cannot exclude itself."]}


def test_mutual_exclusion_database_constraints():
    from tests.factories.programs import MutualExclusionFactory

    a, b = ProgramFactory(), ProgramFactory()
    MutualExclusionFactory(program_a=b, program_b=a)
    with pytest.raises(IntegrityError), transaction.atomic():
        MutualExclusionFactory(program_a=a, program_b=b)
    from programs.models import MutualExclusion

    with pytest.raises(IntegrityError), transaction.atomic():
        MutualExclusion.objects.create(program_a=b, program_b=a)  # reversed order refused by the check


# --- interval price sets -----------------------------------------------------------------------------------------

def test_price_set_from_local_and_utc_rows_across_dst(now):
    program = ProgramFactory(status="draft")  # America/Los_Angeles
    price_set = services.price_set_create(program=program, name="Autumn", interval_minutes=60, rows=[
        {"interval_start": "2026-11-01T00:00", "price_per_kwh": "0.10"},
        {"interval_start": "2026-11-01T01:00", "price_per_kwh": "0.20"},  # first 01:00 (PDT)
        {"interval_start": "2026-11-01T01:00-08:00", "price_per_kwh": "0.30"},  # second 01:00 (PST)
        {"interval_start": dt.datetime(2026, 11, 1, 10, 0, tzinfo=dt.UTC), "price_per_kwh": Decimal("0.40")},
    ], now=now, actor=TEST_ACTOR)
    stored = list(IntervalPrice.objects.filter(price_set=price_set).values_list("interval_start", "price_per_kwh"))
    assert stored == [
        (dt.datetime(2026, 11, 1, 7, tzinfo=dt.UTC), Decimal("0.10000")),
        (dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC), Decimal("0.20000")),
        (dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC), Decimal("0.30000")),
        (dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC), Decimal("0.40000")),
    ]


@pytest.mark.parametrize(("rows", "key", "message"), [
    ([{"interval_start": "2026-07-01T14:00", "price_per_kwh": "1"},
      {"interval_start": "2026-07-01T14:10", "price_per_kwh": "1"}], "rows[1].interval_start",
     "Row 2: 2026-07-01 14:10 local is not aligned to 15-minute intervals."),
    ([{"interval_start": "2026-07-01T21:05Z", "price_per_kwh": "1"}], "rows[0].interval_start",
     "Row 1: 2026-07-01 14:05 local is not aligned"),
    ([{"interval_start": "2026-03-08T02:15", "price_per_kwh": "1"}], "rows[0].interval_start",
     "Row 1: local time 2026-03-08 02:15 does not exist in America/Los_Angeles"),
    ([{"interval_start": "July 1st", "price_per_kwh": "1"}], "rows[0].interval_start",
     "Row 1: 'July 1st' is not an ISO 8601 date-time."),
    ([{"interval_start": "2026-07-01T14:00", "price_per_kwh": "-1"}], "rows[0].price_per_kwh",
     "Row 1: price_per_kwh must be zero or more."),
    ([{"interval_start": "2026-07-01T14:00", "price_per_kwh": "0_1"}], "rows[0].price_per_kwh",
     "Row 1: '0_1' is not a number."),  # Python's Decimal read it as 1 (digit grouping)
    ([{"interval_start": "2026-07-01T14:00", "price_per_kwh": "1"},
      {"interval_start": "2026-07-01T21:00Z", "price_per_kwh": "2"}], "rows[1].interval_start",
     "Row 2: interval 2026-07-01 14:00 PDT repeats row 1."),
    ([], "rows", "A price set needs at least one row."),
])
def test_price_set_rows_refused_with_row_number(now, rows, key, message):
    program = ProgramFactory(status="draft")
    with pytest.raises(DomainValidationError) as exc:
        services.price_set_create(program=program, name="P", interval_minutes=15, rows=rows, now=now, actor=TEST_ACTOR)
    assert message in errors_of(exc)[key][0]
    assert not program.price_sets.exists()


# --- auto-activation ---------------------------------------------------------------------------------------------

def test_programs_activate_due_by_local_date_idempotent(now):
    # now = 2026-05-15 16:00 UTC = 09:00 in Los Angeles, 2026-05-16 01:00 in Tokyo.
    due = complete_draft(now, auto_activate=True, enrollment_opens_on=dt.date(2026, 5, 15))
    tokyo = complete_draft(now, auto_activate=True, time_zone="Asia/Tokyo", enrollment_opens_on=dt.date(2026, 5, 16))
    not_yet = complete_draft(now, auto_activate=True, enrollment_opens_on=dt.date(2026, 5, 16))
    manual = complete_draft(now, enrollment_opens_on=dt.date(2026, 5, 1))
    incomplete = services.program_create(data=draft_program_data(auto_activate=True,
                                                                 enrollment_opens_on=dt.date(2026, 5, 1)), now=now,
                                                                     actor=TEST_ACTOR)
    assert sorted(services.programs_activate_due(now=now, actor=TEST_ACTOR)) == sorted([due.pk, tokyo.pk])
    statuses = dict(Program.objects.values_list("pk", "status"))
    assert [statuses[p.pk] for p in (due, tokyo, not_yet, manual, incomplete)] == [
        "active", "active", "draft", "draft", "draft"]
    assert services.programs_activate_due(now=now, actor=TEST_ACTOR) == []
    assert AuditEntry.objects.filter(action="status_change", reason="enrollment opened").count() == 2
