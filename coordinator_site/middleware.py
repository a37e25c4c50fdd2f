"""Request hygiene shared by the API, the pages and the admin."""

from urllib.parse import unquote_to_bytes

from django.http import HttpResponseBadRequest, JsonResponse

from coordinator_site.boundary import UNSTORABLE_TEXT

JSON_PATH_PREFIXES = ("/reports", "/api/", "/healthz", "/info")
NUL_MESSAGE = "NUL bytes are not allowed in requests."


class RejectNullBytesMiddleware:
    """Refuse (400) a NUL byte in the path, the query string or a header.

    PostgreSQL text cannot hold NUL, so such a value would otherwise turn a filter or an API-key
    lookup into a database error (500). Found by the schemathesis run of the report API. The API
    answers in its own error shape (`{"detail", "code"}`), the pages and the admin in plain text.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        raw = [meta.get("PATH_INFO", ""), meta.get("QUERY_STRING", "")]
        if any(b"\x00" in unquote_to_bytes(part) for part in raw) or any(
            "\x00" in value for key, value in meta.items() if key.startswith("HTTP_") and isinstance(value, str)
        ):
            if request.path_info.startswith(JSON_PATH_PREFIXES):
                return JsonResponse({"detail": NUL_MESSAGE, "code": UNSTORABLE_TEXT}, status=400)
            return HttpResponseBadRequest(NUL_MESSAGE, content_type="text/plain")
        return self.get_response(request)
