"""Admin pages of the programs app render, with constant queries on the program changelist; status actions."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cpm.models import AuditEntry
from programs import services
from programs.models import IntervalPriceSet, MutualExclusion, ParticipationRule, Program
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
            "time_zone": "America/Chicago", "eligible_device_types": ["thermostat"],
            "eligible_customer_classes": ["residential"],
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


# --- writes through the services (issue 13) ------------------------------------------------------------------------

def _form_values(instance, fields, prefix=""):
    """POST values of a model form showing ``instance``'s ``fields`` (booleans as checkboxes)."""
    import json

    from django.forms.models import model_to_dict

    data = {}
    for name, value in model_to_dict(instance, fields=fields).items():
        if value is False:
            continue
        if value is None:
            value = ""
        elif value is True:
            value = "on"
        elif isinstance(value, list) and name.startswith("eligible_"):  # ticked values (issue 17), not JSON
            data[f"{prefix}{name}"] = value
            continue
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        data[f"{prefix}{name}"] = str(value)
    return data


def _rule_values(prefix="", **changes):
    return _form_values(ParticipationRuleFactory.build(**{"effective_from": dt.date(2026, 8, 1), **changes}),
                        services.RULE_FIELDS, prefix)


def _empty_inlines():
    data = {}
    for prefix in ("seasons", "participation_rules", "incentive_rules", "questions"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return data


def test_rule_cannot_be_added_to_a_closed_program_through_the_admin(admin_client):
    """The bug of issue 13: a participation rule was added to a closed program with no audit entry. The inline and
    the rule's own page both go through participation_rule_create, which refuses: its message, nothing saved."""
    closed = ProgramFactory(code="gone", status="closed")
    url = reverse("admin:programs_program_change", args=[closed.pk])
    data = {**_empty_inlines(), "participation_rules-TOTAL_FORMS": "1",
            **_rule_values("participation_rules-0-"), "_save": "Save"}
    response = admin_client.post(url, data, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert "Program gone is closed; its definition can no longer change." in messages
    assert not ParticipationRule.objects.exists()
    assert not AuditEntry.objects.filter(object_type="programs.participationrule").exists()
    response = admin_client.post(reverse("admin:programs_participationrule_add"),
                                 {"program": closed.pk, **_rule_values(), "_save": "Save"}, follow=True)
    assert "Program gone is closed; its definition can no longer change." in [
        str(m) for m in response.context["messages"]]
    assert not ParticipationRule.objects.exists()
    assert not AuditEntry.objects.filter(object_type="programs.participationrule").exists()


def test_rule_added_to_a_draft_program_through_the_admin_is_audited(admin_client, admin_user):
    draft = ProgramFactory(code="new", status="draft")
    url = reverse("admin:programs_program_change", args=[draft.pk])
    data = {**_form_values(draft, services.PROGRAM_FIELDS), **_empty_inlines(),
            "participation_rules-TOTAL_FORMS": "1", **_rule_values("participation_rules-0-"), "_save": "Save"}
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    rule = ParticipationRule.objects.get(program=draft)
    entry = AuditEntry.objects.get(object_type="programs.participationrule", object_id=str(rule.pk))
    assert (entry.code, entry.actor, entry.changes["program"]) == ("participation_rule.created", admin_user, "new")
    # Its own page goes through the same service.
    response = admin_client.post(reverse("admin:programs_participationrule_add"),
                                 {"program": draft.pk, **_rule_values(effective_from=dt.date(2026, 9, 1)),
                                  "_save": "Save"})
    assert response.status_code == 302
    second = ParticipationRule.objects.get(program=draft, effective_from=dt.date(2026, 9, 1))
    assert AuditEntry.objects.filter(code="participation_rule.created", object_id=str(second.pk),
                                     actor=admin_user).exists()


def test_program_writes_and_actions_need_the_capability(client):
    from cpm.base import roles
    from tests.factories.enrollments import staff_user

    program = full_program(code="live")
    csr = staff_user(roles.CSR)
    client.force_login(csr)
    changelist = reverse("admin:programs_program_changelist")
    body = client.get(changelist).content.decode()
    assert "action_suspend" not in body
    client.post(changelist, {"action": "action_suspend", "_selected_action": [program.pk]})
    assert Program.objects.get(pk=program.pk).status == "active"
    assert client.get(reverse("admin:programs_program_add")).status_code == 403
    page = client.get(reverse("admin:programs_program_change", args=[program.pk])).content.decode()
    assert 'name="name"' not in page  # view only
    response = client.post(reverse("admin:programs_participationrule_add"),
                           {"program": program.pk, **_rule_values(), "_save": "Save"})
    assert response.status_code == 403
    assert program.participation_rules.count() == 1
    client.force_login(staff_user(roles.PROGRAM_ADMIN, "pa"))
    assert "action_suspend" in client.get(changelist).content.decode()
    client.post(changelist, {"action": "action_suspend", "_selected_action": [program.pk]})
    assert Program.objects.get(pk=program.pk).status == "suspended"
