"""`GET /metrics` (Prometheus text format)."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from monitoring.metrics import metrics_text


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The node's metrics; with METRICS_BEARER_TOKEN set, only for `Authorization: Bearer <token>`."""
    token = settings.METRICS_BEARER_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return HttpResponse("metrics need the bearer token\n", status=401, content_type="text/plain")
    body, content_type = metrics_text()
    return HttpResponse(body, content_type=content_type)
