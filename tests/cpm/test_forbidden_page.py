"""A signed-in user whose role does not include a page gets a page that says so and where to go, with HTTP 403."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


def test_a_user_without_the_csr_role_is_told_where_to_go(client):
    user = get_user_model().objects.create_user("no-role", password="x-Long-enough-9")
    client.force_login(user)
    response = client.get("/csr/")
    assert response.status_code == 403
    text = response.content.decode()
    assert "This page is not part of your role" in text
    assert "signed in as <strong>no-role</strong>" in text
    assert 'href="/dashboard/"' in text and 'href="/admin/"' in text
