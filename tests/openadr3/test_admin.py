"""The admin issues VEN client credentials per aggregator (secret shown once) and sets a program's OpenADR 3
randomized start through the services."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def test_the_admin_issues_client_credentials_for_an_aggregator(client, admin_user, django_user_model):
    from oauth2_provider.models import Application

    from cpm.models import AuditEntry
    from tests.factories.devices import AggregatorFactory

    user = django_user_model.objects.create_user("agg-api")
    agg = AggregatorFactory(code="agg-x", api_user=user)
    client.force_login(admin_user)
    page = client.get("/admin/openadr3/vencredentials/")
    assert page.status_code == 200 and b"agg-x" in page.content and b"not registered" in page.content
    response = client.post("/admin/openadr3/vencredentials/", {"action": "issue_credentials",
                                                               "_selected_action": [agg.pk]}, follow=True)
    app = Application.objects.get(user=user)
    text = response.content.decode()
    assert f"client id {app.client_id}, client secret " in text
    assert app.authorization_grant_type == "client-credentials"
    assert AuditEntry.objects.filter(object_id=str(agg.pk), reason="OpenADR 3 client credentials issued").exists()


def test_the_admin_sets_a_randomized_start(client, admin_user):
    from cpm.openadr3.models import ProgramSettings
    from tests.factories.programs import ProgramFactory

    program = ProgramFactory()
    client.force_login(admin_user)
    response = client.post("/admin/openadr3/programsettings/add/", {"program": program.pk,
                                                                    "randomize_start_seconds": 300})
    assert response.status_code == 302, response.content[:500]
    assert ProgramSettings.objects.get(program=program).randomize_start_seconds == 300


def test_an_id_beyond_the_databases_integers_is_not_found_never_a_500(client, admin_user):
    """An OpenADR event's id is its cpm event's (a one-to-one primary key): Django checks the range of an integer
    key, not of a related one, and SQLite raised OverflowError (HTTP 500) for /admin/openadr3/oadrevent/<20
    digits>/change/. Every change page of an integer key answers it as not found."""
    client.force_login(admin_user)
    client.raise_request_exception = False
    for model in ("openadr3/oadrevent", "events/event", "openadr3/report"):
        response = client.get(f"/admin/{model}/99999999999999999999/change/", follow=True)
        assert response.status_code == 200, model  # Django's "does not exist" redirect to the list
        assert "doesn’t exist" in response.content.decode(), model
