"""Pure rule checks: participation rule values, events against a rule, incentive combinations, answers."""

import datetime as dt
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

import pytest

from programs.calendars import is_holiday
from programs.rules import (
    check_answers,
    check_event_against_rule,
    check_opt_out_request,
    opt_out_allowance,
    rule_in_effect,
    season_containing,
    season_overlaps,
    validate_incentive_rule,
    validate_participation_rule,
    validate_question,
)

LA = ZoneInfo("America/Los_Angeles")
T = dt.time

BASE_RULE = {"weekdays_allowed": True, "weekends_allowed": False, "holidays_allowed": False,
             "window_start": T(14), "window_end": T(21), "min_duration_minutes": 30, "max_duration_minutes": 240,
             "max_event_hours_per_day": Decimal("6"), "min_notice_minutes": 60, "opt_out_allowance_kind": "unlimited"}


def rule(**changes):
    return {**BASE_RULE, **changes}


def local(y, m, d, h, mi=0, fold=0):
    return dt.datetime(y, m, d, h, mi, tzinfo=LA, fold=fold)


# --- participation rule values: one test per field message ---------------------------------------------------------

def test_valid_rule_has_no_errors():
    assert validate_participation_rule(rule()) == {}
    assert validate_participation_rule(rule(window_start=T(17), window_end=T(0), max_duration_minutes=420)) == {}


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"weekdays_allowed": False}, "weekdays_allowed", "At least one of weekdays, weekends or holidays"),
    ({"window_end": T(13)}, "window_end", "window_end (13:00) must be after window_start (14:00); 00:00 means"),
    ({"window_end": T(14)}, "window_end", "must be after window_start"),
    ({"window_end": None}, "window_end", "Give both window_start and window_end, or neither."),
    ({"window_start": None}, "window_start", "Give both window_start and window_end, or neither."),
    ({"min_duration_minutes": 0}, "min_duration_minutes", "min_duration_minutes must be at least 1 minute."),
    ({"min_duration_minutes": 120, "max_duration_minutes": 60}, "max_duration_minutes",
     "max_duration_minutes (60) must be at least min_duration_minutes (120)."),
    ({"max_duration_minutes": 480}, "max_duration_minutes",
     "max_duration_minutes (480) is longer than the event window (420 minutes)."),
    ({"window_start": T(20), "window_end": T(0), "min_duration_minutes": 300, "max_duration_minutes": None},
     "min_duration_minutes", "min_duration_minutes (300) is longer than the event window (240 minutes)."),
    ({"max_events_per_day": 0}, "max_events_per_day", "max_events_per_day must be at least 1"),
    ({"max_events_per_season": 0}, "max_events_per_season", "max_events_per_season must be at least 1"),
    ({"max_consecutive_event_days": 0}, "max_consecutive_event_days", "must be at least 1"),
    ({"max_events_per_day": 3, "max_events_per_week": 2}, "max_events_per_week",
     "max_events_per_week (2) must be at least max_events_per_day (3)."),
    ({"max_event_hours_per_day": Decimal("25")}, "max_event_hours_per_day", "more than 0 and at most 24"),
    ({"max_event_hours_per_day": Decimal("0.25")}, "min_duration_minutes",
     "min_duration_minutes (30) exceeds max_event_hours_per_day (0.25 h)."),
    ({"max_event_hours_per_season": Decimal("4")}, "max_event_hours_per_season",
     "max_event_hours_per_season (4) must be at least max_event_hours_per_day (6)."),
    ({"opt_out_allowance_kind": "count"}, "opt_out_allowance_count",
     "opt_out_allowance_count is required when the allowance kind is count."),
    ({"opt_out_allowance_count": 3}, "opt_out_allowance_count", "only used when the allowance kind is count"),
    ({"opt_out_allowance_kind": "percent_hours"}, "opt_out_allowance_percent",
     "opt_out_allowance_percent is required when the allowance kind is percent_hours."),
    ({"opt_out_allowance_kind": "percent_hours", "opt_out_allowance_percent": Decimal("150")},
     "opt_out_allowance_percent", "more than 0 and at most 100"),
    ({"opt_out_allowance_kind": "none", "opt_out_cutoff_minutes": 30}, "opt_out_cutoff_minutes",
     "no meaning when no opt-outs are allowed"),
])
def test_inconsistent_rule_values_name_the_field(changes, field, message):
    errors = validate_participation_rule(rule(**changes))
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors[field]


