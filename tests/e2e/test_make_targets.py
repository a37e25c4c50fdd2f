"""The Makefile as an operator uses it, in a copy of the repository (a fresh clone's files).

`make demo` must stop as a whole when its `make` process gets SIGTERM; `make superuser` and
`make api-key` must work without a terminal, DEMO=1 included.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.processes import ROOT, alive, descendants, free_port, repo_copy, start, stop, user_env, wait_for

VENV = Path(sys.executable).parent.parent  # the suite's virtualenv: `make` must not install another

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make"),
]


def make(repo: Path, *args: str, **env) -> list[str]:
    # -o venv: use the suite's virtualenv as it is (never pip install from a test).
    return ["make", "-C", str(repo), f"VENV={VENV}", "-o", "venv", *args]


def test_sigterm_to_make_demo_stops_the_whole_node(tmp_path):
    repo = repo_copy(tmp_path)
    port = free_port()
    process, output = start(make(repo, "demo", f"PORT={port}"), user_env())
    try:
        up = wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz"), timeout=240, interval=0.5)
        assert up, f"the demo never served on port {port}:\n{output.text}"
        tree = descendants(process.pid)
        assert len(tree) >= 5, f"expected run_node, gunicorn and the workers under make: {tree}"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=90)
        left = wait_for(lambda: not any(alive(pid) for pid in tree), timeout=60)
        assert left, f"still running after SIGTERM to make: {[p for p in tree if alive(p)]}\n{output.text}"
    finally:
        for pid in descendants(process.pid):
            os.kill(pid, signal.SIGKILL)
        stop(process)


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


def test_superuser_without_a_terminal_uses_the_django_superuser_variables(tmp_path):
    repo = repo_copy(tmp_path)
    env = {
        **user_env(),
        "DJANGO_SUPERUSER_USERNAME": "ops",
        "DJANGO_SUPERUSER_PASSWORD": "a long demo secret",
        "DJANGO_SUPERUSER_EMAIL": "ops@example.com",
    }
    result = subprocess.run(
        make(repo, "superuser", "DEMO=1"), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(repo / "demo.sqlite3") as db:
        assert db.execute("SELECT is_superuser, is_staff FROM auth_user WHERE username = 'ops'").fetchall() == [(1, 1)]


def test_superuser_without_a_terminal_or_variables_says_how(tmp_path):
    repo = repo_copy(tmp_path)
    result = subprocess.run(
        make(repo, "superuser", "DEMO=1"), env=user_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert "DJANGO_SUPERUSER_USERNAME" in result.stdout
    assert "Superuser creation skipped" not in result.stdout + result.stderr


def test_api_key_demo_creates_a_key_in_the_demo_database(tmp_path):
    repo = repo_copy(tmp_path)
    result = subprocess.run(
        make(repo, "api-key", "DEMO=1", "NAME=ci"), env=user_env(), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cnk_" in result.stdout
    with sqlite3.connect(repo / "demo.sqlite3") as db:
        assert db.execute("SELECT name, scope FROM reports_apikey").fetchall() == [("ci", "admin")]


def test_model_runner_venv_is_built_once_per_version(tmp_path):
    """`make model-runner-venv` (the real model node's virtualenv) is cached by a stamp keyed on
    the version: nothing to do once built, a rebuild for another version. Dry runs only."""
    venv = tmp_path / "model-runner-venv"

    def dry_run(*args: str) -> subprocess.CompletedProcess:
        argv = ["make", "-C", str(ROOT), f"MODEL_RUNNER_VENV={venv}", *args, "model-runner-venv"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    plan = dry_run("-n")
    assert "pip install -q crunch-model-runner==0.4.2" in plan.stdout, plan.stdout + plan.stderr
    assert dry_run("-q").returncode == 1  # not built: make would run the recipe

    venv.mkdir()
    (venv / ".installed-crunch-model-runner-0.4.2").touch()
    assert dry_run("-q").returncode == 0  # built: nothing to do
    assert "crunch-model-runner==0.4.3" in dry_run("-n", "MODEL_RUNNER_VERSION=0.4.3").stdout
