from django.db import models


class ModelStatus(models.TextChoices):
    ACTIVE = "ACTIVE"  # expected to answer: a missing answer is ABSENT
    RETIRED = "RETIRED"  # no longer asked or expected (set by an operator)


class InputStatus(models.TextChoices):
    RECEIVED = "RECEIVED"
    RESOLVED = "RESOLVED"
    EXPIRED = "EXPIRED"


class ExpiryReason(models.TextChoices):
    """Why an Input became EXPIRED (decided by the score worker alone)."""

    NO_GROUND_TRUTH = "NO_GROUND_TRUTH"  # no ground truth within GROUND_TRUTH_GRACE_SECONDS
    POISONED = "POISONED"  # still unprocessable after SCORE_MAX_ATTEMPTS: the node's fault


INPUT_TRANSITIONS = {
    InputStatus.RECEIVED: {InputStatus.RESOLVED, InputStatus.EXPIRED},
    InputStatus.RESOLVED: set(),
    InputStatus.EXPIRED: set(),
}


class PredictionStatus(models.TextChoices):
    PENDING = "PENDING"
    SCORED = "SCORED"
    FAILED = "FAILED"
    ABSENT = "ABSENT"


PREDICTION_TRANSITIONS = {
    PredictionStatus.PENDING: {PredictionStatus.SCORED, PredictionStatus.FAILED},
    PredictionStatus.SCORED: set(),
    PredictionStatus.FAILED: set(),
    PredictionStatus.ABSENT: set(),
}
PREDICTION_TERMINAL = {PredictionStatus.SCORED, PredictionStatus.FAILED, PredictionStatus.ABSENT}


class FailureReason(models.TextChoices):
    TIMEOUT = "TIMEOUT"
    MODEL_ERROR = "MODEL_ERROR"
    INVALID_OUTPUT = "INVALID_OUTPUT"
    SCORING_ERROR = "SCORING_ERROR"
    NO_GROUND_TRUTH = "NO_GROUND_TRUTH"
    INPUT_POISONED = "INPUT_POISONED"  # the Input could not be processed: not held against the model