# --- an event against a rule -------------------------------------------------------------------------------------

def check(r=None, start=None, end=None, holiday=False, notice=120):
    return check_event_against_rule(r or rule(), start_local=start, end_local=end, is_holiday=holiday,
                                    notice_minutes=notice)


def test_event_inside_rule_passes():
    assert check(start=local(2026, 7, 15, 16), end=local(2026, 7, 15, 19)) == []  # a Wednesday


def test_weekend_holiday_and_weekday_refusals():
    [v] = check(start=local(2026, 7, 18, 16), end=local(2026, 7, 18, 18))  # Saturday
    assert (v.code, v.field) == ("weekend_not_allowed", "weekends_allowed")
    [v] = check(start=local(2026, 7, 3, 16), end=local(2026, 7, 3, 18), holiday=True)
    assert (v.code, v.field) == ("holiday_not_allowed", "holidays_allowed")
    [v] = check(rule(weekdays_allowed=False, weekends_allowed=True), start=local(2026, 7, 15, 16),
                end=local(2026, 7, 15, 18))
    assert v.code == "weekday_not_allowed"
    # Holiday callable from the NERC calendar: Labor Day 2026 is Monday Sept 7.
    [v] = check(start=local(2026, 9, 7, 16), end=local(2026, 9, 7, 18), holiday=partial(is_holiday, "NERC"))
    assert v.code == "holiday_not_allowed" and "2026-09-07" in v.message
    assert check(rule(holidays_allowed=True), start=local(2026, 9, 7, 16), end=local(2026, 9, 7, 18),
                 holiday=partial(is_holiday, "NERC")) == []


def test_window_refusals_and_midnight_end_of_day():
    [v] = check(start=local(2026, 7, 15, 13), end=local(2026, 7, 15, 15))
    assert (v.code, v.field) == ("outside_window", "window_start")
    assert "13:00-15:00 is outside the event window 14:00-21:00" in v.message
    [v] = check(start=local(2026, 7, 15, 20), end=local(2026, 7, 15, 22))
    assert v.field == "window_end"
    late = rule(window_start=T(20), window_end=T(0), max_duration_minutes=240)
    assert check(late, start=local(2026, 7, 15, 21), end=local(2026, 7, 16, 0)) == []  # ends at midnight: OK
    [v] = check(late, start=local(2026, 7, 15, 22), end=local(2026, 7, 16, 0, 30))
    assert v.code == "outside_window"


def test_event_crossing_midnight_checks_both_days():
    anytime = rule(window_start=None, window_end=None)
    # Friday 22:00 -> Saturday 01:00 touches a weekend day.
    [v] = check(anytime, start=local(2026, 7, 17, 22), end=local(2026, 7, 18, 1))
    assert v.code == "weekend_not_allowed" and "2026-07-18" in v.message
    # Thursday 22:00 -> Friday 01:00 is fine.
    assert check(anytime, start=local(2026, 7, 16, 22), end=local(2026, 7, 17, 1)) == []


def test_duration_is_real_elapsed_time_across_dst():
    anytime = rule(window_start=None, window_end=None, weekends_allowed=True, min_duration_minutes=90,
                   max_duration_minutes=120, max_event_hours_per_day=None)
    # Spring forward 2026-03-08: 01:00 -> 03:00 wall clock is only 60 real minutes.
    [v] = check(anytime, start=local(2026, 3, 8, 1), end=local(2026, 3, 8, 3))
    assert (v.code, v.field) == ("duration_too_short", "min_duration_minutes")
    assert "lasts 60 minutes; the minimum is 90" in v.message
    # Fall back 2026-11-01: 00:30 -> 02:00 wall clock is 150 real minutes.
    [v] = check(anytime, start=local(2026, 11, 1, 0, 30), end=local(2026, 11, 1, 2))
    assert (v.code, v.message) == ("duration_too_long", "The event lasts 150 minutes; the maximum is 120.")


def test_daily_hours_notice_and_bad_input():
    [v] = check(rule(max_event_hours_per_day=Decimal("2")), start=local(2026, 7, 15, 16),
                end=local(2026, 7, 15, 19))
    assert (v.code, v.field) == ("daily_hours_exceeded", "max_event_hours_per_day")
    [v] = check(start=local(2026, 7, 15, 16), end=local(2026, 7, 15, 18), notice=45)
    assert (v.code, v.field) == ("notice_too_short", "min_notice_minutes")
    assert check(start=local(2026, 7, 15, 16), end=local(2026, 7, 15, 18), notice=None) == []
    [v] = check(start=local(2026, 7, 15, 18), end=local(2026, 7, 15, 16))
    assert v.code == "event_end_not_after_start"
    with pytest.raises(ValueError, match="start_local must be timezone-aware"):
        check(start=dt.datetime(2026, 7, 15, 16), end=local(2026, 7, 15, 18))


