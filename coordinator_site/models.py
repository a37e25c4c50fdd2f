from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per running worker process, written by the shared worker loop."""

    name = models.CharField(max_length=64)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_beat_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    counters = models.JSONField(default=dict, blank=True)
    # The longest this worker promises to go between beats (heartbeat interval + its longest
    # unit): health judges each worker against its own cadence, not one global setting.
    cadence_seconds = models.FloatField(default=0.0)
    consecutive_errors = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "host", "pid"], name="workerheartbeat_identity"),
        ]
        indexes = [models.Index(fields=["name", "-last_beat_at"], name="workerheartbeat_latest")]
        ordering = ["name", "-last_beat_at"]

    def __str__(self) -> str:
        return f"{self.name}@{self.host}:{self.pid}"
