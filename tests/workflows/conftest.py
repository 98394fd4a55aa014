import re

import pytest
from django.contrib.auth.models import Group


@pytest.fixture
def role_client(client, django_user_model):
    """``role_client(role)``: the test client logged in as a staff user of that role."""

    def login(role: str):
        user = django_user_model.objects.create_user(re.sub(r"\W+", "-", f"w-{role}").lower(), password="x" * 12,
                                                     is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return login
