from django.db import models


class CheckpointStatus(models.TextChoices):
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    CLAIMABLE = "CLAIMABLE"
    PAID = "PAID"
    VOID = "VOID"  # voided by an operator before submission; its period is built again


CHECKPOINT_TRANSITIONS = {
    CheckpointStatus.PENDING: {CheckpointStatus.SUBMITTED, CheckpointStatus.VOID},
    CheckpointStatus.SUBMITTED: {CheckpointStatus.CLAIMABLE},
    CheckpointStatus.CLAIMABLE: {CheckpointStatus.PAID},
    CheckpointStatus.PAID: set(),
    CheckpointStatus.VOID: set(),
}
