"""The admin site: staff of the utility only. An aggregator's users are scoped to their own devices, enrollments,
participations and events in the API and OpenADR; they cannot sign in to the admin, whose lists are utility-wide."""

from __future__ import annotations

from functools import update_wrapper

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpResponseBadRequest

from .capabilities import Cap, permission_name


def is_aggregator_user(user) -> bool:
    """True for an aggregator's user: it holds ``report_outcomes``, the capability only the Aggregator role has
    (read from the permission cache the admin loads anyway; a superuser is never one)."""
    if not getattr(user, "is_authenticated", False) or user.is_superuser:
        return False
    return user.has_perm(permission_name(Cap.REPORT_OUTCOMES))


class CpmAdminSite(admin.AdminSite):
    site_header = "cpm administration"
    site_title = "cpm"

    def has_permission(self, request):
        return super().has_permission(request) and not is_aggregator_user(request.user)

    def admin_view(self, view, cacheable=False):
        """Django's admin view wrapper, refusing a query parameter (name or value) holding a NUL character with a
        400 naming it, before the view runs: PostgreSQL refuses NUL in text, so a list filter, lookup or search
        carrying one (``?status=%00``) was an HTTP 500 on every changelist."""
        inner = super().admin_view(view, cacheable)

        def checked(request, *args, **kwargs):
            bad = nul_parameter(request.GET)
            if bad is not None:
                return HttpResponseBadRequest(
                    f"The query parameter '{bad}' contains a NUL character (\\x00): remove it.".encode(),
                    content_type="text/plain; charset=utf-8")
            return inner(request, *args, **kwargs)

        return update_wrapper(checked, inner)


def nul_parameter(params) -> str | None:
    """The name of the first query parameter whose name or a value holds a NUL character (the name shown with
    ``\\x00`` for it), or None."""
    for key, values in params.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            return key.replace("\x00", "\\x00")
    return None


class CpmAdminConfig(AdminConfig):
    default_site = "cpm.base.adminsite.CpmAdminSite"
