"""Programs REST API: list/filter with constant queries, nested create with per-field errors, status actions,
sub-resources, price sets, mutual exclusions, permissions."""

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cpm.models import AuditEntry
from programs.models import Program
from tests.factories.programs import (
    IncentiveRuleFactory,
    ParticipationRuleFactory,
    ProgramFactory,
    QuestionFactory,
    SeasonFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/programs/"

NEW_PROGRAM = {
    "code": "sep-2026", "name": "Smart Energy 2026", "program_type": "thermostat_dr",
    "time_zone": "America/Los_Angeles", "eligible_device_types": ["thermostat"],
    "eligible_customer_classes": ["residential"], "settlement_timing": "after_event",
    "seasons": [{"name": "Summer 2026", "start_date": "2026-06-01", "end_date": "2026-09-30"}],
    "participation_rules": [{"effective_from": "2026-01-01", "window_start": "14:00", "window_end": "00:00",
                             "max_duration_minutes": 240, "opt_out_allowance_kind": "count",
                             "opt_out_allowance_count": 3}],
    "incentive_rules": [{"kind": "performance_kwh", "basis": "per_kwh", "amount": "1.25"},
                        {"kind": "seasonal", "basis": "per_device", "amount": "25", "season_name": "Summer 2026",
                         "max_opt_outs": 3}],
    "questions": [{"code": "central_ac", "text": "Central A/C?", "answer_type": "boolean",
                   "qualifying_answers": [True]}],
}


def full_program(**kwargs):
    program = ProgramFactory(**kwargs)
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    IncentiveRuleFactory(program=program)
    QuestionFactory(program=program)
    return program


def count_queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries), response.json()


def test_list_query_count_does_not_grow(admin_api):
    full_program()
    one, body = count_queries(admin_api, URL)
    assert body["count"] == 1
    for _ in range(12):
        full_program()
    many, body = count_queries(admin_api, URL)
    assert body["count"] == 13 and len(body["results"][0]["seasons"]) == 1
    assert many == one
    assert one <= 8


def test_list_nested_content(admin_api):
    program = full_program(code="abc")
    [item] = admin_api.get(URL).json()["results"]
    assert item["code"] == "abc" and item["status"] == "active"
    assert item["seasons"] == [{"id": program.seasons.get().pk, "program": program.pk, "name": "Summer 2026",
                                "start_date": "2026-06-01", "end_date": "2026-09-30"}]
    assert item["participation_rules"][0]["window_start"] == "14:00:00"
    assert item["incentive_rules"][0]["amount"] == "1.2500"
    assert item["questions"][0]["qualifying_answers"] == [True]


def test_filters(admin_api):
    thermo = ProgramFactory(code="thermo")
    battery = ProgramFactory(code="battery", program_type="battery_storage", eligible_device_types=["battery"],
                             status="draft")
    both = ProgramFactory(code="both", program_type="ev_managed_charging",
                          eligible_device_types=["ev_charger", "battery"])
    SeasonFactory(program=thermo)
    SeasonFactory(program=battery, name="Winter", start_date=dt.date(2026, 12, 1), end_date=dt.date(2027, 2, 28))
    SeasonFactory(program=both, name="All 2026", start_date=dt.date(2026, 1, 1), end_date=dt.date(2026, 12, 31))

    def codes(query):
        response = admin_api.get(f"{URL}?{query}")
        assert response.status_code == 200, response.content
        return sorted(p["code"] for p in response.json()["results"])

    assert codes("device_type=battery") == ["battery", "both"]
    assert codes("device_type=thermostat") == ["thermo"]
    assert codes("program_type=battery_storage&program_type=thermostat_dr") == ["battery", "thermo"]
    assert codes("status=draft") == ["battery"]
    assert codes("season_date=2026-07-04") == ["both", "thermo"]
    assert codes("season_date=2027-01-10") == ["battery"]
    assert codes("search=bat") == ["battery"]
    assert admin_api.get(f"{URL}?device_type=toaster").status_code == 400


