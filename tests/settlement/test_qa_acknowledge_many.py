"""Acknowledging several bill-credit exports in the admin at once (issue 13, QA: bulk actions).

Before: the action acknowledged the selection in a loop and stopped at the first refusal: with a rejected batch
and a sent one selected, the page read only the refusal (without naming the batch) while the other batch was
acknowledged or not depending on the order; and a batch acknowledged earlier was counted again ("2 export(s)
acknowledged." for one). Each batch is now acknowledged on its own: a refused one is named with its reason, the
others go on, and the message counts the batches acknowledged by this action.
"""

from __future__ import annotations

import datetime as dt

import pytest

from cpm.models import AuditEntry
from settlement import services
from settlement.choices import ExportStatus
from tests.settlement import test_export

pytestmark = pytest.mark.django_db
NOW = test_export.NOW
approved_july = test_export.approved_july


@pytest.fixture(autouse=True)
def _http(settings):
    settings.SECURE_SSL_REDIRECT = False


def _two_batches(admin_user):
    first = services.bill_credit_export_create(now=NOW, actor=admin_user)
    services.bill_credit_export_reject(export=first, reason="account unknown to billing", now=NOW, actor=admin_user)
    second = services.bill_credit_export_create(now=NOW + dt.timedelta(hours=1), actor=admin_user)
    return first, second


def test_a_rejected_batch_in_the_selection_is_named_and_the_others_are_acknowledged(approved_july, admin_user,
                                                                                     client):
    first, second = _two_batches(admin_user)
    client.force_login(admin_user)
    r = client.post("/admin/settlement/billcreditexport/",
                    {"action": "acknowledge", "_selected_action": [first.pk, second.pk]}, follow=True)
    text = " | ".join(str(m) for m in r.context["messages"])
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (ExportStatus.REJECTED, ExportStatus.ACKNOWLEDGED)
    assert "1 export(s) acknowledged." in text
    assert f"{first}: " in text
    assert AuditEntry.objects.filter(object_type="settlement.billcreditexport", object_id=str(second.pk),
                                     to_status=ExportStatus.ACKNOWLEDGED).count() == 1


def test_a_batch_acknowledged_before_is_not_counted_again(approved_july, admin_user, client):
    first, second = _two_batches(admin_user)
    services.bill_credit_export_acknowledge(export=second, now=NOW, actor=admin_user)
    client.force_login(admin_user)
    r = client.post("/admin/settlement/billcreditexport/",
                    {"action": "acknowledge", "_selected_action": [second.pk]}, follow=True)
    text = " | ".join(str(m) for m in r.context["messages"])
    assert "export(s) acknowledged." not in text
    assert f"{second}: already acknowledged" in text
