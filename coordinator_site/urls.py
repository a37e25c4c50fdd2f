"""Root URLs. Each app contributes its own url module; the admin lives at /admin/."""

from django.contrib import admin
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404
from django.urls import include, path, re_path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from monitoring.views import metrics
from reports.api.errors import not_found


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request):
    """/favicon.ico, which browsers ask for on every page without a <link rel=icon> (admin, API docs)."""
    found = finders.find("favicon.ico")
    if not found:
        raise Http404("no favicon.ico in the static files")
    return FileResponse(open(found, "rb"), content_type="image/x-icon")  # FileResponse closes it


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("metrics", metrics, name="metrics"),  # Prometheus; docs/operations.md
    path("", include("reports.urls")),  # /healthz, /info, /reports/..., /api/schema/, /api/docs/
    path("", include("reports.pages.urls")),  # the HTML pages
    # Last: whatever /reports path no route matched (unknown path, non-numeric id) is a JSON 404,
    # as the API's clients expect, not Django's HTML page. DOTALL: a path parameter may hold a
    # newline (a string round_id), which `.` would not match: [\s\S] does.
    re_path(r"^reports(?:/[\s\S]*)?$", not_found),
]
