"""The admin site: staff of the utility only. An aggregator's users are scoped to their own devices, enrollments,
participations and events in the API and OpenADR; they cannot sign in to the admin, whose lists are utility-wide."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

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


class CpmAdminConfig(AdminConfig):
    default_site = "cpm.base.adminsite.CpmAdminSite"
