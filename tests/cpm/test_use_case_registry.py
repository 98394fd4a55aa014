"""Every door to a write names its use case: each admin action, each admin add/change/delete of a domain model, each
API write route and each CSR page action declares a use case registered in ``USE_CASES`` (``cpm.base.capabilities``).

A door without one is a write nobody checks: this test fails for it.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.options import ActionLocation
from django.contrib.auth import get_user_model
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from cpm.base.admin import GuardedModelAdmin
from tests.cpm.use_cases import load_use_cases

DOMAIN_APPS = ("programs", "devices", "enrollments", "events", "settlement")
WRITE_METHODS = ("post", "put", "patch", "delete")
BUILT_IN_ACTIONS = {"delete_selected"}  # Django's; GuardedModelAdmin offers it only with a delete use case
# Actions of third-party admins that write no domain data (named one by one, so a new one is noticed).
THIRD_PARTY_ACTIONS = {
    ("axes", "cleanup_expired_attempts"): "django-axes: deletes expired login-attempt records (login throttling)",
    ("oauth2_provider", "revoke_tokens"): "django-oauth-toolkit: revokes OpenADR 3 clients' access/refresh tokens",
}


def _superuser_request():
    request = RequestFactory().get("/admin/")
    request.user = get_user_model()(username="registry-check", is_superuser=True, is_staff=True, is_active=True)
    return request


def _all_actions(model_admin) -> list:
    """Every action the admin declares (changelist and change-form locations), before any permission filtering."""
    actions = {}
    for location in ActionLocation:
        for action in model_admin._get_base_actions(action_location=location):
            actions.setdefault(action.name, action)
    return list(actions.values())


def _name(model_admin) -> str:
    return f"{type(model_admin).__name__} ({model_admin.model._meta.label})"


@pytest.mark.django_db
def test_every_admin_action_and_every_admin_write_of_a_domain_model_declares_a_registered_use_case():
    use_cases = load_use_cases()
    request = _superuser_request()
    problems: list[str] = []
    registry = admin.site._registry
    assert registry, "no ModelAdmin registered"
    for model, model_admin in registry.items():
        for action in _all_actions(model_admin):
            name = action.name
            if name in BUILT_IN_ACTIONS or (model._meta.app_label, name) in THIRD_PARTY_ACTIONS:
                continue
            declared = getattr(action.func, "use_case", None)
            if declared is None and getattr(action.func, "read_only", False):
                continue  # a read (e.g. "Export selected as CSV"): no use case, offered with view permission
            if declared is None:
                problems.append(f"{_name(model_admin)}: action {name!r} declares no use case "
                                "(@guarded_action(\"<use case>\", ...))")
            elif declared not in use_cases:
                problems.append(f"{_name(model_admin)}: action {name!r} names {declared!r}, not a registered "
                                "use case")

        if model._meta.app_label not in DOMAIN_APPS:
            continue
        declared_ops = getattr(model_admin, "write_use_cases", None) or {}
        unknown = {op: declared for op, declared in declared_ops.items() if declared not in use_cases}
        for op, declared in unknown.items():
            problems.append(f"{_name(model_admin)}: write_use_cases[{op!r}] = {declared!r} is not a registered "
                            "use case")
        if unknown:
            continue  # asking the admin would fail on the unknown name; already reported
        offered = {
            "add": model_admin.has_add_permission(request),
            "change": model_admin.has_change_permission(request),
            "delete": model_admin.has_delete_permission(request),
        }
        for op, yes in offered.items():
            if not yes:
                continue
            if not isinstance(model_admin, GuardedModelAdmin) or op not in declared_ops:
                problems.append(f"{_name(model_admin)} offers {op} to a superuser without a write use case for it "
                                "(a GuardedModelAdmin with write_use_cases, or a ReadOnlyAdmin)")
        # Inlines of domain rows: read-only, or saved through services by the parent's save_formset.
        for inline_class in model_admin.inlines:
            inline = inline_class(model, model_admin.admin_site)
            if inline.model._meta.app_label not in DOMAIN_APPS:
                continue
            editable = [op for op, yes in (("add", inline.has_add_permission(request, None)),
                                           ("change", inline.has_change_permission(request, None)),
                                           ("delete", inline.has_delete_permission(request, None))) if yes]
            saves_via_service = (isinstance(model_admin, GuardedModelAdmin)
                                 and type(model_admin).save_formset is not admin.ModelAdmin.save_formset)
            if editable and not saves_via_service:
                problems.append(f"{_name(model_admin)}: inline {inline_class.__name__} lets a superuser "
                                f"{'/'.join(editable)} {inline.model._meta.label} rows without a service "
                                "(ReadOnlyInline, or save_formset calling services)")
    assert not problems, "\n".join(problems)


def _segment(pattern) -> str:
    return str(pattern.pattern).removeprefix("^").removesuffix("$")


def _routes(patterns, prefix: str = ""):
    """``(route, callback)`` for every URL pattern, resolvers walked."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + _segment(pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + _segment(pattern), pattern.callback


def api_write_operations() -> list[tuple[str, str, type, str]]:
    """``(route, METHOD, view class, action)`` of every write operation of every DRF view in the URL configuration.

    A viewset's action is its DRF action name (``create``, ``update``, ``partial_update``, ``destroy``, an
    ``@action``'s name); a plain APIView's is the lower-case method."""
    operations: dict[tuple[type, str, str], str] = {}
    for route, callback in _routes(get_resolver().url_patterns):
        cls = getattr(callback, "cls", None)
        if cls is None:  # not a DRF view
            continue
        actions = getattr(callback, "actions", None)
        if actions is not None:
            pairs = [(method, action) for method, action in actions.items() if method in WRITE_METHODS]
        else:
            pairs = [(method, method) for method in WRITE_METHODS if hasattr(cls, method)]
        for method, action in pairs:
            operations.setdefault((cls, method, action), route)
    return [(route, method.upper(), cls, action) for (cls, method, action), route in operations.items()]


def test_every_api_write_route_declares_a_registered_use_case():
    use_cases = load_use_cases()
    operations = api_write_operations()
    assert any(route.startswith("api/v1/") for route, *_ in operations), "no API write route found"
    problems = []
    for route, method, cls, action in sorted(operations, key=lambda o: (o[0], o[1])):
        declared = (getattr(cls, "use_cases", None) or {}).get(action)
        if declared is None:
            problems.append(f"{method} /{route} ({cls.__name__}.{action}): no use case in use_cases[{action!r}]")
        elif declared not in use_cases:
            problems.append(f"{method} /{route} ({cls.__name__}.{action}): {declared!r} is not a registered use case")
    assert not problems, "\n".join(problems)


def test_every_csr_page_action_names_a_registered_use_case_with_the_capabilities_it_states():
    from cpm.csr.actions import ACTIONS

    use_cases = load_use_cases()
    for action in ACTIONS.values():
        assert action.use_case in use_cases, action.use_case
        assert set(use_cases[action.use_case].capabilities) == set(action.registered_with), action.use_case
