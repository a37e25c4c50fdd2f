"""The shared worker loop (DESIGN.md §5), after healthchecks' `sendalerts`.

A worker command subclasses `WorkerCommand` and implements `run_unit(batch=...)`, which does one
unit of work and returns a `UnitResult` (or a bool): found work -> call again at once; idle ->
sleep. The loop owns everything else: `--once`/`--sleep`/`--batch`, SIGTERM/SIGINT (finish the
current unit, then exit), sleeping in short slices, `close_old_connections()` each pass, a
`WorkerHeartbeat` row (written every WORKER_HEARTBEAT_SECONDS, during sleeps too, and carrying
the worker's own cadence), process metrics, and exceptions recorded with capped backoff so a
failing unit never kills the worker.

Logs (docs/operations.md): one INFO summary line per worker per WORKER_LOG_SUMMARY_SECONDS
(units, work found, errors, counts, timings), each unit at DEBUG, WARNING/ERROR only for what
needs a human. The fields ride along as `extra={"fields": ...}` for LOG_FORMAT=json.
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
from django.db import close_old_connections, connection
from django.utils import timezone

from coordinator_site import metrics
from coordinator_site.health import worker_cadence_seconds
from coordinator_site.models import WorkerHeartbeat
from coordinator_site.wakeup import Waiter

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
        self.requested_at: float | None = None  # time.monotonic() of the first stop request

    def set(self, *_args) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def sleep(self, seconds: float, *, each_slice=None) -> None:
        """Sleep up to `seconds`, waking at once on a stop; `each_slice()` runs between slices."""
        deadline = time.monotonic() + seconds
        while not self._event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._event.wait(min(SLEEP_SLICE_SECONDS, remaining))
            if each_slice is not None and not self._event.is_set():
                each_slice()


class Heartbeat:
    """The worker's row in WorkerHeartbeat, written at most every WORKER_HEARTBEAT_SECONDS."""

    def __init__(self, name: str, *, cadence_seconds: float) -> None:
        now = timezone.now()
        self.name = name
        self.counters: dict[str, int] = {}
        self.consecutive_errors = 0
        self._last_write = time.monotonic()
        self.row, _ = WorkerHeartbeat.objects.update_or_create(
            name=name,
            host=socket.gethostname(),
            pid=os.getpid(),
            defaults={
                "started_at": now,
                "last_beat_at": now,
                "stopped_at": None,
                "counters": {},
                "cadence_seconds": cadence_seconds,
                "consecutive_errors": 0,
            },
        )
        metrics.worker_beat(name, cadence_seconds=cadence_seconds)

    def add(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.counters[key] = self.counters.get(key, 0) + int(value)

    def beat(self, *, error: str | None = None, force: bool = False, stopped: bool = False) -> None:
        if not (force or error or stopped) and time.monotonic() - self._last_write < settings.WORKER_HEARTBEAT_SECONDS:
            return
        now = timezone.now()
        fields = {"last_beat_at": now, "counters": self.counters, "consecutive_errors": self.consecutive_errors}
        if error is not None:
            fields.update(last_error=error[-4000:], last_error_at=now)
        if stopped:
            fields["stopped_at"] = now
        WorkerHeartbeat.objects.filter(pk=self.row.pk).update(**fields)
        self._last_write = time.monotonic()
        metrics.worker_beat(self.name, stopped=stopped)


class IntervalSummary:
    """Counts and timings of the units since the last summary line (one INFO line per interval)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.monotonic()
        self.units = self.found = self.errors = 0
        self.counts: dict[str, int] = {}
        self.busy_ms = 0.0
        self.max_ms = 0.0

    def add(self, *, found: bool, counts: dict[str, int], elapsed_ms: float, error: bool = False) -> None:
        self.units += 1
        self.found += int(found)
        self.errors += int(error)
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + int(value)
        self.busy_ms += elapsed_ms
        self.max_ms = max(self.max_ms, elapsed_ms)

    def due(self, interval: float) -> bool:
        return time.monotonic() - self.started >= interval

    def fields(self) -> dict:
        return {
            "interval_s": round(time.monotonic() - self.started, 1),
            "units": self.units,
            "found": self.found,
            "errors": self.errors,
            "busy_ms": round(self.busy_ms, 1),
            "max_unit_ms": round(self.max_ms, 1),
            **self.counts,
        }


class WorkerCommand(BaseCommand):
    """Base class of `run_feed`, `run_predict`, `run_score`, `run_checkpoint`."""

    worker_name: str = ""
    default_sleep: float = 1.0
    default_batch: int = 100
    # The longest one unit of work may legitimately take (no beat while it runs): with the
    # heartbeat interval it makes the worker's cadence, which health judges it against.
    unit_budget_seconds: float = 5.0
    # Wake-ups (DESIGN.md §12): on PostgreSQL an idle worker sleeps until `next_due_seconds()`
    # (capped by WAKEUP_FALLBACK_SECONDS) or a notification on one of these channels, beating
    # while it waits; on SQLite (or with WAKEUP_ENABLED=false) it polls every `--sleep` as before.
    wakeup_channels: tuple[str, ...] = ()

    def next_due_seconds(self) -> float | None:
        """Seconds until this worker's next known due work (None: not known, wait the fallback)."""
        return None

    def cadence_seconds(self) -> float:
        return worker_cadence_seconds(self.unit_budget_seconds)

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
        metrics.set_process_role(self.worker_name)
        cadence = self.cadence_seconds()
        self.heartbeat = Heartbeat(self.worker_name, cadence_seconds=cadence)
        self.summary = IntervalSummary()
        self.log.info(
            "%s started (pid %s), heartbeat every %.1fs, expected cadence %.1fs",
            self.worker_name,
            os.getpid(),
            settings.WORKER_HEARTBEAT_SECONDS,
            cadence,
        )
        try:
            self.setup(options)
            self.loop(once=options["once"], sleep=options["sleep"], batch=options["batch"])
        finally:
            self.teardown()
            if hasattr(self, "waiter"):
                self.waiter.close()
            self.heartbeat.beat(stopped=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.log_summary()
            stop_s = f", {time.monotonic() - self.stop.requested_at:.2f}s after the stop request" if self.stop else ""
            self.log.info("%s stopped%s", self.worker_name, stop_s)

    def log_summary(self) -> None:
        """The interval's one INFO line (text: key=value; JSON: the same keys as fields)."""
        if not self.summary.units:
            self.summary.reset()
            return
        fields = self.summary.fields()
        text = " ".join(f"{key}={value}" for key, value in fields.items())
        self.log.info(
            "%s summary: %s", self.worker_name, text, extra={"fields": {"worker": self.worker_name, **fields}}
        )
        self.summary.reset()

    def loop(self, *, once: bool, sleep: float, batch: int) -> None:
        failures = 0
        while not self.stop:
            close_old_connections()
            started = time.monotonic()
            try:
                result = self.run_unit(batch=batch)
            except Exception as exc:
                failures += 1
                elapsed = time.monotonic() - started
                metrics.worker_unit(self.worker_name, seconds=elapsed, error=True)
                self.summary.add(found=False, counts={}, elapsed_ms=elapsed * 1000, error=True)
                backoff = min(settings.WORKER_ERROR_BACKOFF_MAX_SECONDS, sleep * 2 ** min(failures, 10))
                self.log.exception(
                    "%s unit failed (%s in a row); retrying in %.1fs", self.worker_name, failures, backoff
                )
                self.heartbeat.add({"errors": 1})
                self.heartbeat.consecutive_errors = failures
                self._beat_safely(error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
                if once:
                    raise
                self.stop.sleep(backoff, each_slice=self._beat_safely)
                continue
            failures = 0
            self.heartbeat.consecutive_errors = 0
            if isinstance(result, bool):
                result = UnitResult(found=result)
            elapsed = time.monotonic() - started
            metrics.worker_unit(self.worker_name, seconds=elapsed, error=False)
            self.heartbeat.add({"units": 1, **result.counts})
            self.summary.add(found=result.found, counts=result.counts, elapsed_ms=elapsed * 1000)
            if result.found or result.counts:
                counts = " ".join(f"{k}={v}" for k, v in result.counts.items())
                self.log.debug("%s unit found=%s %s in %.1f ms", self.worker_name, result.found, counts, elapsed * 1000)
            self._beat_safely()
            if self.summary.due(settings.WORKER_LOG_SUMMARY_SECONDS):
                self.log_summary()
            if once:
                break
            if not result.found:
                self.idle_wait(sleep, unit_started=started)

    def idle_wait(self, sleep: float, *, unit_started: float | None = None) -> None:
        """Sleep until work is due: the next due time, a notification, or the fallback bound.

        `unit_started` (monotonic): when the unit that found nothing began looking."""
        if not self.wakeup_channels or connection.vendor != "postgresql" or not settings.WAKEUP_ENABLED:
            self.stop.sleep(sleep, each_slice=self._beat_safely)
            return
        if not hasattr(self, "waiter"):
            self.waiter = Waiter(self.wakeup_channels, stop=self.stop)
        asked = time.monotonic()  # `due` counts from here, not from when the query returned
        try:
            due = self.next_due_seconds()
        except Exception:
            self.log.warning("%s could not read its next due time", self.worker_name, exc_info=True)
            due = None
        fallback = settings.WAKEUP_FALLBACK_SECONDS
        if due is not None and due <= 0 and unit_started is not None and asked + due >= unit_started:
            return  # it became due while the unit was looking: look again now, not after a pause
        # Work due now that the unit did not find (claimed elsewhere, say): a short pause, no spin.
        # Work due soon is waited for exactly (a wake-up a few microseconds early costs no pause).
        wait = fallback if due is None else min(due if due > 0 else min(sleep, 0.05), fallback)
        deadline = asked + wait
        while not self.stop and (remaining := deadline - time.monotonic()) > 0:
            if self.waiter.wait(min(remaining, settings.WORKER_HEARTBEAT_SECONDS)):
                return
            if deadline > time.monotonic():  # still waiting; at the deadline the unit comes first
                self._beat_safely()

    def _beat_safely(self, *, error: str | None = None) -> None:
        """A heartbeat must never take the worker down (e.g. the database restarting)."""
        try:
            self.heartbeat.beat(error=error)
        except Exception:
            close_old_connections()
            self.log.warning("%s could not write its heartbeat", self.worker_name, exc_info=True)
