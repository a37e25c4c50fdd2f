"""The outage scenario (settled periods): the score worker is SIGKILLed for longer than every
grace, the other workers keep running, then it comes back. Every checkpoint built is what the
complete data gives, and every snapshot of every closed period is in exactly one checkpoint.

Real worker subprocesses on PostgreSQL (the production database; SQLite runs writers one at a time).
"""

import os
import signal
import subprocess
import time

import pytest
from django.db import close_old_connections, connection
from django.db.models import Count

from checkpoints.models import Checkpoint, CheckpointLeaf
from checkpoints.verification import verify_checkpoint
from predictions.choices import PredictionStatus
from predictions.models import Prediction
from scoring.models import Score, Snapshot
from tests.e2e.processes import start, stop, synthetic_pipeline_env, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent workers: PostgreSQL only"),
]
PERIOD = 20  # checkpoint interval (s)


def fresh(query):
    close_old_connections()
    return query()


def test_an_outage_of_the_score_worker_never_pays_from_incomplete_snapshots(worker_env, manage_py, tmp_path):
    env = synthetic_pipeline_env(
        worker_env,
        tmp_path,
        scope_key="BTC-outage",
        interval=2,
        horizon=3,
        SNAPSHOT_PERIOD_SECONDS="5",
        CHECKPOINT_INTERVAL_SECONDS=str(PERIOD),
        CHECKPOINT_GRACE_SECONDS="2",  # the old rule built a period 2 s after its end, whatever was open
        GROUND_TRUTH_GRACE_SECONDS="600",
    )
    loaded = subprocess.run(
        [*manage_py, "load_prediction_configs"], env=env, capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr
    workers = {
        name: start([*manage_py, command, "--sleep", "0.3"], env)
        for name, command in (
            ("feed", "run_feed"),
            ("predict", "run_predict"),
            ("score", "run_score"),
            ("checkpoint", "run_checkpoint"),
        )
    }
    restarted = None
    try:
        scored = lambda: Prediction.objects.filter(status=PredictionStatus.SCORED).exists()  # noqa: E731
        assert wait_for(lambda: fresh(scored), timeout=120), workers["score"][1].text
        os.kill(workers["score"][0].pid, signal.SIGKILL)
        # Down for longer than a whole period plus every checkpoint grace: periods end meanwhile.
        time.sleep(PERIOD * 1.5 + 2)
        waiting = workers["checkpoint"][1]
        assert waiting.contains("input(s) not resolved or expired yet"), waiting.text
        restarted = start([*manage_py, "run_score", "--sleep", "0.3"], env)
        # Two more periods end and settle after the restart.
        first_after = time.time()
        assert wait_for(
            lambda: fresh(lambda: Checkpoint.objects.filter(period_end__gte=_dt(first_after + PERIOD)).exists()),
            timeout=PERIOD * 6,
        ), waiting.text
    finally:
        for process, _output in [*workers.values(), *([restarted] if restarted else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _output in [*workers.values(), *([restarted] if restarted else [])]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(process)

    close_old_connections()
    checkpoints = list(Checkpoint.objects.order_by("period_start"))
    assert len(checkpoints) >= 2
    for checkpoint in checkpoints:
        assert not checkpoint.meta.get("forced")
        # Built because its period was settled, never because a clock ran out...
        assert checkpoint.meta["readiness"].startswith("settled"), checkpoint.meta["readiness"]
        # ...so a rebuild from the now complete data gives the same bytes: ranking, emission, root, leaves.
        problems, _notes = verify_checkpoint(checkpoint)
        assert problems == [], (checkpoint.pk, problems)
        assert checkpoint.meta["verification"]["ok"]
    assert not Score.objects.filter(late=True).exists()
    # Every snapshot of every closed period is in exactly one checkpoint.
    closed = Snapshot.objects.filter(period_start__lt=checkpoints[-1].period_end)
    leaves = dict(CheckpointLeaf.objects.values("snapshot_id").annotate(n=Count("id")).values_list("snapshot_id", "n"))
    assert closed.exists()
    assert {pk: leaves.get(pk, 0) for pk in closed.values_list("pk", flat=True)} == {
        pk: 1 for pk in closed.values_list("pk", flat=True)
    }


def _dt(epoch: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC)