def test_create_nested_then_read(admin_api, admin_user):
    response = admin_api.post(URL, NEW_PROGRAM, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft" and body["code"] == "sep-2026"
    assert body["participation_rules"][0]["window_end"] == "00:00:00"
    seasonal = next(i for i in body["incentive_rules"] if i["kind"] == "seasonal")
    assert seasonal["season"] == body["seasons"][0]["id"]
    assert AuditEntry.objects.get(action="create", object_id=str(body["id"])).actor == admin_user


def test_create_errors_per_field_with_nested_paths(admin_api):
    bad = {**NEW_PROGRAM, "time_zone": "Mars/Olympus", "eligible_device_types": ["toaster"],
           "seasons": [NEW_PROGRAM["seasons"][0], {"name": "X", "start_date": "2026-13-01", "end_date": "2026-1"}]}
    response = admin_api.post(URL, bad, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body) >= {"eligible_device_types[0]", "seasons[1].start_date", "seasons[1].end_date"}
    # Type-valid but inconsistent values: the service names the field and the nested path.
    bad = {**NEW_PROGRAM, "participation_rules": [{**NEW_PROGRAM["participation_rules"][0],
                                                   "opt_out_allowance_count": None}]}
    body = admin_api.post(URL, bad, format="json").json()
    assert body == {"code": "invalid", "detail": "participation_rules[0].opt_out_allowance_count: "
                    "opt_out_allowance_count is required when the allowance kind is count.",
                    "participation_rules[0].opt_out_allowance_count": [
                        "opt_out_allowance_count is required when the allowance kind is count."]}
    body = admin_api.post(URL, {**NEW_PROGRAM, "time_zone": "Mars/Olympus"}, format="json").json()
    assert body["time_zone"] == ["'Mars/Olympus' is not an IANA time zone (e.g. America/Los_Angeles)."]
    body = admin_api.post(URL, {**NEW_PROGRAM, "device_ownership": "utility_owned"}, format="json").json()
    assert "out of scope" in body["device_ownership"][0]
    assert not Program.objects.exists()
    admin_api.post(URL, NEW_PROGRAM, format="json")
    response = admin_api.post(URL, NEW_PROGRAM, format="json")
    # A field named "code" is reported as "code_field" so it never hides the machine code.
    body = response.json()
    assert response.status_code == 400 and body["code"] == "invalid"
    assert body["code_field"] == ["Program with this Code already exists."]


def test_update_program_and_nested_refused(admin_api):
    program = full_program()
    response = admin_api.patch(f"{URL}{program.pk}/", {"name": "New name", "eligible_rate_codes": ["TOU-D"]},
                               format="json")
    assert response.status_code == 200, response.content
    assert response.json()["eligible_rate_codes"] == ["TOU-D"]
    response = admin_api.patch(f"{URL}{program.pk}/", {"seasons": []}, format="json")
    assert response.json() == {"code": "invalid", "detail": "seasons: Change seasons through /api/v1/seasons/.",
                               "seasons": ["Change seasons through /api/v1/seasons/."]}
    response = admin_api.patch(f"{URL}{program.pk}/", {"time_zone": "America/Chicago"}, format="json")
    assert response.status_code == 400
    assert response.json()["time_zone"] == ["time_zone cannot change once the program has been activated."]
    assert admin_api.delete(f"{URL}{program.pk}/").status_code == 409


def test_baseline_params_of_the_wrong_type_are_a_400_naming_the_key(admin_api):
    response = admin_api.post(URL, {**NEW_PROGRAM, "baseline_params": {"adjustment_hours": "abc"}}, format="json")
    assert response.status_code == 400
    assert response.json()["baseline_params"] == ["adjustment_hours: must be a number, not 'abc'."]
    assert not Program.objects.exists()
    program = full_program()
    response = admin_api.patch(f"{URL}{program.pk}/", {"baseline_params": {"adjustment_cap": [1.2, "1_0"]}},
                               format="json")
    assert response.status_code == 400
    assert response.json()["baseline_params"] == [
        "adjustment_cap: each bound must be a number or null, not [1.2, '1_0']."]
    program.refresh_from_db()
    assert program.baseline_params == {}


def test_status_actions_and_409(admin_api):
    response = admin_api.post(URL, NEW_PROGRAM, format="json")
    pk = response.json()["id"]
    response = admin_api.post(f"{URL}{pk}/suspend/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "transition_not_allowed"
    assert response.json()["detail"] == "Program sep-2026 is draft: suspend applies to active programs."
    response = admin_api.post(f"{URL}{pk}/activate/", {"reason": "launch"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert admin_api.post(f"{URL}{pk}/suspend/").json()["status"] == "suspended"
    assert admin_api.post(f"{URL}{pk}/resume/").json()["status"] == "active"
    assert admin_api.post(f"{URL}{pk}/close/").json()["status"] == "closed"
    assert admin_api.post(f"{URL}{pk}/activate/").status_code == 409
    assert AuditEntry.objects.filter(object_id=str(pk), action="status_change").count() == 4
    # status is read-only in updates
    admin_api.patch(f"{URL}{pk}/", {"status": "draft"}, format="json")
    assert Program.objects.get(pk=pk).status == "closed"


def test_incomplete_program_activation_409(admin_api):
    response = admin_api.post(URL, {k: v for k, v in NEW_PROGRAM.items() if k != "incentive_rules"}, format="json")
    response = admin_api.post(f"{URL}{response.json()['id']}/activate/")
    assert response.status_code == 409
    assert response.json() == {"code": "program_incomplete",
                               "detail": "Program sep-2026 cannot be activated: it needs an incentive rule."}


def test_sub_resources(admin_api):
    program = ProgramFactory(status="draft")
    season = admin_api.post("/api/v1/seasons/", {"program": program.pk, "name": "Summer 2026",
                                                 "start_date": "2026-06-01", "end_date": "2026-09-30"}, format="json")
    assert season.status_code == 201, season.content
    response = admin_api.post("/api/v1/seasons/", {"program": program.pk, "name": "Overlap",
                                                   "start_date": "2026-09-01", "end_date": "2026-10-31"},
                              format="json")
    assert response.status_code == 400
    assert response.json()["start_date"][0].startswith("Season 'Overlap' (2026-09-01 to 2026-10-31) overlaps")
    response = admin_api.patch(f"/api/v1/seasons/{season.json()['id']}/", {"end_date": "2026-09-15"},
                               format="json")
    assert response.json()["end_date"] == "2026-09-15"
    response = admin_api.post("/api/v1/participation-rules/", {"program": program.pk, "effective_from": "2026-01-01",
                                                                "min_duration_minutes": 90,
                                                                "max_duration_minutes": 60}, format="json")
    assert response.json() == {"code": "invalid", "detail": "max_duration_minutes: max_duration_minutes (60) must be "
                               "at least min_duration_minutes (90).", "max_duration_minutes": [
        "max_duration_minutes (60) must be at least min_duration_minutes (90)."]}
    response = admin_api.post("/api/v1/incentive-rules/", {"program": program.pk, "kind": "performance_kw",
                                                            "basis": "per_kw", "amount": "275",
                                                            "top_percent_events": "50"}, format="json")
    assert response.status_code == 201 and response.json()["top_percent_events"] == "50.00"
    response = admin_api.post("/api/v1/qualification-questions/", {
        "program": program.pk, "code": "units", "text": "Homes in the building?", "answer_type": "number",
        "qualifying_answers": {"min": 1, "max": 4}}, format="json")
    assert response.status_code == 201, response.content
    assert admin_api.get(f"/api/v1/seasons/?program={program.pk}&contains_date=2026-07-01").json()["count"] == 1
    assert admin_api.delete(f"/api/v1/seasons/{season.json()['id']}/").status_code == 204
    other = ProgramFactory(status="draft")
    rule = admin_api.get("/api/v1/incentive-rules/").json()["results"][0]
    response = admin_api.patch(f"/api/v1/incentive-rules/{rule['id']}/", {"program": other.pk}, format="json")
    assert response.json()["program"] == ["An item cannot move to another program."]


def test_price_sets_and_mutual_exclusions(admin_api):
    program = ProgramFactory(status="draft")
    response = admin_api.post("/api/v1/price-sets/", {"program": program.pk, "name": "Summer", "interval_minutes": 60,
                                                      "rows": [{"interval_start": "2026-07-01T14:00",
                                                                "price_per_kwh": "0.5"},
                                                               {"interval_start": "2026-07-01T22:00Z",
                                                                "price_per_kwh": "0.75"}]}, format="json")
    assert response.status_code == 201, response.content
    prices = response.json()["prices"]
    assert [p["interval_start"] for p in prices] == ["2026-07-01T21:00:00Z", "2026-07-01T22:00:00Z"]
    assert prices[1]["interval_start_local"] == "2026-07-01T15:00:00-07:00"
    response = admin_api.post("/api/v1/price-sets/", {"program": program.pk, "name": "Bad", "interval_minutes": 60,
                                                      "rows": [{"interval_start": "2026-07-01T14:30",
                                                                "price_per_kwh": "0.5"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["rows[0].interval_start"] == [
        "Row 1: 2026-07-01 14:30 local is not aligned to 60-minute intervals."]
    a, b = ProgramFactory(), ProgramFactory()
    response = admin_api.post("/api/v1/mutual-exclusions/", {"program_a": b.pk, "program_b": a.pk,
                                                             "reason": "same thermostats"}, format="json")
    assert response.status_code == 201
    assert (response.json()["program_a"], response.json()["program_b"]) == (a.pk, b.pk)
    assert admin_api.post("/api/v1/mutual-exclusions/", {"program_a": a.pk, "program_b": b.pk},
                          format="json").status_code == 409
    assert admin_api.get(f"/api/v1/mutual-exclusions/?program={b.pk}").json()["count"] == 1


def test_permissions(api_client, django_user_model):
    program = full_program()
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123")
    api_client.force_authenticate(user)
    assert api_client.get(URL).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_program"))
    user = django_user_model.objects.get(pk=user.pk)
    api_client.force_authenticate(user)
    assert api_client.get(URL).status_code == 200
    assert api_client.post(f"{URL}{program.pk}/suspend/").status_code == 403
    # The model's change permission is not the capability: suspending needs cpm.manage_programs (issue 13).
    user.user_permissions.add(Permission.objects.get(codename="change_program"))
    api_client.force_authenticate(django_user_model.objects.get(pk=user.pk))
    assert api_client.post(f"{URL}{program.pk}/suspend/").status_code == 403
    user.user_permissions.add(Permission.objects.get(content_type__app_label="cpm", codename="manage_programs"))
    api_client.force_authenticate(django_user_model.objects.get(pk=user.pk))
    assert api_client.post(f"{URL}{program.pk}/suspend/").status_code == 200
    api_client.force_authenticate(None)
    assert api_client.get(URL).status_code in (401, 403)


def test_a_seasonal_incentive_names_which_enrollments_it_pays(admin_api):
    """season_enrollment (Austin Energy: "for each thermostat that stays enrolled"): set on a seasonal incentive,
    answered back; refused in words on another kind and for an unknown value, nothing written; absent, it is "any"
    (paid as before to every enrollment of the season)."""
    program = ProgramFactory(status="draft")
    url = "/api/v1/incentive-rules/"
    seasonal = {"program": program.pk, "kind": "seasonal", "basis": "per_device", "amount": "25"}
    response = admin_api.post(url, {**seasonal, "season_enrollment": "at_season_end"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["season_enrollment"] == "at_season_end"
    response = admin_api.post(url, seasonal, format="json")
    assert response.json()["season_enrollment"] == "any"
    response = admin_api.post(url, {"program": program.pk, "kind": "performance_kw", "basis": "per_kw",
                                    "amount": "275", "season_enrollment": "prorated"}, format="json")
    assert response.status_code == 400
    assert response.json()["season_enrollment"] == ["season_enrollment is only used by seasonal incentives."]
    response = admin_api.post(url, {**seasonal, "season_enrollment": "bogus"}, format="json")
    assert response.status_code == 400 and "season_enrollment" in response.json()
    assert program.incentive_rules.count() == 2


def test_a_baseline_look_back_beyond_a_year_is_a_400(admin_api):
    program = full_program()
    response = admin_api.patch(f"{URL}{program.pk}/", {"baseline_params": {"lookback_days": 99999999}},
                               format="json")
    assert response.status_code == 400
    assert response.json()["baseline_params"] == ["lookback_days: must be at most 366 days, not 99999999."]
    program.refresh_from_db()
    assert program.baseline_params == {}


def test_sub_resources_accept_the_program_code(admin_api):
    """Seasons, participation rules, incentive rules and qualification questions took the program only as its
    integer id ("program: Incorrect type. Expected pk value, received str." for "sep-2026"), though events, price
    sets, mutual exclusions and enrollments take the code a client knows; they now take the code or the id, and an
    unknown code is a 400 naming it (QA guard)."""
    program = ProgramFactory(status="draft", code="sep-2026")
    season = admin_api.post("/api/v1/seasons/", {"program": "sep-2026", "name": "Summer 2026",
                                                 "start_date": "2026-06-01", "end_date": "2026-09-30"}, format="json")
    assert (season.status_code, season.json()["program"]) == (201, program.pk)
    rule = admin_api.post("/api/v1/participation-rules/", {"program": "sep-2026", "effective_from": "2026-01-01"},
                          format="json")
    assert (rule.status_code, rule.json()["program"]) == (201, program.pk)
    incentive = admin_api.post("/api/v1/incentive-rules/", {"program": "sep-2026", "kind": "performance_kwh",
                                                            "basis": "per_kwh", "amount": "1.25"}, format="json")
    assert (incentive.status_code, incentive.json()["program"]) == (201, program.pk)
    question = admin_api.post("/api/v1/qualification-questions/", {
        "program": "sep-2026", "code": "heat", "text": "Heating?", "answer_type": "choice",
        "choices": ["gas", "electric"], "qualifying_answers": ["electric"]}, format="json")
    assert (question.status_code, question.json()["program"]) == (201, program.pk)
    assert admin_api.post("/api/v1/seasons/", {"program": program.pk, "name": "Winter", "start_date": "2026-12-01",
                                               "end_date": "2027-02-28"}, format="json").status_code == 201
    unknown = admin_api.post("/api/v1/seasons/", {"program": "nope", "name": "X", "start_date": "2027-06-01",
                                                  "end_date": "2027-09-30"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["program"] == ["No program has code or id 'nope'."]
