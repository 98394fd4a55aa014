from django.urls import path, register_converter

from cpm.base.naturalkeys import MAX_ID

from . import views


class RowId:
    """An id in the address: digits naming at most a bigint. A larger number names no row and answers 404 (it
    reached the lookups: OverflowError, an HTTP 500)."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > MAX_ID:
            raise ValueError(value)  # the URL does not match: 404
        return number

    def to_url(self, value) -> str:
        return str(value)


register_converter(RowId, "row_id")

app_name = "csr"
urlpatterns = [
    path("", views.search, name="search"),
    path("customers/<row_id:customer_id>/", views.customer_detail, name="customer"),
    path("customers/<row_id:customer_id>/enroll/", views.enroll, name="enroll"),
    path("customers/<row_id:customer_id>/enrollments/<row_id:enrollment_id>/unenroll/", views.unenroll,
         name="unenroll"),
    path("customers/<row_id:customer_id>/participations/<row_id:participation_id>/opt-out/", views.opt_out,
         name="opt_out"),
    path("customers/<row_id:customer_id>/unavailability/", views.declare_unavailability, name="unavailability"),
    path("customers/<row_id:customer_id>/contact-preference/", views.contact_preference, name="contact_preference"),
    path("customers/<row_id:customer_id>/settlements/<row_id:settlement_id>/", views.settlement_detail,
         name="settlement"),
]
