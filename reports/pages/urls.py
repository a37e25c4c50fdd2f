"""HTML pages (included at the site root)."""

from django.urls import path

from reports.pages import views

app_name = "pages"

urlpatterns = [
    path("", views.leaderboard, name="leaderboard"),
    path("models/<str:model_id>", views.model_detail, name="model"),
    path("predictions", views.predictions, name="predictions"),
    path("feeds", views.feeds, name="feeds"),
    path("checkpoints", views.checkpoints, name="checkpoints"),
    path("checkpoints/<int:checkpoint_id>", views.checkpoint_detail, name="checkpoint"),
    path("health", views.health, name="health"),
]
