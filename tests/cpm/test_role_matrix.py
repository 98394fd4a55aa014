"""Role x action over both doors (issue 13): every API write route and every admin action, add, change and delete
of every registered ModelAdmin, for the seven roles plus anonymous.

The policy is written here by hand (``ROLE_CAPABILITIES``), independently of ``cpm/base/roles.py``: if a role's
grants drift from it, these tests fail. Each cell's exact outcome:

API (every POST/PUT/PATCH/DELETE route of /api/v1/):
- anonymous: 401 with ``WWW-Authenticate``; a role without the route's capability: 403, and the attempt on a real
  object changes nothing (row counts of every table and the audit trail, and the object's status);
- a role with it: the permission gate lets it through: on an object that does not exist, 404 (or 400 where the
  view validates the empty body first); on the collection with an empty body, 400 naming a field (or the route's
  own answer for body-less collection actions).

Admin (every ModelAdmin of the five apps and cpm):
- anonymous: redirected to the login page; an aggregator's user: refused by the admin site (redirected too);
- a role: the actions offered are exactly those whose use case it may run; a POST of any other action changes
  nothing; the add page answers 200 exactly when the role may run the admin's add use case, 403 otherwise; a change
  POST by a role without the change use case answers 403 and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from rest_framework.test import APIClient

from cpm.base import roles
from cpm.base.capabilities import USE_CASES, Cap
from cpm.models import AuditEntry

pytestmark = pytest.mark.django_db

C = Cap
# The policy, by hand: what each role may do (capabilities, cpm.base.capabilities.Cap).
ROLE_CAPABILITIES: dict[str, set[Cap]] = {
    roles.PROGRAM_ADMIN: {C.MANAGE_PROGRAMS, C.MAINTAIN_CUSTOMERS, C.MANAGE_DEVICES, C.REQUEST_ENROLLMENTS,
                          C.MANAGE_ENROLLMENTS, C.APPROVE_ENROLLMENTS, C.MANAGE_EVENTS, C.OPT_OUT_ON_BEHALF,
                          C.USE_CSR_PAGE, C.VIEW_PERSONAL_DATA},
    roles.CSR: {C.REQUEST_ENROLLMENTS, C.MANAGE_ENROLLMENTS, C.OPT_OUT_ON_BEHALF, C.USE_CSR_PAGE,
                C.VIEW_PERSONAL_DATA},
    roles.SETTLEMENT_ANALYST: {C.LOAD_METER_DATA, C.RUN_SETTLEMENT, C.APPROVE_SETTLEMENTS, C.EXPORT_CREDITS,
                               C.PULL_BILL_CREDITS},
    roles.AUDITOR: set(),
    roles.CIS_INTEGRATION: {C.MAINTAIN_CUSTOMERS, C.REQUEST_ENROLLMENTS, C.VIEW_PERSONAL_DATA},
    roles.BILLING_INTEGRATION: {C.PULL_BILL_CREDITS},
    roles.AGGREGATOR: {C.MANAGE_DEVICES, C.REQUEST_ENROLLMENTS, C.MANAGE_ENROLLMENTS, C.REPORT_OUTCOMES},
}
ANONYMOUS = "anonymous"
PRINCIPALS = [*ROLE_CAPABILITIES, ANONYMOUS]
DOMAIN_APPS = ("programs", "devices", "enrollments", "events", "settlement", "cpm")
MISSING_ID = 987654321


def test_policy_matches_the_roles_module():
    """The hand-written policy and the granted permissions agree (both ways)."""
    granted = {role: {Cap(p.split(".", 1)[1]) for p in patterns
                      if p.startswith("cpm.") and p.split(".", 1)[1] in {c.value for c in Cap}}
               for role, patterns in roles.ROLES.items()}
    assert granted == ROLE_CAPABILITIES


def allowed(role: str, use_case: str) -> bool:
    return role != ANONYMOUS and bool(ROLE_CAPABILITIES[role] & set(USE_CASES[use_case].capabilities))


def _user(django_user_model, role: str, *, staff: bool = False):
    user = django_user_model.objects.create_user(re.sub(r"\W+", "-", f"u-{role}").lower(), password="x" * 12,
                                                 is_staff=staff)
    user.groups.add(Group.objects.get(name=role))
    return user


def _snapshot() -> tuple:
    """Row counts of every table of the domain apps and the audit trail (what a refused attempt must not change)."""
    counts = []
    for model in apps.get_models():
        if model._meta.app_label in DOMAIN_APPS and model._meta.managed and not model._meta.proxy:
            counts.append((model._meta.label, model._default_manager.count()))
    return tuple(counts), AuditEntry.objects.count()


@pytest.fixture
def world():
    """One object of each main domain model (statuses where actions apply), for refused attempts to aim at."""
    from enrollments.choices import EnrollmentStatus
    from events.choices import EventStatus
    from programs.choices import ProgramStatus
    from tests.factories.enrollments import EnrollmentFactory, active_participant
    from tests.factories.events import EventFactory, UnavailabilityFactory
    from tests.factories.programs import (
        IncentiveRuleFactory,
        ParticipationRuleFactory,
        ProgramFactory,
        QuestionFactory,
        SeasonFactory,
    )
    from tests.factories.settlement import EventSettlementFactory, ParticipationFactory
    from tests.factories.settlement_meter import IntervalDayFactory, MeterDataLoadFactory

    program = ProgramFactory(status=ProgramStatus.ACTIVE)
    SeasonFactory(program=program)
    ParticipationRuleFactory(program=program)
    IncentiveRuleFactory(program=program)
    QuestionFactory(program=program)
    sub = active_participant(program=program)
    EnrollmentFactory(program=program, status=EnrollmentStatus.PENDING_APPROVAL)
    event = EventFactory(program=program, start=dt.datetime(2026, 7, 15, 22, tzinfo=dt.UTC),
                         status=EventStatus.SCHEDULED)
    participation = ParticipationFactory(event=event, subscription=sub)
    EventSettlementFactory(participation=participation)
    UnavailabilityFactory(enrollment=sub.enrollment, device=sub.device)
    MeterDataLoadFactory()
    IntervalDayFactory(service_point=sub.enrollment.service_point)
    return program


# ---------------------------------------------------------------------------------------------------------------- API


def _write_routes() -> list[tuple[str, str, str, type, str, bool]]:
    """(path, method, use case, view class, action, takes JSON) of every write route under /api/v1/."""
    from drf_spectacular.generators import EndpointEnumerator

    routes = []
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        if not path.startswith("/api/v1/") or method not in {"POST", "PUT", "PATCH", "DELETE"}:
            continue
        cls = getattr(callback, "cls", None)
        action = (getattr(callback, "actions", None) or {}).get(method.lower())
        use_case = getattr(cls, "use_cases", {}).get(action)
        parsers = (getattr(callback, "initkwargs", None) or {}).get("parser_classes", cls.parser_classes)
        takes_json = any(getattr(parser, "media_type", "") == "application/json" for parser in parsers)
        routes.append((path, method, use_case, cls, action, takes_json))
    return routes


WRITE_ROUTES = _write_routes()


def test_every_api_write_route_declares_a_registered_use_case():
    missing = [(p, m, a) for p, m, uc, _cls, a, _json in WRITE_ROUTES if uc not in USE_CASES]
    assert WRITE_ROUTES and not missing, missing


def _object_for(cls) -> int | None:
    """A real object of the view's model (for refused attempts), or None."""
    queryset = getattr(cls, "queryset", None)
    model = queryset.model if queryset is not None else None
    if model is None:
        return None
    obj = model._default_manager.order_by("pk").first()
    return obj.pk if obj is not None else None


