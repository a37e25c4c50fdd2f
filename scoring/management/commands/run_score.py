"""`manage.py run_score`: resolve, score, snapshot and rank (DESIGN.md §8).

Each unit is one claimed batch of Inputs (`--batch`, default 500). The leaderboard is rebuilt
after units that changed anything, once the queue is drained (or at least every
LEADERBOARD_REBUILD_INTERVAL seconds while it is not), and once at start in case a crash
skipped the last rebuild.
"""

import os
import socket
import time

from django.utils import timezone

from coordinator_site import metrics, wakeup
from coordinator_site.units import run_registered_units
from coordinator_site.worker import UnitResult, WorkerCommand
from scoring.policy import missing_policy
from scoring.postprocess import score_pass
from scoring.selectors import seconds_until_next_resolvable
from scoring.services import rebuild_leaderboard, score_batch

LEADERBOARD_REBUILD_INTERVAL = 30.0


class Command(WorkerCommand):
    help = "Score resolvable predictions, update snapshots and the leaderboard."
    worker_name = "run_score"
    default_sleep = 2.0
    default_batch = 500
    unit_budget_seconds = 10.0  # one claimed batch of Inputs, scored and written
    # New Inputs, and new tape records: an Input waiting for its ground truth's data is looked
    # at again as soon as records land, not only at its retry time.
    wakeup_channels = (wakeup.INPUTS, wakeup.TAPE)

    def next_due_seconds(self) -> float | None:
        return seconds_until_next_resolvable(now=timezone.now())

    def setup(self, options: dict) -> None:
        missing_policy()  # an unusable MISSING_PREDICTION_POLICY stops the worker at start
        score_pass()  # and so does an unusable SCORE_PASS / contract score_pass
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.once = options["once"]
        self.dirty = True
        self.last_rebuild = time.monotonic()

    def run_unit(self, *, batch: int) -> UnitResult:
        tape_moved = hasattr(self, "waiter") and self.waiter.consume(wakeup.TAPE)
        result = score_batch(worker=self.worker_id, batch=batch, tape_moved=tape_moved)
        # Units other apps registered for this worker (scoring a tournament round, claimed so it
        # is scored exactly once): coordinator_site/units.py.
        extra = run_registered_units("run_score", worker_id=self.worker_id)
        metrics.scored(predictions=result.scored, scoring_errors=result.scoring_errors, input_errors=result.errors)
        self.dirty = self.dirty or result.changed
        counts = {**result.counts(), **extra}
        self.dirty = self.dirty or bool(extra.get("extra_units_found"))
        drained = result.claimed < batch
        overdue = time.monotonic() - self.last_rebuild >= LEADERBOARD_REBUILD_INTERVAL
        if self.dirty and (drained or overdue or self.once):
            rebuild_leaderboard()
            self.dirty = False
            self.last_rebuild = time.monotonic()
            counts["leaderboard"] = 1
        return UnitResult(found=result.claimed > 0 or bool(extra.get("extra_units_found")), counts=counts)
