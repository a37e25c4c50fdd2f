"""A worker on the shared loop for the loop's own tests.

TEST_WORKER_FAIL_UNITS: comma list of unit numbers that raise; TEST_WORKER_UNIT_SECONDS: time
one unit takes (to test that SIGTERM lets the current unit finish).
"""

import os
import time

from coordinator_site.worker import UnitResult, WorkerCommand


class Command(WorkerCommand):
    worker_name = "test_worker"
    default_sleep = 0.05

    def setup(self, options):
        self.unit_number = 0
        self.fail_units = {int(n) for n in os.environ.get("TEST_WORKER_FAIL_UNITS", "").split(",") if n}
        self.unit_seconds = float(os.environ.get("TEST_WORKER_UNIT_SECONDS", "0"))

    def run_unit(self, *, batch):
        self.unit_number += 1
        if self.unit_number in self.fail_units:
            raise RuntimeError(f"unit {self.unit_number} exploded")
        time.sleep(self.unit_seconds)
        return UnitResult(found=False, counts={"done": 1})
