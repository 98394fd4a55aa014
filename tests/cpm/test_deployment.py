"""Deployment guards (issue 15): no public default key in production; lockout per user name and IP pair."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check(env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "PRODUCTION", "DEBUG", "ALLOWED_HOSTS"}}
    env.update(env_extra)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_production_refuses_to_start_on_the_development_key():
    result = _check({"PRODUCTION": "true"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set to a long random value of your own" in result.stderr


def test_a_public_host_name_without_a_key_refuses_to_start():
    result = _check({"ALLOWED_HOSTS": "cpm.example-utility.com"})
    assert result.returncode != 0
    assert "ALLOWED_HOSTS=cpm.example-utility.com" in result.stderr


def test_a_short_key_is_refused_and_a_real_one_starts():
    assert _check({"PRODUCTION": "true", "SECRET_KEY": "short"}).returncode != 0
    ok = _check({"PRODUCTION": "true", "SECRET_KEY": "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
                 "ALLOWED_HOSTS": "cpm.example-utility.com"})
    assert ok.returncode == 0, ok.stderr


def test_the_embedded_default_still_starts_without_a_key():
    result = _check({})
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_lockout_is_per_user_name_and_address_pair(client, django_user_model, settings):
    """Five failures at one account lock that account from that address; another user behind the same address
    (one proxy, one office) still signs in."""
    settings.AXES_ENABLED = True
    django_user_model.objects.create_user("victim", password="right-password-123", is_staff=True)
    django_user_model.objects.create_user("colleague", password="right-password-456", is_staff=True)
    for _ in range(5):
        client.post("/accounts/login/", {"username": "victim", "password": "wrong"})
    assert client.post("/accounts/login/", {"username": "victim", "password": "right-password-123"}).status_code \
        == 429
    other = client.post("/accounts/login/", {"username": "colleague", "password": "right-password-456"})
    assert other.status_code == 302
