"""Routes of the programs API (included under /api/v1/ by cpm.urls)."""

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.include_root_view = False
router.register("programs", views.ProgramViewSet, basename="program")
router.register("seasons", views.SeasonViewSet, basename="season")
router.register("participation-rules", views.ParticipationRuleViewSet, basename="participation-rule")
router.register("incentive-rules", views.IncentiveRuleViewSet, basename="incentive-rule")
router.register("qualification-questions", views.QuestionViewSet, basename="qualification-question")
router.register("mutual-exclusions", views.MutualExclusionViewSet, basename="mutual-exclusion")
router.register("price-sets", views.PriceSetViewSet, basename="price-set")

urlpatterns = router.urls
