from django.db import models


class RoundStatus(models.TextChoices):
    OPEN = "OPEN"  # samples stored; models being asked (run_predict, in chunks)
    INFERENCE_DONE = "INFERENCE_DONE"  # every model asked once per sample
    GROUND_TRUTH_UPLOADED = "GROUND_TRUTH_UPLOADED"  # truth stored; run_score scores it once
    SCORED = "SCORED"
    CANCELLED = "CANCELLED"


# Re-uploading truth before scoring stays GROUND_TRUTH_UPLOADED (replaces it); after scoring
# only an explicit re-score (with a reason) moves SCORED back to GROUND_TRUTH_UPLOADED.
ROUND_TRANSITIONS = {
    RoundStatus.OPEN: {RoundStatus.INFERENCE_DONE, RoundStatus.CANCELLED},
    RoundStatus.INFERENCE_DONE: {RoundStatus.GROUND_TRUTH_UPLOADED, RoundStatus.CANCELLED},
    RoundStatus.GROUND_TRUTH_UPLOADED: {RoundStatus.SCORED, RoundStatus.CANCELLED},
    RoundStatus.SCORED: {RoundStatus.GROUND_TRUTH_UPLOADED},
    RoundStatus.CANCELLED: set(),
}
TERMINAL = {RoundStatus.CANCELLED}


class SamplePart(models.TextChoices):
    """Which part of the round a sample belongs to (scored and shown separately)."""

    IN_SAMPLE = "in_sample"
    OUT_OF_SAMPLE = "out_of_sample"
