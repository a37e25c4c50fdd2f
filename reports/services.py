"""Writes of the reports app: API keys (created once, stored hashed, revocable)."""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from reports.models import ApiKey, ApiKeyScope

KEY_PREFIX = "cnk"
# How stale `last_used_at` may get: at most one UPDATE per key per minute, never one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """sha256 of the secret part of a key.

    The secret is 32 random bytes (not a password), so a fast hash cannot be brute-forced and
    keeps the per-request check cheap; the comparison itself is constant-time (`verify_secret`).
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_secret(secret: str, hashed: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return secrets.compare_digest(hash_secret(secret), hashed)


def split_key(raw_key: str) -> tuple[str, str] | None:
    """`cnk_<prefix>_<secret>` -> (prefix, secret); None when the text is not shaped like a key."""
    parts = raw_key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def api_key_create(*, name: str, scope: str) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the full key text, which is never stored or shown again."""
    if scope not in ApiKeyScope.values:
        raise ValueError(f"scope must be one of {ApiKeyScope.values}, got {scope!r}")
    if not name.strip():
        raise ValueError("name must not be empty")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(name=name.strip(), prefix=prefix, hashed_secret=hash_secret(secret), scope=scope)
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


def api_key_revoke(*, key: ApiKey, now: datetime | None = None) -> ApiKey:
    """Revoke a key (idempotent: a revoked key keeps its first revocation time)."""
    now = now or timezone.now()
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
    key.refresh_from_db(fields=["revoked_at"])
    return key


def api_key_touch(*, key: ApiKey, now: datetime | None = None) -> bool:
    """Record a use of the key, at most once per LAST_USED_RESOLUTION. Returns True if written."""
    now = now or timezone.now()
    cutoff = now - LAST_USED_RESOLUTION
    if key.last_used_at is not None and key.last_used_at > cutoff:
        return False
    # Conditional so that concurrent requests on several workers still write only once a minute.
    written = (
        ApiKey.objects.filter(pk=key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff))
        .update(last_used_at=now)
    )
    if written:
        key.last_used_at = now
    return bool(written)
