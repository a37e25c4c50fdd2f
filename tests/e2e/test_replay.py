"""Replay of a range the live workers processed: real `run_feed` / `run_predict` / `run_score` /
`run_checkpoint` subprocesses on a synthetic feed with short periods, then `manage.py replay` over
the settled periods. Scores, snapshots, retained leaderboards and checkpoints come out
byte-identical, and the live tables are unchanged (row counts and checksums).

PostgreSQL only (concurrent writers; the production database).
"""

import json
import signal
import subprocess
from pathlib import Path

import pytest
from django.db import close_old_connections, connection

from checkpoints.models import Checkpoint
from predictions.models import Input
from replay.models import ReplayReport
from scoring.models import Leaderboard, Score
from tests.e2e.processes import start, stop, synthetic_pipeline_env, wait_for
from tests.replay.helpers import live_checksum

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent workers: PostgreSQL only"),
]
PERIOD = 12  # checkpoint interval (s)


def fresh(query):
    close_old_connections()
    return query()


def test_replay_of_what_the_live_workers_did_is_byte_identical_and_touches_nothing(worker_env, manage_py, tmp_path):
    env = synthetic_pipeline_env(
        worker_env,
        tmp_path,
        scope_key="BTC-replay",
        interval=1,
        horizon=2,
        SNAPSHOT_PERIOD_SECONDS="3",
        CHECKPOINT_INTERVAL_SECONDS=str(PERIOD),
        GROUND_TRUTH_GRACE_SECONDS="4",  # some Inputs may expire: replayed too
    )
    loaded = subprocess.run([*manage_py, "load_prediction_configs"], env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    workers = [
        start([*manage_py, command, "--sleep", "0.2"], env)
        for command in ("run_feed", "run_predict", "run_score", "run_checkpoint")
    ]
    try:
        assert wait_for(lambda: fresh(lambda: Checkpoint.objects.count() >= 3), timeout=PERIOD * 8), workers[3][1].text
    finally:
        for process, _output in workers:
            process.send_signal(signal.SIGTERM)
        for process, _output in workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(process)
    close_old_connections()
    checkpoints = list(Checkpoint.objects.order_by("period_start"))
    start_at, end_at = checkpoints[0].period_start, checkpoints[-1].period_end
    assert Leaderboard.objects.filter(created_at__gte=start_at, created_at__lt=end_at).exists()
    before = live_checksum()

    done = subprocess.run(
        [*manage_py, "replay", "--from", start_at.isoformat(), "--to", end_at.isoformat(), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert done.returncode == 0, _differences(report)
    close_old_connections()
    assert live_checksum() == before
    assert report["identical"] is True
    scored = Score.objects.filter(performed_at__gte=start_at, performed_at__lt=end_at).count()
    assert scored > 0
    assert report["scores"]["compared"] == scored
    assert report["scores"]["differ"] == 0
    assert report["snapshots"]["compared"] > 0
    assert report["snapshots"]["differ"] == 0
    assert (
        report["leaderboards"]["compared"]
        == Leaderboard.objects.filter(created_at__gte=start_at, created_at__lt=end_at).count()
    )
    assert report["leaderboards"]["differ"] == 0
    assert [c["live_id"] for c in report["checkpoints"]["checkpoints"]] == [c.pk for c in checkpoints]
    for item in report["checkpoints"]["checkpoints"]:
        assert item["identical"], item
        assert item["root_identical"]
        assert item["replayed_root"] == item["stored_root"]
    # Every Input of a settled period is finished; later ones are not part of the replay.
    assert report["unfinished_inputs"] == Input.objects.filter(received_at__lt=end_at, status="RECEIVED").count() == 0
    assert ReplayReport.objects.get(pk=report["report_id"]).identical is True

    # A backtest of an example model over the same range: exactly the scores it got live.
    momentum = Path(__file__).resolve().parents[2] / "examples" / "models" / "momentum"
    done = subprocess.run(
        [
            *manage_py,
            "backtest",
            "--model",
            str(momentum),
            "--from",
            start_at.isoformat(),
            "--to",
            end_at.isoformat(),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    backtest = json.loads(done.stdout)["models"]["backtest:momentum"]
    live = backtest["live_model"]
    answered = Score.objects.filter(
        model__model_id="momentum", success=True, performed_at__gte=start_at, performed_at__lt=end_at
    ).count()
    assert answered > 0
    assert live["inputs_in_common"] >= answered
    assert live["identical_scores"] == live["inputs_in_common"], live
    assert [c["period_start"] for c in backtest["checkpoints"]] == [c.period_start.isoformat() for c in checkpoints]
    close_old_connections()
    assert live_checksum() == before


def _differences(report):
    return json.dumps(
        {
            "errors": report["errors"],
            "scores": report["scores"]["examples"][:3],
            "snapshots": report["snapshots"]["examples"][:3],
            "leaderboards": [b for b in report["leaderboards"]["boards"] if not b["identical"]][:2],
            "checkpoints": [c for c in report["checkpoints"]["checkpoints"] if not c["identical"]],
        },
        indent=1,
    )[:6000]
