"""`manage.py worker_health <name>`: exit 0 if that worker is alive (for compose healthchecks).

`name` is a worker command (`run_feed`, resolved to the name its heartbeat carries) or a heartbeat
name as such. The newest heartbeat of that name on this host (a container's own worker;
`--any-host` to look across hosts) is judged by the one health model (`monitoring.health`):
against the cadence the worker announced, so a worker that sleeps 30 s is not judged by another's
interval. Red (stopped, silent for 1.5 times its cadence, failing) exits 1 with the reason; amber
(late, a failing unit) exits 0 and says so.
"""

import socket

from django.core.management import get_commands, load_command_class
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from coordinator_site.worker import WorkerCommand


def heartbeat_name(name: str) -> str:
    """The heartbeat name of worker command `name` (its `worker_name`), else `name` itself."""
    app = get_commands().get(name)
    if app is not None:
        command = load_command_class(app, name)
        if isinstance(command, WorkerCommand) and command.worker_name:
            return command.worker_name
    return name


class Command(BaseCommand):
    help = "Exit 0 when the named worker's heartbeat is recent, 1 (with the reason) otherwise."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Worker command (e.g. run_feed) or heartbeat name.")
        parser.add_argument(
            "--max-age", type=float, default=None, help="Deprecated and ignored: each worker's own cadence decides."
        )
        parser.add_argument("--any-host", action="store_true", help="Accept a heartbeat from any host.")

    def handle(self, *args, name: str, any_host: bool, **options) -> None:
        from coordinator_site.health import RED
        from coordinator_site.models import WorkerHeartbeat
        from monitoring.health import worker_check

        name = heartbeat_name(name)
        rows = WorkerHeartbeat.objects.filter(name=name)
        where = "any host" if any_host else f"host {socket.gethostname()}"
        if not any_host:
            rows = rows.filter(host=socket.gethostname())
        beat = rows.order_by("-last_beat_at").first()
        if beat is None:
            raise CommandError(f"{name}: no heartbeat on {where}")
        check = worker_check(beat, now=timezone.now())
        if check.level == RED:
            raise CommandError(f"{name} (pid {beat.pid}): {check.reason}")
        age = check.values["heartbeat_age_seconds"]
        self.stdout.write(f"{name} (pid {beat.pid}) {check.level}: {check.reason}; last heartbeat {age:.0f}s ago")
