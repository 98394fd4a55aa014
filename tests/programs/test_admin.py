"""Admin pages of the programs app render, with constant queries on the program changelist; status actions."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cpm.models import AuditEntry
from programs import services
from programs.models import IntervalPriceSet, MutualExclusion, Program
from tests.actors import TEST_ACTOR
from tests.factories.programs import (
    IncentiveRuleFactory,
    MutualExclusionFactory,
    ParticipationRuleFactory,
    ProgramFactory,
    QuestionFactory,
    SeasonFactory,
)

pytestmark = pytest.mark.django_db


def full_program(**kwargs):
    program = ProgramFactory(**kwargs)
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    IncentiveRuleFactory(program=program)
    QuestionFactory(program=program)
    return program


def test_program_changelist_constant_queries(admin_client):
    url = reverse("admin:programs_program_changelist")
    full_program()
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(url).status_code == 200
    for _ in range(10):
        full_program()
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(url + "?q=prog&status__exact=active")
    assert response.status_code == 200
    assert response.content.count(b'class="action-checkbox"') == 11
    assert len(many.captured_queries) == len(one.captured_queries)


@pytest.mark.parametrize("model", ["season", "participationrule", "incentiverule", "qualificationquestion",
                                   "mutualexclusion", "intervalpriceset", "intervalprice"])
def test_other_changelists_constant_queries(admin_client, model, now):
    def add():
        program = full_program()
        MutualExclusionFactory(program_a=program, program_b=ProgramFactory())
        services.price_set_create(program=program, name="P", interval_minutes=60, rows=[
            {"interval_start": "2026-07-01T14:00", "price_per_kwh": "0.5"}], now=now, actor=TEST_ACTOR)

    url = reverse(f"admin:programs_{model}_changelist")
    add()
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(url).status_code == 200
    for _ in range(5):
        add()
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(one.captured_queries)


def test_change_add_and_history_pages_render(admin_client, now):
    program = full_program()
    MutualExclusionFactory(program_a=program, program_b=ProgramFactory())
    services.price_set_create(program=program, name="P", interval_minutes=60, rows=[
        {"interval_start": "2026-07-01T14:00", "price_per_kwh": "0.5"}], now=now, actor=TEST_ACTOR)
    pages = [
        reverse("admin:programs_program_change", args=[program.pk]),
        reverse("admin:programs_program_add"),
        reverse("admin:programs_program_history", args=[program.pk]),
        reverse("admin:programs_season_change", args=[program.seasons.get().pk]),
        reverse("admin:programs_participationrule_change", args=[program.participation_rules.get().pk]),
        reverse("admin:programs_incentiverule_change", args=[program.incentive_rules.get().pk]),
        reverse("admin:programs_qualificationquestion_change", args=[program.questions.get().pk]),
        reverse("admin:programs_mutualexclusion_change", args=[MutualExclusion.objects.get().pk]),
        reverse("admin:programs_mutualexclusion_add"),
        reverse("admin:programs_intervalpriceset_change", args=[IntervalPriceSet.objects.get().pk]),
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    body = admin_client.get(pages[0]).content.decode()
    assert "Summer 2026" in body and "Participation rules" in body and "Qualification questions" in body
    assert 'name="status"' not in body  # status is read-only


def test_status_actions_call_services(admin_client, admin_user):
    url = reverse("admin:programs_program_changelist")
    active = full_program(code="live")
    draft = ProgramFactory(code="bare", status="draft")
    response = admin_client.post(url, {"action": "action_suspend", "_selected_action": [active.pk, draft.pk]},
                                 follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert "Program bare is draft: suspend applies to active programs." in messages
    assert "Suspended 1 program(s)." in messages
    assert Program.objects.get(pk=active.pk).status == "suspended"
    entry = AuditEntry.objects.get(action="status_change")
    assert (entry.actor, entry.reason, entry.to_status) == (admin_user, "admin suspend", "suspended")
    admin_client.post(url, {"action": "action_resume", "_selected_action": [active.pk]})
    admin_client.post(url, {"action": "action_close", "_selected_action": [active.pk]})
    assert Program.objects.get(pk=active.pk).status == "closed"
    response = admin_client.post(url, {"action": "action_activate", "_selected_action": [draft.pk]}, follow=True)
    assert any("cannot be activated: it needs at least one season" in str(m) for m in response.context["messages"])


def _program_post(**changes):
    data = {"code": "admin-made", "name": "Admin made", "description": "", "program_type": "thermostat_dr",
            "time_zone": "America/Chicago", "eligible_device_types": '["thermostat"]',
            "eligible_customer_classes": '["residential"]', "eligible_rate_codes": "[]",
            "eligible_territories": "[]", "eligible_substations": "[]", "eligible_feeders": "[]",
            "device_ownership": "customer_owned", "requires_device": "on", "settlement_timing": "after_event",
            "performance_measurement": "meter_baseline", "baseline_method": "caiso-auto", "baseline_params": "{}",
            "holiday_calendar": "NERC", "device_online_threshold_minutes": "1440"}
    for prefix in ("seasons", "participation_rules", "incentive_rules", "questions"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data.update(changes)
    return data


def test_admin_add_program_with_seasons_through_service_and_overlap_refused(admin_client):
    url = reverse("admin:programs_program_add")
    overlapping = _program_post(**{
        "seasons-TOTAL_FORMS": "2", "seasons-0-name": "Summer 2026", "seasons-0-start_date": "2026-06-01",
        "seasons-0-end_date": "2026-09-30", "seasons-1-name": "Late", "seasons-1-start_date": "2026-09-01",
        "seasons-1-end_date": "2026-10-31"})
    response = admin_client.post(url, overlapping)
    assert response.status_code == 200
    assert "overlaps season" in response.content.decode().replace("&#x27;", "'")
    assert not Program.objects.exists()
    response = admin_client.post(url, _program_post(device_ownership="utility_owned"))
    assert "out of scope" in response.content.decode()
    ok = _program_post(**{"seasons-TOTAL_FORMS": "1", "seasons-0-name": "Summer 2026",
                          "seasons-0-start_date": "2026-06-01", "seasons-0-end_date": "2026-09-30"})
    response = admin_client.post(url, ok)
    assert response.status_code == 302, response.content.decode()[:3000]
    program = Program.objects.get(code="admin-made")
    assert program.status == "draft" and program.seasons.get().end_date == dt.date(2026, 9, 30)
    assert AuditEntry.objects.filter(action="create", object_id=str(program.pk)).exists()
