from django.db import models


class CheckpointStatus(models.TextChoices):
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    CLAIMABLE = "CLAIMABLE"
    PAID = "PAID"


CHECKPOINT_TRANSITIONS = {
    CheckpointStatus.PENDING: {CheckpointStatus.SUBMITTED},
    CheckpointStatus.SUBMITTED: {CheckpointStatus.CLAIMABLE},
    CheckpointStatus.CLAIMABLE: {CheckpointStatus.PAID},
    CheckpointStatus.PAID: set(),
}
