"""`manage.py run_node`: the whole node in one process tree (the embedded default, DESIGN.md §5).

Migrates, loads the prediction configs, collects static files, then supervises the web server
(gunicorn, gunicorn.conf.py) and the four workers as child processes: a crashed child is
restarted with backoff, SIGTERM/SIGINT stops them all. `--child NAME=COMMAND` replaces the
workers (tests run the shared loop's test worker this way).
"""

import os
import shlex
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from coordinator_site.metrics import MULTIPROC_DIR_ENV, mark_process_dead
from coordinator_site.preflight import feed_preflight_error
from coordinator_site.supervisor import ChildSpec, Supervisor

WORKERS = (
    ("feed", "run_feed"),
    ("predict", "run_predict"),
    ("score", "run_score"),
    ("checkpoint", "run_checkpoint"),
)


def prepare_metrics_dir() -> str:
    """The prometheus-client multiprocess directory shared by every child (docs/operations.md):
    PROMETHEUS_MULTIPROC_DIR if set, else a fresh temporary one; emptied, so counters start at 0."""
    path = os.environ.get(MULTIPROC_DIR_ENV) or tempfile.mkdtemp(prefix="coordinator-metrics-")
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink()
    return path


def parse_child(value: str) -> ChildSpec:
    """`NAME=COMMAND ARGS...` -> a child running `manage.py COMMAND ARGS...`."""
    name, sep, command = value.partition("=")
    argv = shlex.split(command)
    if not sep or not name.strip() or not argv:
        raise CommandError(f"--child expects NAME=COMMAND (a manage.py command), got {value!r}")
    return ChildSpec(name=name.strip(), argv=manage_argv(*argv))


def manage_argv(*args: str) -> list[str]:
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), *args]


def banner(bind: str) -> str:
    """Where to look once the node is up (a wildcard bind is shown as localhost)."""
    host, _, port = bind.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):  # noqa: S104 - only displayed
        host = "127.0.0.1"
    base = f"http://{host}:{port}"
    return (
        f"run_node: starting the web server on {bind} and the workers. Open:\n"
        f"  pages        {base}/\n"
        f"  API          {base}/reports/leaderboard   (docs: {base}/api/docs/)\n"
        f"  health       {base}/healthz\n"
        f"  admin        {base}/admin/   (first create a user: make superuser, or manage.py createsuperuser)\n"
        f"Stop with Ctrl-C (SIGINT) or SIGTERM."
    )


class Command(BaseCommand):
    help = "Run the web server and the four workers together, supervised (the embedded default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--bind",
            default=os.environ.get("GUNICORN_BIND", "127.0.0.1:8000"),
            help="Web server address (default: GUNICORN_BIND or 127.0.0.1:8000).",
        )
        parser.add_argument("--no-web", action="store_true", help="Do not start the web server.")
        parser.add_argument(
            "--child",
            action="append",
            default=[],
            metavar="NAME=COMMAND",
            help="Run this manage.py command as a child instead of the four workers (repeatable).",
        )
        parser.add_argument("--skip-migrate", action="store_true", help="Do not migrate or load configs first.")
        parser.add_argument("--skip-preflight", action="store_true", help="Start even if the feed cannot work.")
        parser.add_argument("--backoff-max", type=float, default=30.0, help="Cap of the restart backoff (s).")
        parser.add_argument(
            "--stop-timeout", type=float, default=5.0, help="Seconds between SIGTERM and SIGKILL on stop."
        )

    def handle(self, *args, **options) -> None:
        if not options["skip_preflight"] and (problem := feed_preflight_error()):
            raise CommandError(problem)
        children = [parse_child(value) for value in options["child"]]
        if not children:
            missing = [command for _, command in WORKERS if command not in get_commands()]
            if missing:
                raise CommandError(f"worker commands not installed: {', '.join(missing)}")
            children = [ChildSpec(name=name, argv=manage_argv(command)) for name, command in WORKERS]
        if not options["no_web"]:
            web = [sys.executable, "-m", "gunicorn", "-c", str(settings.BASE_DIR / "gunicorn.conf.py")]
            children.insert(0, ChildSpec(name="web", argv=[*web, "--bind", options["bind"]]))

        if not options["skip_migrate"]:
            self.prepare(web=not options["no_web"])
        # Children open their own connections; the parent holds none while it supervises.
        connections.close_all()
        if not options["no_web"]:
            self.stdout.write(banner(options["bind"]))

        metrics_dir = prepare_metrics_dir()
        os.environ[MULTIPROC_DIR_ENV] = metrics_dir  # for the children, and mark_process_dead here
        supervisor = Supervisor(
            children,
            backoff_max=options["backoff_max"],
            stop_timeout=options["stop_timeout"],
            json_lines=settings.LOG_FORMAT == "json",
            on_exit=mark_process_dead,  # an exited child's live gauges go; its counters keep counting
        )
        self.stdout.write(f"run_node: metrics of every process in {metrics_dir} (served at /metrics)")
        supervisor.run()

    def prepare(self, *, web: bool) -> None:
        """Migrate, load the prediction configs, collect static files for the web server."""
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("run_node: database migrated")
        if "load_prediction_configs" in get_commands():
            call_command("load_prediction_configs")
        else:
            self.stdout.write("run_node: no load_prediction_configs command; prediction configs not loaded")
        if web:
            call_command("collectstatic", interactive=False, verbosity=0)
