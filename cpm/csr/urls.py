from django.urls import path

from . import views

app_name = "csr"
urlpatterns = [
    path("", views.search, name="search"),
    path("customers/<int:customer_id>/", views.customer_detail, name="customer"),
    path("customers/<int:customer_id>/enroll/", views.enroll, name="enroll"),
    path("customers/<int:customer_id>/enrollments/<int:enrollment_id>/unenroll/", views.unenroll, name="unenroll"),
]
