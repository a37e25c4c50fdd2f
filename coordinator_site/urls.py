"""Root URLs. Each app contributes its own url module; the admin lives at /admin/."""

from django.contrib import admin
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe


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
    path("", include("reports.urls")),  # /healthz, /info, /reports/..., /api/schema/, /api/docs/
    path("", include("reports.pages.urls")),  # the HTML pages
]
