"""Routes of the devices API (included under /api/v1/ by cpm.urls)."""

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.include_root_view = False
router.register("premises", views.PremiseViewSet, basename="premise")
router.register("service-points", views.ServicePointViewSet, basename="service-point")
router.register("aggregators", views.AggregatorViewSet, basename="aggregator")
router.register("devices", views.DeviceViewSet, basename="device")

urlpatterns = router.urls
