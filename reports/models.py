from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiKeyScope(models.TextChoices):
    READ = "read"
    ADMIN = "admin"


class ApiKey(models.Model):
    """A report-API key: `prefix` identifies it, only a hash of the secret is stored."""

    name = models.CharField(max_length=128)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_secret = models.CharField(max_length=128)
    scope = models.CharField(max_length=8, choices=ApiKeyScope.choices, default=ApiKeyScope.READ)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        constraints = [models.CheckConstraint(condition=Q(scope__in=ApiKeyScope.values), name="apikey_scope_valid")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
