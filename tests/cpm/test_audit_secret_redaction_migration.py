"""Migration cpm 0008: the webhook secrets recorded in plain text by aggregator audit entries written before the
audit redacted them are replaced by whether one is set; who, when and the other values stay."""

import datetime as dt
import importlib

import pytest
from django.apps import apps

from cpm.models import AuditEntry

migration = importlib.import_module("cpm.migrations.0008_redact_audit_secrets")
AT = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def _entry(object_type: str, changes: dict, object_id: str = "1") -> AuditEntry:
    return AuditEntry.objects.create(at=AT, actor_label="admin", action="update", object_type=object_type,
                                     object_id=object_id, changes=changes)


@pytest.mark.django_db
def test_old_aggregator_entries_lose_the_secret_and_keep_the_rest():
    created = _entry("devices.aggregator", {"code": "ecobee", "webhook_secret": "whsec-9f3c2b7e41d0a6"})
    changed = _entry("devices.aggregator", {"webhook_secret": ["whsec-old", "whsec-new"], "name": ["A", "B"]})
    first_set = _entry("devices.aggregator", {"webhook_secret": ["", "whsec-new"]})
    other = _entry("enrollments.customer", {"email": "a@example.com"}, object_id="7")

    migration.redact_secrets(apps, None)

    created.refresh_from_db(), changed.refresh_from_db(), first_set.refresh_from_db(), other.refresh_from_db()
    assert created.changes == {"code": "ecobee", "webhook_secret": "(set)"}
    assert changed.changes == {"webhook_secret": ["(set)", "(changed)"], "name": ["A", "B"]}
    assert first_set.changes == {"webhook_secret": ["", "(set)"]}
    assert other.changes == {"email": "a@example.com"}
    assert created.at == AT and created.actor_label == "admin"
    assert not AuditEntry.objects.filter(changes__icontains="whsec").exists()

    migration.redact_secrets(apps, None)  # again: nothing changes
    changed.refresh_from_db()
    assert changed.changes == {"webhook_secret": ["(set)", "(changed)"], "name": ["A", "B"]}
