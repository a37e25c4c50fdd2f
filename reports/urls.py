"""URLs of the report API. Router without trailing slashes: `/reports/leaderboard`, never `/…/`."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from reports.api import tournament, views

router = SimpleRouter(trailing_slash=False)
# SimpleRouter emits, per viewset, the list route, then detail=False actions (`latest`,
# `latest/prizes`), then `{pk}` routes, so static paths always win; `{pk}` is digits only too.
router.register("reports/leaderboard", views.LeaderboardViewSet, basename="report-leaderboard")
router.register("reports/models", views.ModelViewSet, basename="report-model")
router.register("reports/predictions", views.PredictionViewSet, basename="report-prediction")
router.register("reports/feeds", views.FeedViewSet, basename="report-feed")
router.register("reports/snapshots", views.SnapshotViewSet, basename="report-snapshot")
router.register("reports/checkpoints", views.CheckpointViewSet, basename="report-checkpoint")
router.register("reports/emissions", views.EmissionViewSet, basename="report-emission")
router.register("reports/merkle", views.MerkleViewSet, basename="report-merkle")
router.register("reports/schema", views.ReportSchemaViewSet, basename="report-schema")
router.register("reports/tournament/rounds", tournament.TournamentRoundViewSet, basename="report-tournament-round")

urlpatterns = [
    path("healthz", views.HealthView.as_view(), name="healthz"),
    path("reports/health", views.NodeHealthView.as_view(), name="node-health"),
    path("info", views.InfoView.as_view(), name="info"),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="openapi-docs"),
    *router.urls,
]
