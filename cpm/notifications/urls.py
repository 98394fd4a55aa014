from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("opt-out/<str:token>/", views.opt_out, name="opt-out"),
]
