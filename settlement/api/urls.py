"""Settlement API routes (interval data; settlement routes are added here too)."""

from rest_framework.routers import DefaultRouter

from .meter_views import IntervalDayViewSet, MeterDataLoadViewSet

router = DefaultRouter()
router.register("meter-data-loads", MeterDataLoadViewSet, basename="meter-data-load")
router.register("interval-days", IntervalDayViewSet, basename="interval-day")

urlpatterns = router.urls
