"""``cpm.base.bulk.reserve_ids`` on SQLite and PostgreSQL: ids taken in advance are new, increasing, never handed
out again (a row saved afterwards gets a later id), and rows can be inserted with them."""

from __future__ import annotations

import datetime as dt

import pytest

from cpm.base import bulk
from cpm.models import AuditEntry

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 10, 5, 12, tzinfo=dt.UTC)


def _entry(**kw) -> dict:
    return {"at": NOW, "actor_id": None, "actor_label": "system:tests", "action": "create", "code": "x.created",
            "object_type": "x.y", "object_id": "1", "object_repr": "", "from_status": "", "to_status": "",
            "reason": "", "changes": {}, **kw}


def test_reserved_ids_are_new_increasing_and_not_handed_out_again():
    first = AuditEntry.objects.create(**{k.removesuffix("_id") if k == "actor_id" else k: v
                                         for k, v in _entry().items()})
    ids = bulk.reserve_ids(AuditEntry, 5)
    assert len(ids) == 5 and ids == sorted(ids) and len(set(ids)) == 5 and ids[0] > first.pk
    later = AuditEntry.objects.create(**{k.removesuffix("_id") if k == "actor_id" else k: v
                                         for k, v in _entry(reason="later").items()})
    assert later.pk > ids[-1]
    assert bulk.insert_dicts(AuditEntry, [_entry(id=pk, reason=f"reserved {pk}") for pk in ids]) == 5
    assert list(AuditEntry.objects.filter(pk__in=ids).order_by("pk").values_list("reason", flat=True)) == [
        f"reserved {pk}" for pk in ids]
    assert bulk.reserve_ids(AuditEntry, 0) == []