def _fill(path: str, pk) -> str:
    return re.sub(r"\{[^}]+\}", str(pk), path)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_api_write_routes_by_role(django_user_model, world, principal):
    client = APIClient()
    if principal != ANONYMOUS:
        user = _user(django_user_model, principal)
        client.force_authenticate(user)
        if principal == roles.AGGREGATOR:  # an aggregator's API client is linked to its aggregator
            from devices.models import Aggregator

            Aggregator.objects.filter(pk=Aggregator.objects.order_by("pk").values("pk")[:1]).update(api_user=user)
    failures = []
    for path, method, use_case, cls, _action, takes_json in WRITE_ROUTES:
        if use_case not in USE_CASES:
            failures.append((path, method, "no use case"))
            continue
        detail = "{" in path
        if principal == ANONYMOUS or not allowed(principal, use_case):
            pk = _object_for(cls) if detail else None
            url = _fill(path, pk if pk is not None else MISSING_ID)
            before = _snapshot()
            response = getattr(client, method.lower())(url, {}, format="json")
            expected = 401 if principal == ANONYMOUS else 403
            if response.status_code != expected:
                failures.append((path, method, use_case, response.status_code, f"expected {expected}"))
            elif expected == 401 and "WWW-Authenticate" not in response:
                failures.append((path, method, "401 without WWW-Authenticate"))
            elif _snapshot() != before:
                failures.append((path, method, use_case, "a refused attempt changed data"))
            elif response.json().get("code") not in {"not_authenticated", "permission_denied",
                                                     "capability_required"}:
                failures.append((path, method, "error shape", response.json()))
        else:
            url = _fill(path, MISSING_ID)
            response = getattr(client, method.lower())(url, {}, format="json")
            # Past the permission gate: the missing object (404) or the empty body (400, when the view validates the
            # input first) answers; a collection write with an empty body is invalid (400) or body-less (201/204).
            expected = {400, 404} if detail else {400, 201, 204}
            if not takes_json:
                expected.add(415)  # an upload route: a JSON body is refused as such (after the gate)
            if response.status_code not in expected:
                failures.append((path, method, use_case, response.status_code, f"expected {sorted(expected)}"))
    assert not failures, failures


