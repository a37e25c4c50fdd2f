from django.db import models
from django.db.models import Q
from django.utils import timezone


class ReplayKind(models.TextChoices):
    REPLAY = "REPLAY"  # the live configuration: must reproduce what is stored
    WHAT_IF = "WHAT_IF"  # some contract slots overridden: the diff is the answer
    BACKTEST = "BACKTEST"  # a participant's model run over the stored Inputs


class ReplayReport(models.Model):
    """The outcome of one `manage.py replay` / `backtest` run, kept for the admin."""

    kind = models.CharField(max_length=16, choices=ReplayKind.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    range_start = models.DateTimeField()
    range_end = models.DateTimeField()
    overrides = models.JSONField(default=dict, blank=True, help_text="Contract slots / settings overridden.")
    reresolve = models.BooleanField(default=False)
    identical = models.BooleanField(null=True, help_text="Replay with the live configuration: no difference found.")
    exit_code = models.IntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    actor = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ReplayKind.values), name="replayreport_kind_valid"),
        ]
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} [{self.range_start:%Y-%m-%d %H:%M}, {self.range_end:%Y-%m-%d %H:%M})"
