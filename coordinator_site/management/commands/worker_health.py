"""`manage.py worker_health <name> --max-age S`: exit 0 if that worker is alive (for healthchecks).

`name` is a worker command (`run_feed`, resolved to the name its heartbeat carries) or a heartbeat
name as such. Alive = the newest heartbeat of that name on this host (a container's own worker; `--any-host` to
look across hosts) is not marked stopped and beat within `--max-age` seconds.
"""

import socket
from datetime import timedelta

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
        parser.add_argument("--max-age", type=float, default=60.0, help="Oldest acceptable heartbeat (s).")
        parser.add_argument("--any-host", action="store_true", help="Accept a heartbeat from any host.")

    def handle(self, *args, name: str, max_age: float, any_host: bool, **options) -> None:
        from coordinator_site.models import WorkerHeartbeat

        name = heartbeat_name(name)
        rows = WorkerHeartbeat.objects.filter(name=name)
        where = "any host" if any_host else f"host {socket.gethostname()}"
        if not any_host:
            rows = rows.filter(host=socket.gethostname())
        beat = rows.order_by("-last_beat_at").first()
        if beat is None:
            raise CommandError(f"{name}: no heartbeat on {where}")
        age = (timezone.now() - beat.last_beat_at).total_seconds()
        if beat.stopped_at is not None:
            raise CommandError(f"{name} (pid {beat.pid}): stopped at {beat.stopped_at.isoformat()}")
        if beat.last_beat_at < timezone.now() - timedelta(seconds=max_age):
            raise CommandError(f"{name} (pid {beat.pid}): last heartbeat {age:.0f}s ago (max {max_age:.0f}s)")
        error = f"; last error: {beat.last_error.splitlines()[0]}" if beat.last_error else ""
        self.stdout.write(f"{name} (pid {beat.pid}) healthy: last heartbeat {age:.0f}s ago{error}")
