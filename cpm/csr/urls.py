from django.urls import path

from . import views

app_name = "csr"
urlpatterns = [
    path("", views.search, name="search"),
    path("customers/<int:customer_id>/", views.customer_detail, name="customer"),
    path("customers/<int:customer_id>/enroll/", views.enroll, name="enroll"),
    path("customers/<int:customer_id>/enrollments/<int:enrollment_id>/unenroll/", views.unenroll, name="unenroll"),
    path("customers/<int:customer_id>/participations/<int:participation_id>/opt-out/", views.opt_out,
         name="opt_out"),
    path("customers/<int:customer_id>/unavailability/", views.declare_unavailability, name="unavailability"),
    path("customers/<int:customer_id>/contact-preference/", views.contact_preference, name="contact_preference"),
    path("customers/<int:customer_id>/settlements/<int:settlement_id>/", views.settlement_detail,
         name="settlement"),
]
