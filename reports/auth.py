"""Report-API authentication and permissions.

Keys travel in `X-API-Key: <key>` or `Authorization: Bearer <key>`, never in the query string.
Writes always need an admin-scope key or a staff session; reads are public unless
`REPORTS_REQUIRE_AUTH=true`. Nothing is opened up because no key happens to be configured.
"""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from reports.models import ApiKey, ApiKeyScope
from reports.services import api_key_touch, split_key, verify_secret

QUERY_STRING_KEY_NAMES = ("api_key", "apikey", "key", "token", "access_token")


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate by API key; the key row becomes `request.auth`."""

    keyword = "Bearer"

    def authenticate(self, request):
        for name in QUERY_STRING_KEY_NAMES:
            if name in request.query_params:
                raise exceptions.AuthenticationFailed(
                    "API keys are not accepted in the query string; send X-API-Key or Authorization: Bearer."
                )
        raw = request.META.get("HTTP_X_API_KEY", "")
        if not raw:
            header = authentication.get_authorization_header(request).decode("latin-1", "replace")
            scheme, _, value = header.partition(" ")
            if scheme.lower() != self.keyword.lower():
                return None  # no key presented (or another scheme): let the next authenticator try
            raw = value.strip()
            if not raw:
                raise exceptions.AuthenticationFailed("Empty bearer token.")
        parts = split_key(raw)
        if parts is None:
            raise exceptions.AuthenticationFailed("Malformed API key.")
        prefix, secret = parts
        key = ApiKey.objects.filter(prefix=prefix).first()
        # Hash and compare even for an unknown prefix, so timing does not tell prefixes apart.
        ok = verify_secret(secret, key.hashed_secret if key else "0" * 64)
        if key is None or not ok:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("API key revoked.")
        api_key_touch(key=key, now=timezone.now())
        return AnonymousUser(), key

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) when no credentials were given.
        return 'Bearer realm="reports"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "reports.auth.ApiKeyAuthentication"
    name = ["ApiKeyHeader", "BearerKey"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            {"type": "http", "scheme": "bearer"},
        ]


def request_api_key(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def is_staff_session(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_staff)


def request_actor(request) -> str:
    """Who made a write, for the audit trail: `api-key:<name>/<prefix>` or `user:<username>`."""
    key = request_api_key(request)
    if key is not None:
        return f"api-key:{key.name}/{key.prefix}"
    return f"user:{request.user.get_username()}"


class ReportReadPermission(permissions.BasePermission):
    """Public unless REPORTS_REQUIRE_AUTH; then any valid key or a staff session."""

    message = "Authentication required: send an API key (X-API-Key or Authorization: Bearer)."

    def has_permission(self, request, view):
        if not settings.REPORTS_REQUIRE_AUTH:
            return True
        return request_api_key(request) is not None or is_staff_session(request)


class ReportWritePermission(permissions.BasePermission):
    """Always an admin-scope key or a staff session."""

    message = "This action needs an admin-scope API key or a staff session."

    def has_permission(self, request, view):
        key = request_api_key(request)
        if key is not None:
            return key.scope == ApiKeyScope.ADMIN
        return is_staff_session(request)
