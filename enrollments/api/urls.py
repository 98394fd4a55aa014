"""Routes of the enrollments API (included under /api/v1/ by cpm.urls)."""

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.include_root_view = False
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("accounts", views.AccountViewSet, basename="account")
router.register("service-agreements", views.ServiceAgreementViewSet, basename="service-agreement")
router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")

urlpatterns = router.urls