SUMMER = [{"name": "Summer 2026", "start_date": dt.date(2026, 6, 1), "end_date": dt.date(2026, 9, 30)}]


def test_season_check_on_the_start_day_and_no_rule_checks_only_the_season():
    inside = check_event_against_rule(rule(), start_local=local(2026, 9, 30, 16), end_local=local(2026, 9, 30, 18),
                                      is_holiday=False, notice_minutes=120, seasons=SUMMER)
    assert inside == []
    [v] = check_event_against_rule(rule(), start_local=local(2026, 5, 20, 16), end_local=local(2026, 5, 20, 18),
                                   is_holiday=False, notice_minutes=120, seasons=SUMMER)
    assert (v.code, v.field) == ("outside_season", "season")
    assert v.message == ("The event day 2026-05-20 is outside every season of the program (Summer 2026 2026-06-01 "
                         "to 2026-09-30).")
    # No seasons = any date; no rule = only the season is checked (a Saturday at 03:00 passes).
    assert check_event_against_rule(rule(), start_local=local(2026, 5, 20, 16), end_local=local(2026, 5, 20, 18),
                                    is_holiday=False, notice_minutes=120, seasons=[]) == []
    assert check_event_against_rule(None, start_local=local(2026, 7, 18, 3), end_local=local(2026, 7, 18, 9),
                                    is_holiday=False, notice_minutes=0, seasons=SUMMER) == []
    [v] = check_event_against_rule(None, start_local=local(2026, 10, 3, 3), end_local=local(2026, 10, 3, 9),
                                   is_holiday=False, notice_minutes=0, seasons=SUMMER)
    assert v.field == "season"


def test_rule_in_effect_latest_wins_and_season_containing_is_inclusive():
    a, b = rule(effective_from=dt.date(2026, 1, 1)), rule(effective_from=dt.date(2026, 7, 1))
    assert rule_in_effect([b, a], dt.date(2026, 6, 30)) is a
    assert rule_in_effect([a, b], dt.date(2026, 7, 1)) is b
    assert rule_in_effect([a, b], dt.date(2025, 12, 31)) is None
    assert season_containing(SUMMER, dt.date(2026, 9, 30)) is SUMMER[0]
    assert season_containing(SUMMER, dt.date(2026, 10, 1)) is None


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, ("unlimited", None)),
    ({"opt_out_allowance_kind": "count", "opt_out_allowance_count": 3}, ("count", 3.0)),
    ({"opt_out_allowance_kind": "count"}, ("unlimited", None)),
    ({"opt_out_allowance_kind": "percent_hours", "opt_out_allowance_percent": Decimal("12.5")},
     ("percent_hours", 12.5)),
    ({"opt_out_allowance_kind": "none"}, ("none", 0.0)),
])
def test_opt_out_allowance(changes, expected):
    assert opt_out_allowance(rule(**changes)) == expected
    assert opt_out_allowance(None) == ("unlimited", None)


