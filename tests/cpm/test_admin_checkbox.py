"""The changelist's row checkbox (``GuardedActionsMixin.action_checkbox``) is Django's HTML, written without the form
widget templates."""

import pytest
from django.contrib import admin

from cpm.base.admin import GuardedActionsMixin
from enrollments.models import Customer
from tests.factories.enrollments import CustomerFactory

pytestmark = pytest.mark.django_db


def _every_guarded_admin():
    return [ma for model, ma in admin.site._registry.items() if isinstance(ma, GuardedActionsMixin)]


def test_the_checkbox_is_djangos_html_with_markup_in_the_name():
    customer = CustomerFactory(first_name='<b>Ann & "Bo"</b>', last_name="O'Neil")
    model_admin = admin.site._registry[Customer]
    ours = model_admin.action_checkbox(customer)
    theirs = admin.ModelAdmin.action_checkbox(model_admin, customer)
    assert str(ours) == str(theirs)
    assert f'value="{customer.pk}"' in ours
    assert "&lt;b&gt;Ann &amp; &quot;Bo&quot;&lt;/b&gt; O&#x27;Neil" in ours  # escaped once, never twice


def test_every_admin_with_actions_uses_it():
    admins = _every_guarded_admin()
    assert len(admins) >= 20
    for model_admin in admins:
        assert type(model_admin).action_checkbox is GuardedActionsMixin.action_checkbox, type(model_admin)
