"""`manage.py run_checkpoint`: build each ended period's checkpoint, one period per unit."""

from checkpoints.services import create_due_checkpoint
from coordinator_site.worker import UnitResult, WorkerCommand


class Command(WorkerCommand):
    help = "Build the checkpoint of every ended period (schedule kept in the database)."
    worker_name = "run_checkpoint"
    default_sleep = 30.0
    default_batch = 1
    unit_budget_seconds = 30.0  # ranking, emission and Merkle tree of one period, in one transaction

    def run_unit(self, *, batch: int) -> UnitResult:
        checkpoint, reason = create_due_checkpoint()
        if checkpoint is None:
            if reason == "built elsewhere":  # another process won this period: look at the next one now
                return UnitResult(found=True, counts={"lost_races": 1})
            self.log.debug("no checkpoint built: %s", reason)
            return UnitResult(found=False)
        self.log.info(
            "checkpoint %s built for [%s, %s): %s models ranked, root %s (%s)",
            checkpoint.pk,
            checkpoint.period_start.isoformat(),
            checkpoint.period_end.isoformat(),
            checkpoint.meta.get("ranked_count"),
            checkpoint.merkle_root or "-",
            reason,
        )
        return UnitResult(found=True, counts={"checkpoints": 1})
