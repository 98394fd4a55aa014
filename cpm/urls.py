"""URL configuration: admin, the REST API under /api/v1/, the OpenAPI schema and docs."""

from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

api_v1 = []
for app in ("programs", "devices", "enrollments", "events", "settlement"):
    if find_spec(f"{app}.api.urls"):
        api_v1.append(path("", include(f"{app}.api.urls")))

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", RedirectView.as_view(url="/csr/", permanent=False)),
]
urlpatterns.append(path("csr/", include("cpm.csr.urls")))
