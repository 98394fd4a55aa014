"""Every role against every sensitive action: allowed (with the status the action answers) or refused (403).

Roles are the groups of ``cpm/roles.py``; users are plain members of one group (no superuser).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from cpm.base import roles
from enrollments.choices import EnrollmentStatus
from programs.choices import ProgramStatus
from tests.factories.enrollments import EnrollmentFactory, active_participant
from tests.factories.events import EventFactory
from tests.factories.programs import ProgramFactory
from tests.factories.settlement import EventSettlementFactory, ParticipationFactory

pytestmark = pytest.mark.django_db

ALL_ROLES = [roles.PROGRAM_ADMIN, roles.CSR, roles.SETTLEMENT_ANALYST, roles.AUDITOR, roles.CIS_INTEGRATION,
             roles.BILLING_INTEGRATION, roles.AGGREGATOR]


@pytest.fixture
def world():
    program = ProgramFactory(status=ProgramStatus.ACTIVE)
    pending = EnrollmentFactory(program=program, status=EnrollmentStatus.PENDING_APPROVAL)
    event = EventFactory(program=program, start=dt.datetime(2026, 7, 15, 22, tzinfo=dt.UTC))
    settlement = EventSettlementFactory(participation=ParticipationFactory(
        event=event, subscription=active_participant(program=program)))
    return {"program": program, "pending": pending, "settlement": settlement}


# action: (method, url template, body, {role: status when allowed}); every other role must get 403.
ACTIONS = {
    "suspend program": ("post", "/api/v1/programs/{program}/suspend/", {"reason": "storm"},
                        {roles.PROGRAM_ADMIN: 200}),
    "approve enrollment": ("post", "/api/v1/enrollments/{pending}/approve/", {"reason": "ok"},
                           {roles.PROGRAM_ADMIN: 200}),
    "approve event settlement": ("post", "/api/v1/event-settlements/{settlement}/approve/", {},
                                 {roles.SETTLEMENT_ANALYST: 200}),
    "create bill-credit export": ("post", "/api/v1/bill-credit-exports/", {},
                                  {roles.SETTLEMENT_ANALYST: 204}),
    "list bill-credit exports": ("get", "/api/v1/bill-credit-exports/", None,
                                 {roles.SETTLEMENT_ANALYST: 200, roles.BILLING_INTEGRATION: 200, roles.AUDITOR: 200,
                                  roles.CSR: 200, roles.PROGRAM_ADMIN: 200}),
    "list customers (personal data)": ("get", "/api/v1/customers/", None,
                                       {roles.PROGRAM_ADMIN: 200, roles.CSR: 200, roles.SETTLEMENT_ANALYST: 200,
                                        roles.AUDITOR: 200, roles.CIS_INTEGRATION: 200}),
    "create event": ("post", "/api/v1/events/", {}, {roles.PROGRAM_ADMIN: 400}),
    "CSR customer search page": ("get", "/csr/?q=Doe", None, {roles.PROGRAM_ADMIN: 200, roles.CSR: 200}),
}


def _client(django_user_model, role: str) -> APIClient:
    user = django_user_model.objects.create_user(f"user-{role}".replace(" ", "-").lower(), password="x" * 12)
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_authenticate(user)
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ALL_ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_role_against_sensitive_action(django_user_model, world, role, action):
    method, url, body, allowed = ACTIONS[action]
    url = url.format(**{k: v.pk for k, v in world.items()})
    client = _client(django_user_model, role)
    response = getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)
    expected = allowed.get(role, 403)
    assert response.status_code == expected, (action, role, response.status_code, getattr(response, "data", None))


def test_opt_out_api_by_role_and_aggregator_sees_only_its_own(django_user_model, world):
    import datetime as dt

    from django.utils import timezone

    from devices.models import Aggregator
    from events.choices import EventStatus
    from tests.factories.events import EventFactory as UpcomingEventFactory
    from tests.factories.events import ParticipationFactory as UpcomingParticipationFactory

    program = world["program"]
    start = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=0)
    event = UpcomingEventFactory(program=program, start=start, end=start + dt.timedelta(hours=2),
                                 notification_at=start - dt.timedelta(hours=1), status=EventStatus.SCHEDULED)
    mine = UpcomingParticipationFactory(event=event, subscription=active_participant(program=program))
    theirs = UpcomingParticipationFactory(event=event, subscription=active_participant(program=program))
    agg_client = _client(django_user_model, roles.AGGREGATOR)
    aggregator = Aggregator.objects.get(pk=mine.device.aggregator_id)
    aggregator.api_user = django_user_model.objects.get(username="user-aggregator")
    aggregator.save()

    listed = {p["id"] for p in agg_client.get("/api/v1/participations/").json()["results"]}
    assert mine.pk in listed and theirs.pk not in listed
    assert agg_client.post(f"/api/v1/participations/{theirs.pk}/opt-out/", {"channel": "aggregator_api"},
                           format="json").status_code == 404
    assert agg_client.post(f"/api/v1/participations/{mine.pk}/opt-out/", {"channel": "aggregator_api"},
                           format="json").status_code == 201
    analyst = _client(django_user_model, roles.SETTLEMENT_ANALYST)
    assert analyst.post(f"/api/v1/participations/{theirs.pk}/opt-out/", {"channel": "portal"},
                        format="json").status_code == 403
    csr = _client(django_user_model, roles.CSR)
    assert csr.post(f"/api/v1/participations/{theirs.pk}/opt-out/", {"channel": "csr"},
                    format="json").status_code == 201


@pytest.mark.parametrize(("role", "staff", "lands_on", "status"), [
    (roles.CSR, True, "/csr/", 200),
    (roles.PROGRAM_ADMIN, True, "/csr/", 200),
    (roles.SETTLEMENT_ANALYST, True, "/dashboard/", 200),
    (roles.AUDITOR, True, "/dashboard/", 200),
    (None, True, "/admin/", 200),  # staff with no role: the admin (which shows them nothing to change)
    (None, False, "/csr/", 403),  # no role at all: the page saying where each role works
])
def test_signing_in_lands_each_role_on_the_page_it_works_in(client, django_user_model, role, staff, lands_on, status):
    """After signing in at /accounts/login/ (and at /), a settlement analyst and an auditor land on the dashboard,
    not on the CSR page their role does not include (a 403 first thing after signing in)."""
    user = django_user_model.objects.create_user("someone", password="pw-123-long-enough", is_staff=staff)
    if role:
        user.groups.add(Group.objects.get(name=role))
    response = client.post("/accounts/login/", {"username": "someone", "password": "pw-123-long-enough"},
                           follow=True)
    assert response.redirect_chain[-1][0] == lands_on
    assert response.status_code == status
    assert client.get("/")["Location"] == lands_on
