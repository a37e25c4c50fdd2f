"""Gunicorn settings, all from the environment (documented in docs/operations.md).

Used by `manage.py run_node` (the embedded default) and by the `web` service of
docker-compose.yml. Logs go to stdout in the node's format: LOG_LEVEL, and LOG_FORMAT=json for
one JSON object per line (the same formatter as Django's, coordinator_site.logging).
"""

import os
import sys
from pathlib import Path

# The project is importable wherever gunicorn starts; the working directory stays the caller's,
# like the workers' (relative paths such as sqlite:///demo.sqlite3 mean the same file for all).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from coordinator_site.logging import stdout_logging


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean (true/false)")


wsgi_app = "coordinator_site.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
workers = int(os.environ.get("GUNICORN_WORKERS") or os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "5"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Workers write their heartbeat file to tmpfs, not the (possibly slow or read-only) disk.
_shm = "/dev/shm"  # noqa: S108 - gunicorn's documented choice for worker_tmp_dir
worker_tmp_dir = _shm if os.path.isdir(_shm) else None
preload_app = False
# gunicorn >= 24 opens a control socket in $HOME by default; the node does not use it.
control_socket_disable = True

_access_log = _env_bool("GUNICORN_ACCESS_LOG", True)
_level = os.environ.get("LOG_LEVEL", "INFO").upper()

# propagate=False: Django's own LOGGING also puts a handler on the root logger.
logconfig_dict = stdout_logging(
    level=_level,
    fmt=os.environ.get("LOG_FORMAT", "text"),
    loggers={
        "gunicorn.error": {"level": _level, "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {
            "level": "INFO" if _access_log else "CRITICAL",
            "handlers": ["stdout"] if _access_log else [],
            "propagate": False,
        },
    },
)


def child_exit(server, worker):
    """A gunicorn worker exited: drop its live gauges from the shared metrics directory."""
    from coordinator_site.metrics import mark_process_dead

    mark_process_dead(worker.pid)
