"""`manage.py run_score` as real processes: exactly once under concurrency, and after kill -9."""

import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from coordinator_site.models import WorkerHeartbeat
from predictions.choices import InputStatus, PredictionStatus
from predictions.models import Input, Prediction
from scoring.models import Leaderboard, Score, Snapshot
from scoring.selectors import leaderboard_latest
from scoring.services import rebuild_leaderboard, score_batch
from tests.factories import make_model
from tests.scoring.helpers import bulk_dataset


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def start_workers(manage_py, env, count, *, batch):
    processes = []
    for _ in range(count):
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [*manage_py, "run_score", "--batch", str(batch), "--sleep", "0.1"],
            env={**env, "SCORE_LEASE_SECONDS": "3"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process.log = log
        processes.append(process)
    return processes


def stop(processes):
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
            process.log.seek(0)
            output = process.log.read().decode(errors="replace")
            process.log.close()
        assert process.returncode in (0, -signal.SIGKILL), output[-3000:]


def drained():
    return not Input.objects.filter(status=InputStatus.RECEIVED).exists()


def totals():
    """Everything scoring produced, in a form two runs can be compared by."""
    predictions = Prediction.objects.count()
    scores = Score.objects.count()
    assert scores == predictions
    assert Score.objects.values("prediction_id").distinct().count() == predictions
    assert not Prediction.objects.filter(status=PredictionStatus.PENDING).exists()
    snapshots = {
        (s.model.model_id, s.period_start): (
            s.prediction_count,
            s.counts,
            s.result_summary["value_count"],
            round(s.result_summary["value"], 9),
            round(s.result_summary["coverage"], 9),
        )
        for s in Snapshot.objects.select_related("model")
    }
    assert sum(v[0] for v in snapshots.values()) == predictions  # nothing double-counted
    board = leaderboard_latest()
    entries = {
        e["model_id"]: (
            e["rank"],
            e["prediction_count"],
            e["scored_count"],
            {k: round(v, 9) for k, v in e["metrics"].items()},
        )
        for e in board.entries
    }
    return {
        "statuses": Counter(Prediction.objects.values_list("status", flat=True)),
        "score_sum": round(sum(v for v in Score.objects.values_list("value", flat=True) if v is not None), 6),
        "snapshots": snapshots,
        "leaderboard": entries,
    }


def reset_scoring():
    Score.objects.all().delete()
    Snapshot.objects.all().delete()
    Leaderboard.objects.all().delete()
    Prediction.objects.filter(status=PredictionStatus.SCORED).update(status=PredictionStatus.PENDING)
    Input.objects.update(
        status=InputStatus.RECEIVED,
        actuals=None,
        resolved_at=None,
        claimed_by="",
        lease_until=None,
        attempts=0,
        next_attempt_at=None,
        last_error="",
    )


def single_process_totals():
    reset_scoring()
    while score_batch(worker="single", batch=500).claimed:
        pass
    rebuild_leaderboard()
    return totals()


def test_four_workers_score_every_prediction_exactly_once(manage_py, worker_env):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent claiming is a Postgres property; SQLite runs writers one at a time")
    models = [make_model(model_id=f"m{i:02d}") for i in range(20)]
    bulk_dataset(start=timezone.now() - timedelta(hours=20), inputs=2000, models=models, spacing=timedelta(seconds=30))
    assert Prediction.objects.count() == 40_000

    workers = start_workers(manage_py, worker_env, 4, batch=20)
    try:
        assert wait_for(drained, timeout=600), "workers did not drain the queue"
        # Each worker rebuilds once it finds the queue empty; wait for all to go idle.
        time.sleep(1.0)
    finally:
        stop(workers)
    assert not Input.objects.exclude(claimed_by="").exists()  # every lease released
    # Each Input was resolved by exactly one process, and the work really was shared.
    resolved_by = [b.counters.get("resolved", 0) for b in WorkerHeartbeat.objects.filter(name="run_score")]
    assert sum(resolved_by) == 2000
    assert sum(1 for n in resolved_by if n) >= 2
    concurrent = totals()
    assert single_process_totals() == concurrent


def test_kill_9_mid_pass_then_restart_gives_the_same_totals(manage_py, worker_env):
    models = [make_model(model_id=f"k{i:02d}") for i in range(10)]
    bulk_dataset(start=timezone.now() - timedelta(hours=10), inputs=600, models=models, spacing=timedelta(seconds=30))

    (worker,) = start_workers(manage_py, worker_env, 1, batch=5)
    try:
        assert wait_for(lambda: Score.objects.count() >= 600, timeout=120), "worker made no progress"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        stop([worker])
    resolved = Input.objects.filter(status=InputStatus.RESOLVED).count()
    assert 0 < resolved < 600, "the kill did not land mid-pass"
    # No Input is half-scored: scores exist exactly for the predictions of resolved Inputs.
    assert Score.objects.count() == Prediction.objects.filter(input__status=InputStatus.RESOLVED).count()
    assert not Score.objects.filter(input__status=InputStatus.RECEIVED).exists()

    (restarted,) = start_workers(manage_py, worker_env, 1, batch=5)
    try:
        assert wait_for(drained, timeout=300), "restarted worker did not finish"
        time.sleep(1.0)
    finally:
        stop([restarted])
    after_crash = totals()
    assert single_process_totals() == after_crash
