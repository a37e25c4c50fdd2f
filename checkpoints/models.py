from django.db import models
from django.db.models import Q
from django.utils import timezone

from checkpoints.choices import CHECKPOINT_TRANSITIONS, CheckpointStatus
from scoring.models import Snapshot


class Checkpoint(models.Model):
    """The reward split of one period [period_start, period_end), as submitted on-chain."""

    STATUS_TRANSITIONS = CHECKPOINT_TRANSITIONS

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=CheckpointStatus.choices, default=CheckpointStatus.PENDING)
    ranking = models.JSONField(default=list, blank=True)
    emission = models.JSONField(default=dict, blank=True)
    merkle_root = models.CharField(max_length=64, blank=True, default="")
    tx_hash = models.CharField(max_length=128, blank=True, default="")
    submitted_at = models.DateTimeField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One live checkpoint per period; voided ones stay as history.
            models.UniqueConstraint(
                fields=["period_start", "period_end"],
                condition=~Q(status=CheckpointStatus.VOID),
                name="checkpoint_period_unique",
            ),
            models.CheckConstraint(condition=Q(status__in=CheckpointStatus.values), name="checkpoint_status_valid"),
            models.CheckConstraint(
                condition=Q(status__in=[CheckpointStatus.PENDING, CheckpointStatus.VOID]) | ~Q(tx_hash=""),
                name="checkpoint_submitted_has_tx",
            ),
            models.CheckConstraint(
                condition=Q(period_start__lt=models.F("period_end")), name="checkpoint_period_valid"
            ),
        ]
        ordering = ["-period_end", "-id"]

    def __str__(self) -> str:
        return f"checkpoint [{self.period_start:%Y-%m-%d %H:%M}, {self.period_end:%Y-%m-%d %H:%M}) {self.status}"


class CheckpointLeaf(models.Model):
    """A snapshot committed to a checkpoint's Merkle tree, frozen as it was hashed."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="leaves")
    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="checkpoint_leaves")
    position = models.PositiveIntegerField()
    content = models.JSONField(help_text="The canonical snapshot document that was hashed.")
    leaf_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "position"], name="checkpointleaf_position"),
            models.UniqueConstraint(fields=["checkpoint", "snapshot"], name="checkpointleaf_snapshot"),
        ]
        ordering = ["checkpoint_id", "position"]

    def __str__(self) -> str:
        return f"leaf {self.position} of checkpoint {self.checkpoint_id}"


class CheckpointTransition(models.Model):
    """Audit trail: every status change of a checkpoint, who made it and when."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, choices=CheckpointStatus.choices)
    to_status = models.CharField(max_length=16, choices=CheckpointStatus.choices)
    tx_hash = models.CharField(max_length=128, blank=True, default="")
    actor = models.CharField(max_length=255)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["checkpoint_id", "at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status} by {self.actor}"
