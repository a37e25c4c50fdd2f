"""A scaffolded workspace starts as generated: its own SECRET_KEY, an offline feed, and a doctor
that runs the same start-up checks as run_node (so `ok` means the RUNBOOK's next command works)."""

import io
import os
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from .helpers import generate
from .test_doctor import run_doctor

pytestmark = pytest.mark.django_db


def test_the_generated_env_has_its_own_secret_key_and_an_offline_feed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = generate(tmp_path / "a")
    second = generate(tmp_path / "b")
    assert len(first.env["SECRET_KEY"]) >= 50
    assert first.env["SECRET_KEY"] != second.env["SECRET_KEY"]
    assert first.env["FEED_SOURCE"] == "synthetic"
    text = (first.node_dir / ".env").read_text()
    assert "FEED_SOURCE=pyth and PYTH_API_KEY=" in text  # the documented switch to the pack's live feed


def test_a_spec_that_names_its_feed_source_keeps_it(tmp_path):
    result = generate(tmp_path, feed={"source": "binance", "kind": "candle", "granularity": "1m"})
    assert result.env["FEED_SOURCE"] == "binance"


def test_doctor_fails_pyth_without_a_key_as_run_node_would(tmp_path):
    workspace = generate(tmp_path)
    failure, lines = run_doctor(workspace.env, FEED_SOURCE="pyth", PYTH_API_KEY="")
    assert failure is not None
    assert lines["feed source"].startswith("FAIL")
    assert "PYTH_API_KEY is empty" in lines["feed source"]


def test_doctor_fails_the_default_secret_key_that_would_stop_migrate(tmp_path):
    workspace = generate(tmp_path)
    failure, lines = run_doctor(workspace.env, SECRET_KEY="")
    assert failure is not None
    assert lines["start-up checks"].startswith("FAIL")
    assert "coordinator.E011" in lines["start-up checks"]


def test_init_workspace_prints_paths_that_work_from_where_it_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    call_command("init_workspace", "my-crunch", stdout=out)
    text = out.getvalue()
    node_env = tmp_path / "workspaces" / "my-crunch" / "crunch-node-my-crunch" / ".env"
    assert node_env.is_file()
    assert f"export ENV_FILE={node_env} " in text
    challenge = tmp_path / "workspaces" / "my-crunch" / "crunch-my-crunch"
    assert f"(cd {challenge} && python -m pytest -q)" in text


def test_doctor_then_migrate_start_with_only_the_generated_env(tmp_path, manage_py):
    workspace = generate(tmp_path)
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(ENV_FILE=str(workspace.node_dir / ".env"), PYTHONPATH=workspace.env["PYTHONPATH"],
               SQLITE_PATH=str(tmp_path / "node.sqlite3"))  # fmt: skip
    # In the RUNBOOK's order: doctor on the fresh (empty) database, then migrate.
    doctor = subprocess.run([*manage_py, "doctor"], env=env, capture_output=True, text=True, timeout=300)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "migrations to apply" in doctor.stdout
    migrate = subprocess.run([*manage_py, "migrate", "-v", "0"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert Path(tmp_path / "node.sqlite3").is_file()
