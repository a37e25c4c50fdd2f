from django.db import models


class BackfillStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


BACKFILL_TRANSITIONS = {
    BackfillStatus.PENDING: {BackfillStatus.RUNNING, BackfillStatus.FAILED},
    # running -> running: a dead worker's job is resumed by another (lease expired).
    BackfillStatus.RUNNING: {BackfillStatus.RUNNING, BackfillStatus.COMPLETED, BackfillStatus.FAILED},
    BackfillStatus.FAILED: {BackfillStatus.RUNNING},  # retry from the cursor
    BackfillStatus.COMPLETED: set(),
}
BACKFILL_OPEN = {BackfillStatus.PENDING, BackfillStatus.RUNNING}
