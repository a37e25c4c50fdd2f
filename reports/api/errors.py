"""Error bodies of the report API: always JSON with a `detail` (the OpenAPI `Error` schema).

- A parameter refused by the sanitising boundary (`Rejected`) is 400 `{"detail", "code"}`.
- DRF's own validation errors (request bodies) are 400 with a `detail` that names each field,
  and keep the per-field lists (`{"detail": "tx_hash: …", "tx_hash": ["…"]}`).
- Any path under /reports that no route matches (an unknown path, a non-numeric or too long
  id) is a JSON 404, not Django's HTML page.
"""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from coordinator_site.boundary import Rejected


def _messages(detail, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items() for m in _messages(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [m for item in detail for m in _messages(item, prefix)]
    return [f"{prefix}{detail}"]


def report_exception_handler(exc, context):
    """DRF's handler, plus Rejected -> 400 and a `detail` in every validation error."""
    if isinstance(exc, Rejected):
        return Response({"detail": exc.detail, "code": exc.code}, status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if isinstance(exc, ValidationError) and response is not None:
        data = response.data
        if not (isinstance(data, dict) and "detail" in data):
            body = {"detail": "; ".join(_messages(data)) or "Invalid request."}
            if isinstance(data, dict):
                body.update(data)
            response.data = body
    return response


@csrf_exempt
def not_found(request, *args, **kwargs):
    """The JSON 404 of every unmatched path under /reports (any method)."""
    return JsonResponse({"detail": "Not found."}, status=404)
