from django.urls import path

from . import views

app_name = "csr"
urlpatterns = [
    path("", views.search, name="search"),
    path("customers/<int:customer_id>/", views.customer_detail, name="customer"),
]
