"""``POST /api/v1/events/{id}/reserve/`` runs the reservation as the user who asked (issue 13: every state change
audited with who did it; one write path).

The action checked the user's capability, then queued the reservation task, which ran ``event_reserve`` as the
task's system actor: the run's audit entry (and every participation released or reserved again by it) named
``system:celery:events.reserve``, and the program administrator who asked for it appeared nowhere. The task now
runs the service as the requesting user (whom the service checks again); the tick and scheduling still run as the
system actor."""

import pytest

from cpm.base import roles
from cpm.models import AuditEntry
from events.models import Event
from tests.factories.enrollments import staff_user

from .test_api import JULY_NOW, frozen_clock, participant, scheduled_event  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_reservation_asked_through_the_api_is_audited_as_the_user(api_client, program,
                                                                     django_capture_on_commit_callbacks):
    participant(program)
    event = scheduled_event(program)
    user = staff_user(roles.PROGRAM_ADMIN)
    api_client.force_authenticate(user)
    before = set(AuditEntry.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/v1/events/{event.pk}/reserve/")
    assert response.status_code == 202
    run = AuditEntry.objects.exclude(pk__in=before).filter(object_type="events.event", object_id=str(event.pk),
                                                           reason="reservation")
    assert [(e.actor_id, e.actor_label) for e in run] == [(user.pk, user.get_username())]
    assert Event.objects.get(pk=event.pk).reserved_at is not None
