"""Ids typed with digits that are not ASCII (superscript '²', '³': ``str.isdigit`` says yes, ``int`` refuses them)
were taken for ids and then raised ``ValueError``: HTTP 500 in the OpenADR VTN and the CSR page, a kW-drop load
failed as a whole, an API natural key refused with "invalid literal for int()". Each is now the door's usual
answer (QA, issue 15)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from cpm.base.naturalkeys import lookup
from cpm.base.numbers import ascii_digits
from enrollments.models import Account
from settlement.meterdata.kwdrop import kw_drop_file_load
from settlement.models import MeterDataLoad
from tests.actors import TEST_ACTOR
from tests.factories.enrollments import active_participant
from tests.factories.programs import ProgramFactory

pytestmark = pytest.mark.django_db
SUPERSCRIPT_TWO = "\u00b2"


def test_ascii_digits():
    assert [ascii_digits(t) for t in ("12", "0", "", SUPERSCRIPT_TWO, "1" + SUPERSCRIPT_TWO, "\u0661", " 1", "-1")] \
        == [True, True, False, False, False, False, False, False]


def test_csr_enroll_with_a_superscript_id_is_404(client, django_user_model):
    user = django_user_model.objects.create_user("csr", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    sub = active_participant(program=ProgramFactory())
    customer = sub.enrollment.account.customer
    response = client.post(f"/csr/customers/{customer.pk}/enroll/", {
        "account": SUPERSCRIPT_TWO, "program": str(sub.enrollment.program_id),
        "service_point": str(sub.enrollment.service_point_id), "devices": [SUPERSCRIPT_TWO]})
    assert response.status_code == 404


def test_natural_key_in_superscript_digits_names_no_row():
    with pytest.raises(ValueError) as exc:
        lookup(Account.objects.all(), SUPERSCRIPT_TWO, ("account_number",))
    assert str(exc.value) == f"No account has account number or id {SUPERSCRIPT_TWO!r}."


def test_kw_drop_record_with_superscript_digits_is_a_row_error(settings, tmp_path, now):
    settings.MEDIA_ROOT = tmp_path
    header = ("EventId,ProgramId,SPId,ActualStartTime,ActualEndTime,IntervalSize(Seconds),MaxKwDrop,KwDrop1\n")
    content = header + (f"{SUPERSCRIPT_TWO},P-1,SP-1,2026-07-15T14:00:00Z,2026-07-15T15:00:00Z,3600,,1\n"
                        f"7,P-1,SP-1,2026-07-15T14:00:00Z,2026-07-15T15:00:00Z,{SUPERSCRIPT_TWO},,1\n")
    load = kw_drop_file_load(content=content.encode(), now=now, file_name="k.csv", actor=TEST_ACTOR)
    assert load.status == MeterDataLoad.Status.COMPLETED_WITH_ERRORS, load.errors
    fields = {(e["row"], e["field"]) for e in load.errors}
    assert (3, "IntervalSize(Seconds)") in fields
    assert {row for row, _ in fields} == {2, 3}


def test_csr_enroll_with_a_device_id_beyond_a_bigint_is_no_server_error(client, django_user_model):
    """A device id of 20 digits reached ``pk__in`` (OverflowError on SQLite: HTTP 500); it names no device: the
    form is answered as for any unknown device (a redirect to the customer page with the outcome in words)."""
    user = django_user_model.objects.create_user("csr", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    sub = active_participant(program=ProgramFactory())
    enrollment = sub.enrollment
    customer = enrollment.account.customer
    response = client.post(f"/csr/customers/{customer.pk}/enroll/", {
        "account": str(enrollment.account_id), "program": str(ProgramFactory().pk),
        "service_point": str(enrollment.service_point_id), "devices": ["99999999999999999999"]})
    assert response.status_code == 302
    assert response["Location"].startswith(f"/csr/customers/{customer.pk}/")
