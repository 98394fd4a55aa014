from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("settlement-batches", views.SettlementBatchViewSet, basename="settlement-batch")
router.register("event-settlements", views.EventSettlementViewSet, basename="event-settlement")
router.register("customer-settlements", views.CustomerSettlementViewSet, basename="customer-settlement")
router.register("bill-credit-exports", views.BillCreditExportViewSet, basename="bill-credit-export")

urlpatterns = router.urls
