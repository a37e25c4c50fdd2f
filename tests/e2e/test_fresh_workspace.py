"""From a fresh clone: init_workspace, then the generated RUNBOOK's start command, unedited, until
the node has scored predictions on its leaderboard (offline: the workspace's default feed)."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from tests.e2e.processes import alive, descendants, free_port, repo_copy, start, stop, user_env, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="long: run once, in the PostgreSQL pass"),
]


def get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def test_init_workspace_then_the_runbook_start_command_scores_and_ranks(tmp_path):
    repo = repo_copy(tmp_path)
    # A short schedule so one pass fits in a test; the feed is the workspace's own default.
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "spec_version": "1",
        "feed": {"poll_seconds": 1, "backfill_minutes": 5},
        "schedule": [{"scope_key": "btc-fast", "subject": "BTC", "interval_seconds": 5, "horizon_seconds": 10,
                      "step_seconds": 5, "active": True, "order": 0}],
    }))  # fmt: skip
    env = user_env()
    init = subprocess.run(
        [sys.executable, "manage.py", "init_workspace", "e2e-crunch", "--spec", str(spec)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    # The printed next steps, as a user pastes them (the export line and the start command).
    export = next(line.strip() for line in init.stdout.splitlines() if line.strip().startswith("export ENV_FILE="))
    start_line = next(line.strip() for line in init.stdout.splitlines() if "manage.py run_node" in line)
    port = free_port()
    script = (
        f"{export}\nexport GUNICORN_BIND=127.0.0.1:{port}\nexec sh -c '{start_line.replace('python', sys.executable)}'"
    )
    process, output = start(["sh", "-c", f"cd {repo} && {script}"], env)
    try:
        base = f"http://127.0.0.1:{port}"

        # Ranked and scored: the first predictions may fail (a cold model under load times out) and
        # still rank by the missing-answer policy, so wait for both.
        def ranked_and_scored():
            if process.poll() is not None:
                return True
            board = [row for row in (get_json(f"{base}/reports/leaderboard") or []) if row.get("score_ranking")]
            scored = board and get_json(f"{base}/reports/predictions?status=SCORED&limit=5")
            return (board, scored) if scored else None

        found = wait_for(ranked_and_scored, timeout=420, interval=2)
        assert process.poll() is None, f"the start command exited:\n{output.text[-4000:]}"
        assert found, f"no leaderboard with scored predictions after the start command:\n{output.text[-4000:]}"
        board, scored = found
        assert all(row["score_value"] is not None for row in scored)
        assert {row["model_id"] for row in board} <= {"momentum", "mean_reversion", "coin_flip"}
        # Stop it as the terminal would (the chain's shell waits on run_node): SIGTERM to run_node.
        tree = descendants(process.pid)
        node = next(pid for pid in tree if b"run_node" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(node, signal.SIGTERM)
        process.wait(timeout=90)
        assert wait_for(lambda: not any(alive(pid) for pid in tree), timeout=60)
    finally:
        for pid in descendants(process.pid):
            os.kill(pid, signal.SIGKILL)
        stop(process)
