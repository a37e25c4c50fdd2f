"""A generated tournament workspace runs one round through a node: the RUNBOOK's commands as
separate processes (migrate, tournament open / infer / upload-truth, run_score, status) on the
workspace's own .env and its own SQLite file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.e2e.processes import ROOT, user_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="long: run once, in the PostgreSQL pass"),
]


def manage(env, *args, timeout=180):
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_tournament_workspace_scores_its_sample_round_through_a_node(tmp_path):
    init = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "init_workspace", "tour-e2e", "--pack", "tournament",
         "--output", str(tmp_path / "ws")],
        env=user_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stdout + init.stderr
    challenge = tmp_path / "ws" / "crunch-tour-e2e"
    node = tmp_path / "ws" / "crunch-node-tour-e2e"
    env = {
        **user_env(),
        "ENV_FILE": str(node / ".env"),
        "PYTHONPATH": f"{challenge}:{node}",
        "SQLITE_PATH": str(tmp_path / "node.sqlite3"),
    }
    doctor = manage(env, "doctor")
    assert "all 18 checks passed" in doctor
    assert "ok    tournament" in doctor
    manage(env, "migrate", "-v", "0")
    rounds = node / "rounds"
    assert "round sample-round opened: 10 sample(s)" in manage(
        env, "tournament", "open", str(rounds / "sample_round.json")
    )
    assert "INFERENCE_DONE" in manage(env, "tournament", "infer", "sample-round")
    uploaded = manage(env, "tournament", "upload-truth", "sample-round", str(rounds / "sample_truth.csv"))
    assert "10/10 sample(s) stored" in uploaded
    manage(env, "run_score", "--once")
    report = json.loads(manage(env, "tournament", "status", "sample-round"))
    assert report["status"] == "SCORED"
    models = report["results"]["models"]
    assert set(models) == {"constant", "logistic"}
    assert models["constant"]["combined"] == pytest.approx(0.25)
    assert models["logistic"]["rank"] == 1  # the sample truth follows momentum, as the logistic model does
    assert report["progress"]["predictions"] == {"SCORED": 20}
    assert Path(node / ".env").read_text().count("TOURNAMENT_") >= 4