# -------------------------------------------------------------------------------------------------------------- admin


def _domain_admins():
    return sorted(((model, model_admin) for model, model_admin in admin.site._registry.items()
                   if model._meta.app_label in DOMAIN_APPS), key=lambda pair: pair[0]._meta.label)


DOMAIN_ADMINS = _domain_admins()


def _expected_actions(model_admin, role: str) -> set[str]:
    names = set()
    for name, func in ((n, f) for n, f in _declared_actions(model_admin)):
        use_case = getattr(func, "use_case", None)
        if name == "delete_selected":
            use_case = getattr(model_admin, "write_use_cases", {}).get("delete")
        if use_case and allowed(role, use_case):
            names.add(name)
        elif use_case is None and getattr(func, "read_only", False):
            names.add(name)  # a read (CSV export): offered to every role that can see the changelist
    return names


def _declared_actions(model_admin):
    """(name, function) of every action the ModelAdmin declares, the site's (delete_selected) included."""
    if model_admin.actions is None:
        return
    for name, func in model_admin.admin_site.actions:
        yield name, func
    for action in model_admin.actions or []:
        func = action if callable(action) else getattr(type(model_admin), action)
        yield getattr(func, "__name__", action), func


def _admin_may(model_admin, operation: str, role: str) -> bool:
    use_case = getattr(model_admin, "write_use_cases", {}).get(operation)
    return bool(use_case) and allowed(role, use_case)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_admin_by_role(client, django_user_model, world, principal):
    failures = []
    if principal != ANONYMOUS:
        client.force_login(_user(django_user_model, principal, staff=True))
    for model, model_admin in DOMAIN_ADMINS:
        opts = model._meta
        base = f"/admin/{opts.app_label}/{opts.model_name}/"
        obj = model._default_manager.order_by("pk").first()
        listing = client.get(base)
        if principal in (ANONYMOUS, roles.AGGREGATOR):
            if listing.status_code != 302 or "/admin/login/" not in listing["Location"]:
                failures.append((opts.label, "changelist", listing.status_code, "expected a redirect to login"))
            continue
        if listing.status_code == 403:
            offered = set()
        elif listing.status_code == 200:
            action_form = listing.context.get("action_form") if listing.context else None
            offered = ({c[0] for c in action_form.fields["action"].choices if c[0]} if action_form else set())
        else:
            failures.append((opts.label, "changelist", listing.status_code))
            continue
        expected = _expected_actions(model_admin, principal) if listing.status_code == 200 else set()
        if offered != expected:
            failures.append((opts.label, "actions offered", sorted(offered), "expected", sorted(expected)))
        # Every action not offered: a forged POST changes nothing.
        if obj is not None:
            for name, _func in _declared_actions(model_admin):
                if name in offered:
                    continue
                before = _snapshot()
                client.post(base, {"action": name, "_selected_action": [obj.pk], "apply": "yes",
                                   "reason": "forged", "post": "yes"})
                if _snapshot() != before:
                    failures.append((opts.label, name, "a refused action changed data"))
        add = client.get(f"{base}add/")
        want = 200 if _admin_may(model_admin, "add", principal) else 403
        if add.status_code != want:
            failures.append((opts.label, "add page", add.status_code, f"expected {want}"))
        if obj is not None and not _admin_may(model_admin, "delete", principal):
            before = _snapshot()
            for response in (client.get(f"{base}{obj.pk}/delete/"), client.post(f"{base}{obj.pk}/delete/",
                                                                                  {"post": "yes"})):
                if response.status_code != 403:
                    failures.append((opts.label, "delete page", response.status_code, "expected 403"))
            if _snapshot() != before:
                failures.append((opts.label, "a refused delete changed data"))
        if obj is not None and not _admin_may(model_admin, "change", principal):
            before = _snapshot()
            change = client.post(f"{base}{obj.pk}/change/", {})
            if change.status_code not in (403,) and not (change.status_code == 200 and _snapshot() == before):
                failures.append((opts.label, "change POST", change.status_code))
            if _snapshot() != before:
                failures.append((opts.label, "a refused change changed data"))
    assert not failures, failures


