"""The whole node as a real subprocess: `run_node` with the demo settings (.env.demo), a few
seconds' horizon, on the test database (SQLite or Postgres, whichever the suite runs on)."""

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import get_commands
from django.db import close_old_connections

from coordinator_site.models import WorkerHeartbeat
from tests.e2e.processes import alive, descendants, free_port, start, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("run_feed", "run_predict", "run_score", "run_checkpoint", "load_prediction_configs")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(command not in get_commands() for command in NEEDED),
        reason="end-to-end run needs the worker commands, not all on this branch yet: "
        + ", ".join(c for c in NEEDED if c not in get_commands()),
    ),
]


def demo_env() -> dict[str, str]:
    """.env.demo as `make demo` exports it."""
    values = {}
    for line in (ROOT / ".env.demo").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@pytest.fixture
def node(worker_env, manage_py, tmp_path):
    """Start run_node in demo mode on the test database; yields (process, output, env, port)."""
    configs = tmp_path / "configs.json"
    configs.write_text(
        json.dumps(
            [
                {
                    "scope_key": "BTC-e2e-2s-3s",
                    "scope_template": {"subject": "BTC"},
                    "interval_seconds": 2,
                    "horizon_seconds": 3,
                }
            ]
        )
    )
    port = free_port()
    env = {
        **worker_env,
        **{k: v for k, v in demo_env().items() if k != "DATABASE_URL"},
        "PREDICTION_CONFIGS_PATH": str(configs),
        "CHECKPOINT_INTERVAL_SECONDS": "10",
        "SNAPSHOT_PERIOD_SECONDS": "5",  # must divide the checkpoint interval (system check E020)
        "CHECKPOINT_GRACE_SECONDS": "2",
        "WORKER_HEARTBEAT_SECONDS": "1",
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    process, output = start([*manage_py, "run_node", "--bind", f"127.0.0.1:{port}", "--backoff-max", "1"], env)
    try:
        yield process, output, env, port
    finally:
        stop(process)


def http_json(url: str):
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http only
        assert response.status == 200
        return json.loads(response.read())


def scored_count() -> int:
    from predictions.choices import PredictionStatus
    from predictions.models import Prediction

    close_old_connections()
    return Prediction.objects.filter(status=PredictionStatus.SCORED).count()


def test_demo_node_runs_end_to_end_and_stops_cleanly_on_sigterm(node, manage_py):
    process, output, env, port = node
    verify = subprocess.run(
        [*manage_py, "verify_e2e", "--timeout", "120", "--checkpoint"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert verify.returncode == 0, f"{verify.stdout}\n{verify.stderr}\n--- node output ---\n{output.text}"
    assert "ok      leaderboard" in verify.stdout

    board = http_json(f"http://127.0.0.1:{port}/reports/leaderboard")
    assert isinstance(board, list)
    assert board, "the leaderboard over HTTP is empty"
    assert all(isinstance(row["model_id"], str) and "rank" in row for row in board)

    tree = descendants(process.pid)
    assert len(tree) >= 6, f"expected gunicorn (master + worker) and four workers, got {tree}"
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    assert time.monotonic() - sent < 10
    assert process.returncode == 0, output.text
    assert wait_for(lambda: not any(alive(pid) for pid in tree), timeout=1), [pid for pid in tree if alive(pid)]
    for prefix in ("web ", "feed ", "predict ", "score ", "checkpoint "):
        assert any(line.startswith(prefix) for line in output.lines), f"no line from {prefix.strip()}"


def test_a_worker_killed_with_sigkill_is_restarted_and_scoring_continues(node):
    process, output, _env, _port = node
    assert wait_for(lambda: scored_count() > 0, timeout=120), output.text
    score_worker = WorkerHeartbeat.objects.filter(name="run_score", stopped_at__isnull=True).first()
    assert score_worker, output.text
    assert alive(score_worker.pid)
    os.kill(score_worker.pid, signal.SIGKILL)
    killed_at = scored_count()

    def restarted():
        close_old_connections()
        return WorkerHeartbeat.objects.filter(name="run_score").exclude(pid=score_worker.pid).first()

    assert wait_for(restarted, timeout=60), output.text
    assert wait_for(lambda: scored_count() > killed_at, timeout=60), f"no scoring after the restart\n{output.text}"
    assert output.contains(f"(pid {score_worker.pid}) exited with signal SIGKILL")
    assert process.poll() is None
