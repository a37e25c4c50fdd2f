from django.db import models
from django.db.models import Q
from django.utils import timezone

from predictions.models import Input, ParticipantModel, Prediction


class Score(models.Model):
    """The score of one prediction. `value` is what windows average (null: excluded by policy).

    `model`, `input` and `performed_at` are copied from the prediction so window aggregates run
    on this table alone.
    """

    prediction = models.OneToOneField(Prediction, on_delete=models.PROTECT, related_name="score")
    # `model` and `input` are copies of the prediction's, written from it: the database checks them
    # through `prediction` (whose model and input are checked foreign keys), not again per row.
    # score_model_recent (model, ...) serves lookups by model: no single-column index on it.
    model = models.ForeignKey(
        ParticipantModel, on_delete=models.PROTECT, related_name="scores", db_index=False, db_constraint=False
    )
    input = models.ForeignKey(Input, on_delete=models.PROTECT, related_name="scores", db_constraint=False)
    scope_key = models.CharField(max_length=128)
    performed_at = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    success = models.BooleanField(default=True)
    failed_reason = models.TextField(blank=True, default="")
    scored_at = models.DateTimeField(default=timezone.now)
    # Scored after its snapshot period was sealed by a (forced) checkpoint: stored and reported,
    # never merged into a snapshot, a ranking, an emission or a leaderboard.
    late = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["performed_at", "model"], name="score_window"),
            models.Index(fields=["model", "-performed_at"], name="score_model_recent"),
        ]
        ordering = ["-performed_at", "-id"]

    def __str__(self) -> str:
        return f"score {self.value} for prediction {self.prediction_id}"


class Snapshot(models.Model):
    """One model's aggregate over one aligned period [period_start, period_end)."""

    model = models.ForeignKey(ParticipantModel, on_delete=models.PROTECT, related_name="snapshots")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    prediction_count = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True, help_text="Predictions by status in the period.")
    result_summary = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "period_start"], name="snapshot_natural_key"),
            models.CheckConstraint(condition=Q(period_start__lt=models.F("period_end")), name="snapshot_period_valid"),
        ]
        indexes = [models.Index(fields=["period_start"], name="snapshot_period")]
        ordering = ["-period_start", "model_id"]

    def __str__(self) -> str:
        return f"{self.model_id} [{self.period_start.isoformat()}, {self.period_end.isoformat()})"


class SnapshotSeal(models.Model):
    """Snapshots with period_start in [period_start, period_end) are sealed: they no longer change.

    Written by the checkpoint build in its transaction (`checkpoint_id` names it; no foreign key:
    scoring sits left of checkpoints), removed only when that checkpoint is voided. The score
    worker flags scores of a sealed period late instead of merging them; on PostgreSQL a trigger
    refuses any write to a sealed snapshot row (migration scoring 0004).
    """

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    checkpoint_id = models.BigIntegerField(unique=True)
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(period_start__lt=models.F("period_end")), name="snapshotseal_valid"),
        ]
        indexes = [models.Index(fields=["period_start", "period_end"], name="snapshotseal_period")]
        ordering = ["period_start"]

    def __str__(self) -> str:
        return f"sealed [{self.period_start.isoformat()}, {self.period_end.isoformat()})"


class Leaderboard(models.Model):
    """A ranking as of `created_at`; the newest row is the current leaderboard."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    entries = models.JSONField(default=list)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"leaderboard {self.created_at.isoformat()} ({len(self.entries)} models)"
