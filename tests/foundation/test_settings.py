import os
import subprocess

from django.conf import settings
from django.db import connection

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-like-secret-0123456789-abcdefghij",
    "ALLOWED_HOSTS": "node.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def run_check(manage_py, *args, **env):
    merged = {**os.environ, **env}
    return subprocess.run([*manage_py, "check", *args], env=merged, capture_output=True, text=True, timeout=60)


def test_check_deploy_is_clean_with_production_like_settings(manage_py):
    result = run_check(manage_py, "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_debug_with_a_public_host_is_an_error(manage_py):
    result = run_check(manage_py, **{**PRODUCTION_ENV, "DEBUG": "true"})
    assert result.returncode != 0
    assert "coordinator.E010" in result.stderr


def test_the_default_secret_key_with_debug_off_is_an_error(manage_py):
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = run_check(manage_py, **env)
    assert result.returncode != 0
    assert "coordinator.E011" in result.stderr


def test_sqlite_is_set_up_for_several_processes():
    if connection.vendor != "sqlite":
        return
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in options["init_command"]
    assert options["timeout"] >= 5


def test_postgres_connections_carry_an_application_name():
    if connection.vendor != "postgresql":
        return
    assert settings.DATABASES["default"]["OPTIONS"]["application_name"].startswith("coordinator:")


def test_an_empty_metrics_directory_means_in_process_metrics(manage_py, tmp_path):
    # .env.example ships `PROMETHEUS_MULTIPROC_DIR=`: prometheus-client alone would treat it as
    # set and write counter_<pid>.db files into the working directory.
    code = "from coordinator_site import metrics; metrics.FEED_RECORDS.labels('s').inc(); print('ok')"
    result = subprocess.run(
        [*manage_py, "shell", "-c", code],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert list(tmp_path.iterdir()) == []
