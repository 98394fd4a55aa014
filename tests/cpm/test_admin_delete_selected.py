"""The admin's "Delete selected" on a guarded domain model: each object goes through its delete service, and the page
says what really happened.

A program administrator selects a draft program and an active one and confirms "Delete selected programs": the draft
is deleted, the active one is refused by ``program_delete`` ("only draft programs can be deleted"). The page said
"Successfully deleted 2 programs." and Django's admin log ("Recent actions") recorded both as deleted, while the
active program was still there: a second trail contradicting the audit trail.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.models import AuditEntry
from programs.choices import ProgramStatus
from programs.models import Program
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def program_admin(django_user_model):
    user = django_user_model.objects.create_user("pa-delete", password="x" * 12, is_staff=True)
    user.groups.add(Group.objects.get(name=roles.PROGRAM_ADMIN))
    return user


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_delete_selected_reports_only_what_the_service_deleted(client, program_admin):
    draft = ProgramFactory(code="draft-1", status=ProgramStatus.DRAFT)
    active = ProgramFactory(code="active-1", status=ProgramStatus.ACTIVE)
    client.force_login(program_admin)
    url = "/admin/programs/program/"
    confirm = client.post(url, {"action": "delete_selected", "_selected_action": [draft.pk, active.pk]})
    assert confirm.status_code == 200  # the confirmation page

    response = client.post(url, {"action": "delete_selected", "_selected_action": [draft.pk, active.pk],
                                 "post": "yes"}, follow=True)

    assert response.status_code == 200
    messages = _messages(response)
    assert "Program active-1 is active; only draft programs can be deleted (close it instead)." in " ".join(messages)
    assert "Successfully deleted 1 program." in messages
    assert "Successfully deleted 2 programs." not in messages
    assert list(Program.objects.values_list("code", flat=True)) == ["active-1"]
    # Django's admin log agrees with the audit trail: one deletion, the draft's.
    deletions = LogEntry.objects.filter(action_flag=DELETION)
    assert [(e.object_id, e.object_repr) for e in deletions] == [(str(draft.pk), str(draft))]
    assert list(AuditEntry.objects.filter(code="program.deleted").values_list("object_id", flat=True)) == [
        str(draft.pk)]


def test_delete_selected_refused_for_every_object_says_nothing_was_deleted(client, program_admin):
    active = ProgramFactory(code="active-2", status=ProgramStatus.ACTIVE)
    client.force_login(program_admin)
    response = client.post("/admin/programs/program/", {"action": "delete_selected", "_selected_action": [active.pk],
                                                         "post": "yes"}, follow=True)
    messages = _messages(response)
    assert not any(m.startswith("Successfully deleted") for m in messages), messages
    assert Program.objects.filter(pk=active.pk).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()
