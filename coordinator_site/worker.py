"""The shared worker loop (DESIGN.md §5), after healthchecks' `sendalerts`.

A worker command subclasses `WorkerCommand` and implements `run_unit(batch=...)`, which does one
unit of work and returns a `UnitResult` (or a bool): found work -> call again at once; idle ->
sleep. The loop owns everything else: `--once`/`--sleep`/`--batch`, SIGTERM/SIGINT (finish the
current unit, then exit), sleeping in short slices, `close_old_connections()` each pass, a
`WorkerHeartbeat` row, one log line per unit, and exceptions recorded with capped backoff so a
failing unit never kills the worker.
"""

import logging
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils import timezone

from coordinator_site.models import WorkerHeartbeat

SLEEP_SLICE_SECONDS = 0.2


@dataclass
class UnitResult:
    """What one unit of work did: whether it found work, and counts for the log and heartbeat."""

    found: bool
    counts: dict[str, int] = field(default_factory=dict)


class StopFlag:
    """Set by SIGTERM/SIGINT; sleeps are cut in short slices so a stop takes effect within ~1 s."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self, *_args) -> None:
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._event.wait(min(SLEEP_SLICE_SECONDS, remaining))


class Heartbeat:
    """The worker's row in WorkerHeartbeat, written at most every WORKER_HEARTBEAT_SECONDS."""

    def __init__(self, name: str) -> None:
        now = timezone.now()
        self.counters: dict[str, int] = {}
        self._last_write = 0.0
        self.row, _ = WorkerHeartbeat.objects.update_or_create(
            name=name,
            host=socket.gethostname(),
            pid=os.getpid(),
            defaults={"started_at": now, "last_beat_at": now, "stopped_at": None, "counters": {}},
        )

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.counters[key] = self.counters.get(key, 0) + int(value)

    def beat(self, *, error: str | None = None, force: bool = False, stopped: bool = False) -> None:
        if not (force or error or stopped) and time.monotonic() - self._last_write < settings.WORKER_HEARTBEAT_SECONDS:
            return
        now = timezone.now()
        fields = {"last_beat_at": now, "counters": self.counters}
        if error is not None:
            fields.update(last_error=error[-4000:], last_error_at=now)
        if stopped:
            fields["stopped_at"] = now
        WorkerHeartbeat.objects.filter(pk=self.row.pk).update(**fields)
        self._last_write = time.monotonic()


class WorkerCommand(BaseCommand):
    """Base class of `run_feed`, `run_predict`, `run_score`, `run_checkpoint`."""

    worker_name: str = ""
    default_sleep: float = 1.0
    default_batch: int = 100

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one unit of work, then exit.")
        parser.add_argument("--sleep", type=float, default=self.default_sleep, help="Seconds to sleep when idle.")
        parser.add_argument("--batch", type=int, default=self.default_batch, help="Work items per unit.")
        self.add_worker_arguments(parser)

    def add_worker_arguments(self, parser) -> None:
        """Hook for extra command-line options."""

    def setup(self, options: dict) -> None:
        """Hook run once before the loop (after the heartbeat row exists)."""

    def teardown(self) -> None:
        """Hook run once after the loop, also after an error."""

    def run_unit(self, *, batch: int) -> UnitResult | bool:
        raise NotImplementedError

    def handle(self, *args, **options) -> None:
        self.log = logging.getLogger(f"worker.{self.worker_name}")
        self.stop = StopFlag()
        previous = {sig: signal.signal(sig, self.stop.set) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.heartbeat = Heartbeat(self.worker_name)
        self.log.info("%s started (pid %s)", self.worker_name, os.getpid())
        try:
            self.setup(options)
            self.loop(once=options["once"], sleep=options["sleep"], batch=options["batch"])
        finally:
            self.teardown()
            self.heartbeat.beat(stopped=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.log.info("%s stopped", self.worker_name)

    def loop(self, *, once: bool, sleep: float, batch: int) -> None:
        failures = 0
        while not self.stop:
            close_old_connections()
            started = time.monotonic()
            try:
                result = self.run_unit(batch=batch)
            except Exception as exc:
                failures += 1
                backoff = min(settings.WORKER_ERROR_BACKOFF_MAX_SECONDS, sleep * 2 ** min(failures, 10))
                self.log.exception(
                    "%s unit failed (%s in a row); retrying in %.1fs", self.worker_name, failures, backoff
                )
                self.heartbeat.add({"errors": 1})
                self._beat_safely(error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
                if once:
                    raise
                self.stop.sleep(backoff)
                continue
            failures = 0
            if isinstance(result, bool):
                result = UnitResult(found=result)
            elapsed_ms = (time.monotonic() - started) * 1000
            self.heartbeat.add({"units": 1, **result.counts})
            if result.found or result.counts:
                counts = " ".join(f"{k}={v}" for k, v in result.counts.items())
                self.log.info("%s unit found=%s %s in %.1f ms", self.worker_name, result.found, counts, elapsed_ms)
            self._beat_safely()
            if once:
                break
            if not result.found:
                self.stop.sleep(sleep)

    def _beat_safely(self, *, error: str | None = None) -> None:
        """A heartbeat must never take the worker down (e.g. the database restarting)."""
        try:
            self.heartbeat.beat(error=error)
        except Exception:
            close_old_connections()
            self.log.warning("%s could not write its heartbeat", self.worker_name, exc_info=True)
