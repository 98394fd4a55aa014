import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_clean_with_production_values():
    env = {
        "PATH": "/usr/bin:/bin",
        "SECRET_KEY": "x" * 64 + "production-secret-value-with-enough-entropy",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "cpm.example.com",
        "DATABASE_URL": "sqlite:///" + str(ROOT / "var" / "deploy-check.sqlite3"),
    }
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "System check identified no issues" in out.stdout


@pytest.mark.django_db
def test_openapi_schema_generates_without_warnings(capsys):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(ROOT / "var" / "schema.yml"))
    schema = (ROOT / "var" / "schema.yml").read_text()
    assert schema.startswith("openapi: 3")


@pytest.mark.django_db
def test_api_root_lists_every_app(admin_api):
    root = admin_api.get("/api/v1/").json()
    for name in ("programs", "service-points", "devices", "customers", "enrollments", "events", "participations",
                 "meter-data-loads", "event-settlements", "bill-credit-exports"):
        assert name in root, name