def test_opt_out_request_cutoff_count_and_percent_of_season_hours():
    start = local(2026, 7, 15, 16)

    def ask(r, at=local(2026, 7, 15, 9), outs=0, out_hours=0.0, other_hours=0.0, hours=2.0):
        return check_opt_out_request(r, event_start=start, at=at, tz=LA, season_name="Summer 2026",
                                     opted_out_events=outs, opted_out_hours=out_hours, other_event_hours=other_hours,
                                     event_hours=hours)

    assert ask(None, at=start) is None
    cut = rule(opt_out_cutoff_minutes=120)
    assert ask(cut, at=local(2026, 7, 15, 14)) is None  # exactly at the cut-off: still allowed
    v = ask(cut, at=local(2026, 7, 15, 14, 1))
    assert (v.code, v.field, v.message) == ("opt_out_cutoff", "opt_out_cutoff_minutes", "Opt-outs close 120 minutes "
                                            "before the event starts (cut-off 2026-07-15 14:00 PDT).")
    count = rule(opt_out_allowance_kind="count", opt_out_allowance_count=2, refuse_opt_out_beyond_allowance=True)
    assert ask(count, outs=1) is None
    assert ask(count, outs=2).message == "The opt-out allowance of 2 per season is used (2 in Summer 2026)."
    assert ask({**count, "refuse_opt_out_beyond_allowance": False}, outs=5) is None  # allowed, only counted
    assert ask(rule(opt_out_allowance_kind="none", refuse_opt_out_beyond_allowance=True)).field == \
        "opt_out_allowance_kind"
    percent = rule(opt_out_allowance_kind="percent_hours", opt_out_allowance_percent=Decimal("25"),
                   refuse_opt_out_beyond_allowance=True)
    # Over the hours so far: (1 + 2) / (10 + 2) = 25% allowed; (2 + 2) / 12 = 33.3% refused.
    assert ask(percent, out_hours=1, other_hours=10) is None
    v = ask(percent, out_hours=2, other_hours=10)
    assert (v.field, v.message) == ("opt_out_allowance_percent", "Opting out would reach 33.3% of Summer 2026's "
                                                                 "event hours, beyond the allowance of 25%.")
    # With a season maximum the denominator is fixed: (2 + 2) / 20 = 20%.
    assert ask({**percent, "max_event_hours_per_season": Decimal("20")}, out_hours=2, other_hours=10) is None


# --- seasons -----------------------------------------------------------------------------------------------------

def test_season_overlaps_name_both_seasons():
    seasons = [{"name": "Summer 2026", "start_date": dt.date(2026, 6, 1), "end_date": dt.date(2026, 9, 30)},
               {"name": "Late summer", "start_date": dt.date(2026, 9, 30), "end_date": dt.date(2026, 10, 31)},
               {"name": "Winter 2026-27", "start_date": dt.date(2026, 12, 1), "end_date": dt.date(2027, 2, 28)}]
    [(season, message)] = season_overlaps(seasons)
    assert season["name"] == "Late summer"
    assert message == ("Season 'Late summer' (2026-09-30 to 2026-10-31) overlaps season 'Summer 2026' "
                       "(2026-06-01 to 2026-09-30).")


# --- incentive rules ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "field", "message"), [
    ({"kind": "performance_kwh", "basis": "flat", "amount": 1}, "basis",
     "Basis 'flat' does not fit a performance_kwh incentive (allowed: per_kwh, price_set)."),
    ({"kind": "performance_kwh", "basis": "price_set", "amount": 0}, "price_set",
     "price_set is required when basis is price_set."),
    ({"kind": "performance_kwh", "basis": "per_kwh", "amount": 1, "price_set_id": 4}, "price_set",
     "only used when basis is price_set"),
    ({"kind": "performance_kw", "basis": "per_kwh", "amount": 1}, "basis", "allowed: per_kw"),
    ({"kind": "per_event", "basis": "flat", "amount": 0}, "amount", "amount must be more than zero"),
    ({"kind": "per_event", "basis": "flat", "amount": -1}, "amount", "amount must be zero or more."),
    ({"kind": "opt_out_penalty", "basis": "flat", "amount": 5}, "opt_out_consequence",
     "An opt-out penalty needs an opt_out_consequence."),
    ({"kind": "opt_out_penalty", "basis": "flat", "amount": 5, "opt_out_consequence": "forfeit_season"}, "amount",
     "A forfeit_season forfeiture has no amount; set amount to 0."),
    ({"kind": "seasonal", "basis": "flat", "amount": 5, "opt_out_consequence": "penalty"}, "opt_out_consequence",
     "only used by opt_out_penalty"),
    ({"kind": "seasonal", "basis": "flat", "amount": 5, "top_percent_events": 50}, "top_percent_events",
     "only used by performance_kw"),
    ({"kind": "performance_kw", "basis": "per_kw", "amount": 5, "top_percent_events": 0}, "top_percent_events",
     "more than 0 and at most 100"),
    ({"kind": "monthly", "basis": "flat", "amount": 5, "max_opt_outs": 3}, "max_opt_outs",
     "only used by seasonal"),
    ({"kind": "seasonal", "basis": "flat", "amount": 5, "min_participation_share": Decimal("1.5")},
     "min_participation_share", "share from 0 to 1"),
    ({"kind": "seasonal", "basis": "flat", "amount": 5, "requires_no_skipped_event": True},
     "requires_no_skipped_event", "only used by monthly"),
    ({"kind": "bogus", "basis": "flat", "amount": 5}, "kind", "Unknown incentive kind 'bogus'."),
    ({"kind": "performance_kw", "basis": "per_kw", "amount": 5, "season_enrollment": "at_season_end"},
     "season_enrollment", "season_enrollment is only used by seasonal incentives."),
])
def test_incentive_combinations_refused(values, field, message):
    errors = validate_incentive_rule(values)
    assert any(message in m for m in errors.get(field, [])), errors


