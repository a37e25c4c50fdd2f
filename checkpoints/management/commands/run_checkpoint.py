"""`manage.py run_checkpoint`: build each settled period's checkpoint, one period per unit."""

from django.utils import timezone

from checkpoints.selectors import next_checkpoint_period
from checkpoints.services import create_due_checkpoint
from coordinator_site import wakeup
from coordinator_site.worker import UnitResult, WorkerCommand


class Command(WorkerCommand):
    help = "Build the checkpoint of every settled period (schedule kept in the database), then verify it."
    worker_name = "run_checkpoint"
    default_sleep = 30.0
    default_batch = 1
    wakeup_channels = (wakeup.SCORES,)

    def next_due_seconds(self) -> float | None:
        period = next_checkpoint_period()
        return None if period is None else (period.end - timezone.now()).total_seconds()

    unit_budget_seconds = 30.0  # ranking, emission and Merkle tree of one period, in one transaction

    def setup(self, options: dict) -> None:
        self.last_wait = ""

    def run_unit(self, *, batch: int) -> UnitResult:
        checkpoint, reason = create_due_checkpoint()
        if checkpoint is None:
            if reason == "built elsewhere":  # another process won this period: look at the next one now
                return UnitResult(found=True, counts={"lost_races": 1})
            if reason != self.last_wait:  # say why it waits once per change, not every pass
                log = self.log.warning if reason.startswith("OVERDUE") else self.log.info
                log("no checkpoint built: %s", reason)
                self.last_wait = reason
            return UnitResult(found=False)
        self.last_wait = ""
        verification = checkpoint.meta.get("verification", {})
        self.log.info(
            "checkpoint %s built for [%s, %s): %s models ranked, root %s (%s); verification %s",
            checkpoint.pk,
            checkpoint.period_start.isoformat(),
            checkpoint.period_end.isoformat(),
            checkpoint.meta.get("ranked_count"),
            checkpoint.merkle_root or "-",
            reason,
            "ok" if verification.get("ok") else "FAILED",
        )
        if not verification.get("ok"):
            self.log.warning("checkpoint %s failed verification: %s", checkpoint.pk, verification.get("problems"))
        return UnitResult(found=True, counts={"checkpoints": 1})
