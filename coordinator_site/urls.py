"""Root URLs. Each app contributes its own url module; the admin lives at /admin/."""

from django.contrib import admin
from django.urls import include, path

from monitoring.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),  # Prometheus; docs/operations.md
    path("", include("reports.urls")),  # /healthz, /info, /reports/..., /api/schema/, /api/docs/
    path("", include("reports.pages.urls")),  # the HTML pages
]
