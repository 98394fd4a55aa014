"""A role reaches, in the admin, the objects its capabilities act on (QA guard).

The program administrator holds ``manage_events`` (retry a failed message, mark a bounce) and ``manage_programs``
(issue OpenADR 3 client credentials), and the README sends them to the admin for both; the staff roles read every
app, the notifications and the VTN included. Contact details stay masked without ``view_personal_data`` and a
webhook's bearer token is never shown.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.notifications.choices import MessageStatus
from cpm.notifications.models import Message

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 15, 20, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def staff(django_user_model, role):
    user = django_user_model.objects.create_user(f"u-{role}".replace(" ", "-").lower(), is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def failed_message():
    from tests.factories.enrollments import active_participant
    from tests.factories.events import EventFactory
    from tests.factories.programs import ProgramFactory

    sub = active_participant(program=ProgramFactory())
    customer = sub.enrollment.account.customer
    return Message.objects.create(
        key="t-1", kind="event_notice", channel="email", status=MessageStatus.FAILED, customer=customer,
        program=sub.enrollment.program, event=EventFactory(program=sub.enrollment.program),
        recipient="pat.jones@example.com", due_at=NOW, created_at=NOW, updated_at=NOW, detail="smtp 451")


def test_program_administrator_retries_a_failed_message_in_the_admin(client, django_user_model):
    message = failed_message()
    client.force_login(staff(django_user_model, roles.PROGRAM_ADMIN))
    page = client.get("/admin/notifications/message/")
    assert page.status_code == 200
    assert "retry" in {c[0] for c in page.context["action_form"].fields["action"].choices}
    client.post("/admin/notifications/message/", {"action": "retry", "_selected_action": [message.pk]})
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED
    assert "pat.jones@example.com" in client.get(f"/admin/notifications/message/{message.pk}/change/").content.decode()


def test_program_administrator_issues_openadr_credentials_in_the_admin(client, django_user_model):
    from oauth2_provider.models import Application

    from tests.factories.devices import AggregatorFactory

    agg = AggregatorFactory(code="agg-x", api_user=django_user_model.objects.create_user("agg-api"))
    client.force_login(staff(django_user_model, roles.PROGRAM_ADMIN))
    assert client.get("/admin/openadr3/vencredentials/").status_code == 200
    client.post("/admin/openadr3/vencredentials/", {"action": "issue_credentials", "_selected_action": [agg.pk]})
    assert Application.objects.filter(user=agg.api_user).exists()


@pytest.mark.parametrize("role", [roles.AUDITOR, roles.SETTLEMENT_ANALYST])
def test_staff_roles_read_messages_with_the_recipient_masked(client, django_user_model, role):
    message = failed_message()
    client.force_login(staff(django_user_model, role))
    assert client.get("/admin/notifications/message/").status_code == 200
    html = client.get(f"/admin/notifications/message/{message.pk}/change/").content.decode()
    assert "pat.jones@example.com" not in html, [ln for ln in html.splitlines() if "pat.jones" in ln]
    assert "p********@example.com" in html
    listing = client.get("/admin/notifications/message/")
    assert {c[0] for c in listing.context["action_form"].fields["action"].choices if c[0]} == {"export_csv"}
    client.post("/admin/notifications/message/", {"action": "retry", "_selected_action": [message.pk]})
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED


def test_no_admin_page_shows_a_webhook_bearer_token(client, django_user_model):
    from cpm.openadr3.models import Notification, Subscription

    sub = Subscription.objects.create(
        client_id="c1", client_name="bl", object_operations=[{"objects": ["EVENT"], "operations": ["POST"],
                                                              "callbackUrl": "https://x.example/cb",
                                                              "bearerToken": "s3cret-token-value"}],
        created_at=NOW, updated_at=NOW)
    note = Notification.objects.create(subscription=sub, callback_url="https://x.example/cb",
                                       bearer_token="s3cret-token-value", object_type="EVENT", operation="POST",
                                       object_id="1", body="{}", created_at=NOW)
    for user in (staff(django_user_model, roles.AUDITOR),
                 django_user_model.objects.create_superuser("root", password="x" * 12)):
        client.force_login(user)
        for page in (f"/admin/openadr3/subscription/{sub.pk}/change/",
                     f"/admin/openadr3/notification/{note.pk}/change/"):
            response = client.get(page)
            assert response.status_code == 200, page
            assert "s3cret-token-value" not in response.content.decode(), page