def test_incentive_combinations_accepted():
    for values in (
        {"kind": "performance_kwh", "basis": "price_set", "amount": 0, "price_set_id": 1},
        {"kind": "performance_kw", "basis": "per_kw", "amount": 275, "top_percent_events": 50},
        {"kind": "seasonal", "basis": "per_device", "amount": 25, "max_opt_outs": 3},
        {"kind": "seasonal", "basis": "flat", "amount": 60, "min_participation_share": Decimal("0.5")},
        {"kind": "seasonal", "basis": "per_device", "amount": 25, "season_enrollment": "at_season_end"},
        {"kind": "seasonal", "basis": "flat", "amount": 40, "season_enrollment": "prorated"},
        {"kind": "monthly", "basis": "flat", "amount": 5, "season_enrollment": "any"},
        {"kind": "monthly", "basis": "per_device", "amount": 20, "requires_no_skipped_event": True},
        {"kind": "enrollment_bonus", "basis": "per_kw_enrolled", "amount": 850},
        {"kind": "opt_out_penalty", "basis": "flat", "amount": 0, "opt_out_consequence": "forfeit_month"},
        {"kind": "opt_out_penalty", "basis": "flat", "amount": 5, "opt_out_consequence": "penalty"},
        {"kind": "season_cap", "basis": "flat", "amount": 60},
    ):
        assert validate_incentive_rule(values) == {}, values


# --- qualification questions -------------------------------------------------------------------------------------

QUESTIONS = [
    {"code": "central_ac", "answer_type": "boolean", "required": True, "qualifying_answers": [True]},
    {"code": "heating", "answer_type": "choice", "required": True, "choices": ["heat_pump", "gas", "electric"],
     "qualifying_answers": ["heat_pump", "electric"]},
    {"code": "units", "answer_type": "number", "required": False, "qualifying_answers": {"min": 1, "max": 4}},
    {"code": "installer", "answer_type": "text", "required": False, "qualifying_answers": []},
]


def test_answers_that_qualify():
    assert check_answers(QUESTIONS, {"central_ac": "yes", "heating": "heat_pump", "units": "2",
                                     "installer": "Acme"}) == []
    assert check_answers(QUESTIONS, {"central_ac": True, "heating": "electric"}) == []


def test_answer_issues_codes_and_messages():
    issues = check_answers(QUESTIONS, {"central_ac": False, "units": 9, "installer": 7, "colour": "red"})
    assert [code for code, _ in issues] == ["answer_not_qualifying", "answer_missing", "answer_not_qualifying",
                                            "answer_wrong_type", "answer_unknown_question"]
    assert issues[0].message == "Question 'central_ac': the answer False does not qualify for the program."
    assert issues[1].message == "Question 'heating' needs an answer."
    assert issues[2].message == "Question 'units': 9 is outside the qualifying range 1 to 4."
    assert issues[3].message == "Question 'installer' expects a text answer, got 7."
    assert check_answers(QUESTIONS, {"central_ac": "maybe", "heating": "wood"}) == [
        ("answer_wrong_type", "Question 'central_ac' expects a boolean answer, got 'maybe'."),
        ("answer_invalid_choice", "Question 'heating': 'wood' is not one of heat_pump, gas, electric.")]
    assert check_answers(QUESTIONS[2:3], {"units": True})[0].code == "answer_wrong_type"


def test_question_definitions_validated():
    assert validate_question(QUESTIONS[1]) == {}
    assert validate_question({"answer_type": "choice", "choices": []}) == {
        "choices": ["A choice question needs a list of choices."]}
    assert "qualifying_answers" in validate_question({"answer_type": "choice", "choices": ["a"],
                                                      "qualifying_answers": ["b"]})
    assert "qualifying_answers" in validate_question({"answer_type": "boolean", "qualifying_answers": {"min": 1}})
    assert validate_question({"answer_type": "boolean", "choices": ["x"]}) == {
        "choices": ["choices are only used by choice questions."]}
