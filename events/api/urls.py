from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("events", views.EventViewSet, basename="event")
router.register("reservations", views.ReservationViewSet, basename="reservation")
router.register("participations", views.ParticipationViewSet, basename="participation")
router.register("unavailabilities", views.UnavailabilityViewSet, basename="unavailability")
router.register("aggregator/events", views.AggregatorEventViewSet, basename="aggregator-event")
router.register("aggregator/outcomes", views.AggregatorOutcomeViewSet, basename="aggregator-outcome")
router.register("aggregator/messages", views.AggregatorMessageViewSet, basename="aggregator-message")

urlpatterns = router.urls
