from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.dashboard, name="index"),
    path("events/<int:event_id>/", views.event_detail, name="event"),
]
