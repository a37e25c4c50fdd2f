"""bench/e2e_latency.py keeps running: a few seconds, few models, both modes, on PostgreSQL.

The bench asserts nothing about speed, and neither does this test: it checks that the script runs
the real workers end to end and prints every figure with samples behind it (a figure with none
means a stage of the pipeline stopped producing what the bench measures)."""

import re
import subprocess
import sys

import pytest
from django.db import connection

from tests.e2e.processes import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the bench runs on PostgreSQL"),
]

FIGURES = [
    "(a) source publish -> record committed",
    "(b) slot -> all predictions committed",
    "(b) scheduling delay: slot -> cycle start",
    "(b) cycle work: cycle start -> committed",
    "(c) newest record age at the read (send time)",
    "(c) newest record age by Input.as_of (whole s)",
    "(d) resolvable_at -> score committed",
]
NUMBER = r"\s+\|\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)"


def test_the_e2e_latency_bench_runs_both_modes_and_prints_every_figure(worker_env):
    settings = connection.settings_dict
    server = f"postgres://{settings.get('USER') or 'postgres'}@{settings.get('HOST') or '127.0.0.1'}:{settings.get('PORT') or 5432}/postgres"
    argv = [sys.executable, str(ROOT / "bench" / "e2e_latency.py"), "--seconds", "4", "--models", "3", "--horizon", "1"]
    prefix = f"{settings['NAME']}_e2ebench"[:50]
    done = subprocess.run(
        [*argv, "--database-prefix", prefix],
        env={**worker_env, "DATABASE_URL": server},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for figure in FIGURES:
        row = re.search(re.escape(figure) + NUMBER + NUMBER, output)
        assert row, f"{figure!r} missing or without samples:\n{output}"
        assert int(row.group(1)) > 0, output  # stream: samples
        assert int(row.group(4)) > 0, output  # poll: samples
    assert re.search(r"stream: \d+ Inputs for \d+ slots", output), output
    assert re.search(r"poll: \d+ Inputs for \d+ slots", output), output
    assert "load average" in output
    with connection.cursor() as cursor:  # its throwaway databases are gone
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s", [prefix + "%"])
        assert cursor.fetchone()[0] == 0
