"""Settlement API routes: interval data and load jobs; settlement batches, event and customer settlements, exports."""

from rest_framework.routers import DefaultRouter

from settlement.meterdata.api.views import IntervalDayViewSet, MeterDataLoadViewSet

from . import views

router = DefaultRouter()
router.register("meter-data-loads", MeterDataLoadViewSet, basename="meter-data-load")
router.register("interval-days", IntervalDayViewSet, basename="interval-day")
router.register("settlement-batches", views.SettlementBatchViewSet, basename="settlement-batch")
router.register("event-settlements", views.EventSettlementViewSet, basename="event-settlement")
router.register("customer-settlements", views.CustomerSettlementViewSet, basename="customer-settlement")
router.register("abnormal-days", views.AbnormalDayViewSet, basename="abnormal-day")
router.register("bill-credit-exports", views.BillCreditExportViewSet, basename="bill-credit-export")

urlpatterns = router.urls
