from django.db import models
from django.db.models import Q
from django.utils import timezone

from predictions.choices import (
    INPUT_TRANSITIONS,
    PREDICTION_TRANSITIONS,
    ExpiryReason,
    FailureReason,
    InputStatus,
    ModelStatus,
    PredictionStatus,
)

# Inputs of the live schedule (not a tournament round's samples): what the score worker claims,
# what health counts as a backlog and what checkpoint readiness waits on.
LIVE_INPUTS = Q(sample_id="")


class ParticipantModel(models.Model):
    """A participant's model as the orchestrator (or the local models folder) identifies it."""

    model_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=255, blank=True, default="")
    cruncher_id = models.CharField(max_length=128, blank=True, default="")
    cruncher_name = models.CharField(max_length=255, blank=True, default="")
    cruncher_index = models.PositiveIntegerField(
        null=True, blank=True, help_text="On-chain cruncher index paid by checkpoints. Unset: flagged, never paid."
    )
    deployment_id = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.ACTIVE)
    is_benchmark = models.BooleanField(
        default=False,
        help_text="The organiser's benchmark: ranked and shown, never paid; with the contract's "
        "eligibility.benchmark_cutoff, models ranked at or below it are not paid either.",
    )
    overall_score = models.JSONField(default=dict, blank=True)
    scores_by_scope = models.JSONField(default=dict, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "predictions_model"
        verbose_name = "model"
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ModelStatus.values), name="model_status_valid"),
        ]
        ordering = ["model_id"]

    def __str__(self) -> str:
        return f"{self.name or self.model_id} ({self.model_id})"


class ModelDeployment(models.Model):
    """Every deployment a model has had (a new deployment_id is a redeploy)."""

    model = models.ForeignKey(ParticipantModel, on_delete=models.CASCADE, related_name="deployments")
    deployment_id = models.CharField(max_length=255)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "deployment_id"], name="modeldeployment_natural_key"),
        ]
        ordering = ["-first_seen_at"]

    def __str__(self) -> str:
        return f"{self.model_id}:{self.deployment_id}"


class PredictionConfig(models.Model):
    """One schedule: ask every model every `interval_seconds`, resolve after `horizon_seconds`."""

    scope_key = models.CharField(max_length=128, unique=True)
    scope_template = models.JSONField(default=dict, blank=True)
    interval_seconds = models.PositiveIntegerField()
    horizon_seconds = models.PositiveIntegerField()
    active = models.BooleanField(default=True)
    order = models.IntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(interval_seconds__gte=1), name="predictionconfig_interval_positive"),
        ]
        indexes = [models.Index(fields=["next_run_at"], name="predictionconfig_due", condition=Q(active=True))]
        ordering = ["order", "scope_key"]

    def __str__(self) -> str:
        return self.scope_key


class Input(models.Model):
    """What the models were shown for one schedule slot, and (once resolved) what happened."""

    STATUS_TRANSITIONS = INPUT_TRANSITIONS

    config = models.ForeignKey(PredictionConfig, on_delete=models.PROTECT, related_name="inputs")
    scheduled_for = models.DateTimeField(help_text="The schedule slot this input serves.")
    # Empty for the live schedule. A tournament round's samples (docs/tournament.md) carry their
    # sample id here: they are unique on (config, sample_id) instead of (config, scheduled_for),
    # and the live score worker, health and checkpoint readiness never look at them.
    sample_id = models.CharField(max_length=128, blank=True, default="")
    raw_data = models.JSONField(default=dict)
    scope = models.JSONField(default=dict, blank=True)
    as_of = models.DateTimeField(null=True, blank=True, help_text="ts_event of the newest tape record shown.")
    # What the models were ticked with before predict (docs/predict.md "Event ticks"): mode
    # ("event": sent ahead as records arrived / "slot": sent in the cycle), the window's first and
    # last record ts_event and count, when it was sent, and the ticks since the config's last slot.
    ticks = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    resolvable_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=InputStatus.choices, default=InputStatus.RECEIVED)
    actuals = models.JSONField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Work claiming for the score worker (lease) and retry with backoff.
    claimed_by = models.CharField(max_length=128, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    expiry_reason = models.CharField(max_length=16, choices=ExpiryReason.choices, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["config", "scheduled_for"], name="input_natural_key", condition=Q(sample_id="")
            ),
            models.UniqueConstraint(
                fields=["config", "sample_id"], name="input_sample_key", condition=~Q(sample_id="")
            ),
            models.CheckConstraint(condition=Q(status__in=InputStatus.values), name="input_status_valid"),
        ]
        indexes = [
            models.Index(
                fields=["resolvable_at"], name="input_received_queue", condition=Q(status=InputStatus.RECEIVED)
            ),
            models.Index(fields=["scheduled_for"], name="input_scheduled_for"),
        ]
        ordering = ["-scheduled_for"]

    def __str__(self) -> str:
        return f"{self.config_id}@{self.scheduled_for.isoformat()} {self.status}"


class Prediction(models.Model):
    """One model's answer (or failure, or absence) for one Input."""

    STATUS_TRANSITIONS = PREDICTION_TRANSITIONS

    # No single-column indexes on input/model: prediction_natural_key (input, model) and
    # prediction_model_recent (model, ...) lead with them, and every extra index slows the writes.
    input = models.ForeignKey(Input, on_delete=models.PROTECT, related_name="predictions", db_index=False)
    model = models.ForeignKey(ParticipantModel, on_delete=models.PROTECT, related_name="predictions", db_index=False)
    # A copy of input.config, written with it in the same statement: the database checks it through
    # `input` (whose config is a checked foreign key), not again per row (a per-row check costs ~7 µs).
    config = models.ForeignKey(
        PredictionConfig, on_delete=models.PROTECT, related_name="predictions", db_constraint=False
    )
    scope_key = models.CharField(max_length=128)
    deployment_id = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=PredictionStatus.choices, default=PredictionStatus.PENDING)
    failure_reason = models.CharField(max_length=32, choices=FailureReason.choices, blank=True, default="")
    failure_detail = models.TextField(blank=True, default="")
    output = models.JSONField(null=True, blank=True)
    exec_time_us = models.BigIntegerField(null=True, blank=True, help_text="Model call time in microseconds.")
    performed_at = models.DateTimeField()
    resolvable_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["input", "model"], name="prediction_natural_key"),
            models.CheckConstraint(condition=Q(status__in=PredictionStatus.values), name="prediction_status_valid"),
            models.CheckConstraint(
                condition=Q(failure_reason="") | Q(failure_reason__in=FailureReason.values),
                name="prediction_failure_reason_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status=PredictionStatus.FAILED) | ~Q(failure_reason=""),
                name="prediction_failed_has_reason",
            ),
        ]
        indexes = [
            models.Index(
                fields=["resolvable_at"], name="prediction_pending_queue", condition=Q(status=PredictionStatus.PENDING)
            ),
            models.Index(fields=["model", "-performed_at", "-id"], name="prediction_model_recent"),
            models.Index(fields=["-performed_at", "-id"], name="prediction_recent"),
            models.Index(fields=["scope_key", "-performed_at", "-id"], name="prediction_scope_recent"),
        ]
        ordering = ["-performed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.model_id}/{self.input_id} {self.status}"
