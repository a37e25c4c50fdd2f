"""Root URLs. Each app contributes its own url module; the admin lives at /admin/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("reports.pages.urls")),
]
