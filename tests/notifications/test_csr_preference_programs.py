"""The CSR page's contact-preference form lists each of the customer's programs once. It listed one option per
enrollment: a customer with two service points in Cool Rewards (or enrolled again after one ended) showed "Cool
Rewards" twice."""

import re

import pytest
from django.contrib.auth.models import Group

from cpm.base import roles
from tests.factories.enrollments import active_participant

from .conftest import participant

pytestmark = pytest.mark.django_db


def test_each_program_once_in_the_preference_form(client, django_user_model, program):
    ana = participant(program, first="Ana", last="Lopez", email="ana@example.com")
    active_participant(program=program, account=ana.enrollment.account)  # a second service point, same program
    customer = ana.enrollment.account.customer
    assert customer.accounts.get().enrollments.filter(program=program).count() == 2
    user = django_user_model.objects.create_user("csr", password="pw-123-long-enough")
    user.groups.add(Group.objects.get(name=roles.CSR))
    client.force_login(user)
    page = client.get(f"/csr/customers/{customer.pk}/").content.decode()
    form = page[page.index('id="contact-preference"'):]
    form = form[:form.index("</form>")]
    options = re.findall(r'<option value="(\d*)">([^<]*)</option>', form[form.index('name="program"'):])
    assert options == [("", "every program"), (str(program.pk), "Cool Rewards")]
