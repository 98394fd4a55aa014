"""``cpm.base.audit.audit_write`` (the audit entries of a bulk change written as rows) writes what ``audit_entries``
(model instances) holds, entry for entry, for a system actor and for a user."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model

from cpm.base.audit import audit_entries, audit_write
from cpm.models import AuditEntry
from settlement.models import CustomerSettlement
from tests.actors import TEST_ACTOR

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC)
FIELDS = ["at", "actor_id", "actor_label", "action", "code", "object_type", "object_id", "object_repr",
          "from_status", "to_status", "reason", "changes"]


def _written() -> list[tuple]:
    return list(AuditEntry.objects.order_by("object_id", "id").values_list(*FIELDS))


@pytest.mark.parametrize("who", ["system", "user"])
def test_audit_write_writes_what_audit_entries_holds(who):
    actor = TEST_ACTOR if who == "system" else get_user_model().objects.create_user("analyst-1")
    rows = [(11, "pending", "calculated", "season_end 2026-06-01..2026-10-01: $24.00"),
            (12, "pending", "calculated", "tab\there \\ and 'quotes'"),
            (13, "", "", "recalculated: $0.00")]
    for action, code in [("status_change", ""), ("update", "customer_settlement.recalculated")]:
        AuditEntry.objects.all().delete()
        AuditEntry.objects.bulk_create(audit_entries(model=CustomerSettlement, rows=rows, now=NOW, actor=actor,
                                                     action=action, code=code))
        expected = _written()
        AuditEntry.objects.all().delete()
        assert audit_write(model=CustomerSettlement, rows=rows, now=NOW, actor=actor, action=action, code=code) == 3
        assert _written() == expected
        assert [e[4] for e in expected] == ([f"customer_settlement.{to or 'status_change'}" for _, _, to, _ in rows]
                                            if not code else [code] * 3)
