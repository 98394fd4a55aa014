"""URL configuration: admin, the REST API under /api/v1/, the OpenAPI schema and docs."""

from importlib import import_module
from importlib.util import find_spec

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

APPS = ("programs", "devices", "enrollments", "events", "settlement")


def _api_router() -> DefaultRouter:
    """One router over every app's viewsets, so /api/v1/ lists them all (each app keeps its own api/urls.py)."""
    router = DefaultRouter()
    for app in APPS:
        if find_spec(f"{app}.api.urls"):
            router.registry.extend(import_module(f"{app}.api.urls").router.registry)
    return router


# The pages' own permissions (cpm.csr.views.CSR_PERMISSION, cpm.dashboard.views.DASHBOARD_PERMISSIONS), named here
# because the URL configuration sits beside those features, not above them (pyproject's import contracts).
CSR_PERMISSION = "cpm.use_csr_page"
DASHBOARD_PERMISSIONS = ("programs.view_program", "events.view_event", "settlement.view_eventsettlement")


def home(request):
    """Where a person lands (``/``, and after signing in: ``LOGIN_REDIRECT_URL``): the CSR page for a role that has
    it, the dashboard for staff who may read programs, events and settlements (program administrators, settlement
    analysts, auditors), the admin for other staff; anyone else the CSR page, whose refusal says where their role
    works. Not signed in: the sign-in page."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login("/")
    if user.has_perm(CSR_PERMISSION):
        return redirect("/csr/")
    if user.is_staff:
        return redirect("/dashboard/" if user.has_perms(DASHBOARD_PERMISSIONS) else "/admin/")
    return redirect("/csr/")


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(_api_router().urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own: the Content-Security-Policy
    # (script-src 'self') blocks the inline script of the plain view, which left the page blank.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", home, name="home"),
]
urlpatterns.append(path("csr/", include("cpm.csr.urls")))
urlpatterns.append(path("dashboard/", include("cpm.dashboard.urls")))
# The OpenADR 3 VTN (its own problem responses; not in the drf-spectacular schema: the spec's OpenAPI is its contract).
urlpatterns.append(path("openadr3/", include("cpm.openadr3.urls")))
urlpatterns.append(path("notices/", include("cpm.notifications.urls")))
handler404 = "cpm.base.api.json_not_found"
