import os
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_health(settings):
    """Each test computes node health from its own rows (no verdict cached by another test)."""
    from monitoring.health import forget_health

    settings.HEALTH_CACHE_SECONDS = 0
    forget_health()
    yield
    forget_health()


@pytest.fixture
def worker_env(transactional_db):
    """Environment for a subprocess (manage.py ...) that must use this test's database."""
    settings_dict = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{settings_dict['NAME']}"
    else:
        user = settings_dict.get("USER") or "postgres"
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def manage_py():
    """argv prefix to run this project's manage.py with the current interpreter."""
    return [sys.executable, str(ROOT / "manage.py")]
