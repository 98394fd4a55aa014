"""``/openadr3``: the OpenADR 3.0.1 VTN (and the OAuth 2 token endpoint its clients use); ``/openadr3/3.1``: the
same VTN in OpenADR 3.1.0 representations (resources at ``/resources``)."""

from django.urls import path, re_path
from oauth2_provider.views import TokenView

from . import views

app_name = "openadr3"

urlpatterns = [
    path("auth/token", TokenView.as_view(), name="token"),
    path("auth/server", views.AuthServerView.as_view(), name="auth-server"),
    path("notifiers", views.NotifiersView.as_view(), name="notifiers"),
    path("programs", views.ProgramsView.as_view(), name="programs"),
    path("programs/<str:program_id>", views.ProgramView.as_view(), name="program"),
    path("events", views.EventsView.as_view(), name="events"),
    path("events/<str:event_id>", views.EventView.as_view(), name="event"),
    path("reports", views.ReportsView.as_view(), name="reports"),
    path("reports/<str:report_id>", views.ReportView.as_view(), name="report"),
    path("subscriptions", views.SubscriptionsView.as_view(), name="subscriptions"),
    path("subscriptions/<str:subscription_id>", views.SubscriptionView.as_view(), name="subscription"),
    path("vens", views.VensView.as_view(), name="vens"),
    path("vens/<str:ven_id>", views.VenView.as_view(), name="ven"),
    path("vens/<str:ven_id>/resources", views.ResourcesView.as_view(), name="resources"),
    path("vens/<str:ven_id>/resources/<str:resource_id>", views.ResourceView.as_view(), name="resource"),
    path("3.1/auth/token", TokenView.as_view(), name="v31-token"),
    path("3.1/auth/server", views.AuthServerView.as_view(token_url_name="openadr3:v31-token"),
         name="v31-auth-server"),
    path("3.1/notifiers", views.NotifiersView.as_view(v31=True), name="v31-notifiers"),
    path("3.1/programs", views.ProgramsView.as_view(v31=True), name="v31-programs"),
    path("3.1/programs/<str:program_id>", views.ProgramView.as_view(v31=True), name="v31-program"),
    path("3.1/events", views.EventsView.as_view(v31=True), name="v31-events"),
    path("3.1/events/<str:event_id>", views.EventView.as_view(v31=True), name="v31-event"),
    path("3.1/reports", views.ReportsView.as_view(v31=True), name="v31-reports"),
    path("3.1/reports/<str:report_id>", views.ReportView.as_view(v31=True), name="v31-report"),
    path("3.1/subscriptions", views.SubscriptionsView.as_view(v31=True), name="v31-subscriptions"),
    path("3.1/subscriptions/<str:subscription_id>", views.SubscriptionView.as_view(v31=True),
         name="v31-subscription"),
    path("3.1/vens", views.VensView.as_view(v31=True), name="v31-vens"),
    path("3.1/vens/<str:ven_id>", views.VenView.as_view(v31=True), name="v31-ven"),
    path("3.1/resources", views.Resources31View.as_view(), name="v31-resources"),
    path("3.1/resources/<str:resource_id>", views.Resource31View.as_view(), name="v31-resource"),
    re_path(r"^.*$", views.not_found),
]
