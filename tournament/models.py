from django.db import models
from django.db.models import Q
from django.utils import timezone

from predictions.models import PredictionConfig
from tournament.choices import ROUND_TRANSITIONS, RoundStatus


class Round(models.Model):
    """One tournament round: a fixed set of samples every model answers once, scored once the
    operator uploads their ground truth (docs/tournament.md).

    The samples are Inputs of the round's own inactive PredictionConfig (scope_key
    `tournament:<round_id>`, never served by the schedule), one per sample, unique on
    (config, sample_id); the answers are ordinary Predictions, so (round, sample_id, model)
    identifies each one. Scoring writes ordinary Score rows.
    """

    STATUS_TRANSITIONS = ROUND_TRANSITIONS

    round_id = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=32, choices=RoundStatus.choices, default=RoundStatus.OPEN)
    config = models.OneToOneField(PredictionConfig, on_delete=models.PROTECT, related_name="tournament_round")
    out_of_sample_weight = models.FloatField(
        help_text="Weight of the out-of-sample part in the combined score (in-sample: 1 - weight)."
    )
    sample_count = models.PositiveIntegerField(default=0)
    meta = models.JSONField(default=dict, blank=True)
    # The uploaded ground truth, validated, keyed by sample_id (only samples of the round), and
    # what the upload found: missing and extra sample ids, invalid rows.
    ground_truth = models.JSONField(null=True, blank=True)
    truth_report = models.JSONField(default=dict, blank=True)
    # Per model: per part {mean, n, scored, failed} and the combined score (written when scored).
    results = models.JSONField(default=dict, blank=True)
    rescores = models.JSONField(default=list, blank=True, help_text="Every explicit re-score: reason, actor, at.")
    cancel_reason = models.TextField(blank=True, default="")
    opened_at = models.DateTimeField(default=timezone.now)
    inference_done_at = models.DateTimeField(null=True, blank=True)
    truth_uploaded_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    # Claimed by one run_predict (inference) or run_score (scoring) process at a time.
    claimed_by = models.CharField(max_length=128, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RoundStatus.values), name="round_status_valid"),
            models.CheckConstraint(
                condition=Q(out_of_sample_weight__gte=0) & Q(out_of_sample_weight__lte=1),
                name="round_weight_in_unit_interval",
            ),
        ]
        indexes = [
            models.Index(
                fields=["opened_at"],
                name="round_work_queue",
                condition=Q(status__in=[RoundStatus.OPEN, RoundStatus.GROUND_TRUTH_UPLOADED]),
            )
        ]
        ordering = ["-opened_at", "-id"]

    def __str__(self) -> str:
        return f"round {self.round_id} {self.status}"
