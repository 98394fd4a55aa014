"""A program's sending rules that make no sense are refused with the field named: an opt-out link that works for
0 hours (every link refused as expired, and the notice promised "until" the instant it was sent), a reminder or a
notice 0 minutes before the start (the reminder was planned for every customer and never sent: "the event has
started")."""

import datetime as dt

import pytest

from cpm.base.errors import DomainValidationError
from cpm.notifications import services
from cpm.notifications.models import NotificationPolicy
from tests.actors import TEST_ACTOR

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("field", "message"), [
    ("opt_out_link_hours", "An opt-out link must work for at least 1 hour."),
    ("reminder_lead_minutes", "A reminder 0 minutes before the start is never sent: leave it empty for no "
                              "reminder."),
    ("notice_lead_minutes", "A notice 0 minutes before the start comes too late: leave it empty to send it at the "
                            "event's notification time."),
])
def test_zero_is_refused_with_the_field_named(program, field, message):
    with pytest.raises(DomainValidationError) as refused:
        services.notification_policy_save(policy=NotificationPolicy(program=program, **{field: 0}), now=NOW,
                                          actor=TEST_ACTOR)
    assert refused.value.errors == {field: [message]}
    assert not NotificationPolicy.objects.exists()


def test_the_admin_form_says_which_field(admin_client, program):
    response = admin_client.post("/admin/notifications/notificationpolicy/add/", {
        "program": program.pk, "notice_lead_minutes": "", "reminder_lead_minutes": "60", "urgent_lead_minutes": "30",
        "quiet_start": "21:00", "quiet_end": "08:00", "weekly_cap": "5", "opt_out_link_hours": "0"}, follow=True)
    assert "An opt-out link must work for at least 1 hour." in response.content.decode()
    assert not NotificationPolicy.objects.exists()
    ok = admin_client.post("/admin/notifications/notificationpolicy/add/", {
        "program": program.pk, "notice_lead_minutes": "", "reminder_lead_minutes": "", "urgent_lead_minutes": "30",
        "quiet_start": "21:00", "quiet_end": "08:00", "weekly_cap": "5", "opt_out_link_hours": "48"})
    assert ok.status_code == 302
    assert NotificationPolicy.objects.get().opt_out_link_hours == 48
