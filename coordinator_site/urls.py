"""Root URLs. Each app contributes its own url module; the admin lives at /admin/."""

from django.contrib import admin
from django.urls import include, path, re_path

from monitoring.views import metrics
from reports.api.errors import not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),  # Prometheus; docs/operations.md
    path("", include("reports.urls")),  # /healthz, /info, /reports/..., /api/schema/, /api/docs/
    path("", include("reports.pages.urls")),  # the HTML pages
    # Last: whatever /reports path no route matched (unknown path, non-numeric id) is a JSON 404,
    # as the API's clients expect, not Django's HTML page.
    re_path(r"^reports(?:/.*)?$", not_found),
]
