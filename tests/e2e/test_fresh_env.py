"""A fresh `.env` made from `.env.example` (what `make run` does) gives a working project."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_copy_of_env_example_runs_on_the_sqlite_default(manage_py, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text().replace("SECRET_KEY=\n", "SECRET_KEY=" + "s" * 50 + "\n"))
    # As a user's shell: no pytest marker (so the file is read), no DATABASE_URL of the suite.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_VERSION", "DATABASE_URL")}
    env.update(ENV_FILE=str(env_file), SQLITE_PATH=str(tmp_path / "fresh.sqlite3"))
    result = subprocess.run(
        [
            *manage_py,
            "shell",
            "-v",
            "0",
            "-c",
            "from django.db import connection; print(connection.vendor, connection.settings_dict['NAME'])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sqlite", str(tmp_path / "fresh.sqlite3")]