def test_no_domain_admin_saves_models_directly():
    """Every ModelAdmin of a domain model either offers no add/change/delete (read-only) or declares the use case
    of each operation it offers (and then saves through the service)."""
    from cpm.base.admin import GuardedModelAdmin, ReadOnlyAdmin

    loose = [m._meta.label for m, a in DOMAIN_ADMINS
             if m._meta.app_label != "cpm" and not isinstance(a, GuardedModelAdmin | ReadOnlyAdmin)]
    assert not loose, loose


def test_snapshot_sees_every_domain_table():
    labels = {label for label, _count in _snapshot()[0]}
    assert {"events.Event", "settlement.EventSettlement", "enrollments.Enrollment", "programs.Program"} <= labels
    assert connection.vendor in {"sqlite", "postgresql"}


def test_audit_trail_masks_contact_details_without_the_capability(client, django_user_model):
    """A customer's e-mail in an audit entry's changes: the auditor sees it masked on the audit trail and the
    customer's History page; a CSR (personal-data capability) sees it."""
    from cpm.base.audit import audit_record
    from tests.actors import TEST_ACTOR
    from tests.factories.enrollments import CustomerFactory

    customer = CustomerFactory(email="pat.jones@example.com")
    entry = audit_record(obj=customer, action="update", now=dt.datetime(2026, 7, 1, tzinfo=dt.UTC),
                         actor=TEST_ACTOR, changes={"email": ["old.one@example.com", "pat.jones@example.com"]})
    pages = [f"/admin/cpm/auditentry/{entry.pk}/change/", f"/admin/enrollments/customer/{customer.pk}/history/"]
    client.force_login(_user(django_user_model, roles.AUDITOR, staff=True))
    for page in pages:
        html = client.get(page).content.decode()
        assert "pat.jones@example.com" not in html and "old.one@example.com" not in html, page
        assert "p********@example.com" in html, page
    client.force_login(_user(django_user_model, roles.CSR, staff=True))
    assert "pat.jones@example.com" in client.get(pages[1]).content.decode()
