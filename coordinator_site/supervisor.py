"""A small process supervisor for `manage.py run_node` (the embedded default, DESIGN.md §5).

It runs a list of named child commands, each in its own process group, and:

- prefixes every line a child prints with the child's name (or, with LOG_FORMAT=json, adds a
  `"process"` key to each JSON line), so one stdout carries the whole node;
- restarts a child that exits with a capped exponential backoff, logged; the backoff resets
  once a child has stayed up for `stable_seconds`;
- on SIGTERM/SIGINT sends SIGTERM to every child's process group, waits `stop_timeout` seconds,
  then SIGKILLs what is left — so no grandchild (e.g. a gunicorn worker) outlives the node;
- on Linux, asks the kernel to SIGTERM each child if the supervisor itself dies (PDEATHSIG).

It imports nothing from the apps: it only runs command lines.
"""

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("supervisor")

POLL_SECONDS = 0.1
PR_SET_PDEATHSIG = 1


@dataclass
class ChildSpec:
    """A named child command (argv), with extra environment variables for it alone."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    reader: threading.Thread | None = None


def _die_with_parent() -> None:
    """preexec hook: the kernel sends SIGTERM to this child if the supervisor dies (Linux only)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


class Supervisor:
    """Run `children` until `stop()` (or SIGTERM/SIGINT when `run(install_signals=True)`)."""

    def __init__(
        self,
        children: list[ChildSpec],
        *,
        env: dict[str, str] | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        stable_seconds: float = 30.0,
        stop_timeout: float = 5.0,
        json_lines: bool = False,
        output=None,
        on_exit=None,
    ) -> None:
        names = [spec.name for spec in children]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique, got {names}")
        self.children = [_Child(spec) for spec in children]
        self.env = dict(os.environ if env is None else env)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_seconds = stable_seconds
        self.stop_timeout = stop_timeout
        self.json_lines = json_lines
        self.output = output or sys.stdout
        self.on_exit = on_exit  # called with a child's pid once it has exited (e.g. drop its live metrics)
        self._output_lock = threading.Lock()
        self._stop = threading.Event()
        self._width = max((len(n) for n in names), default=0)

    # --- public ---------------------------------------------------------------------------

    def stop(self, *_args) -> None:
        """Ask the supervisor to stop all children and return from `run()` (signal-safe)."""
        self._stop.set()

    def run(self, *, install_signals: bool = True) -> int:
        """Start every child, keep them running, stop them all on a stop request. Returns 0."""
        previous = {}
        if install_signals:
            previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                self._start(child)
            while not self._stop.is_set():
                self._check_children()
                self._stop.wait(POLL_SECONDS)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def pids(self) -> dict[str, int | None]:
        """Current pid of each child (None while it waits for a restart)."""
        return {c.spec.name: (c.process.pid if c.process and c.process.poll() is None else None) for c in self.children}

    # --- internals ------------------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        child.process = subprocess.Popen(
            child.spec.argv,
            env={**self.env, **child.spec.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we signal the group, grandchildren included
            preexec_fn=_die_with_parent,  # prctl only; safe between fork and exec
        )
        child.reader = threading.Thread(
            target=self._pump, args=(child.spec.name, child.process.stdout), daemon=True, name=f"pump-{child.spec.name}"
        )
        child.reader.start()
        log.info("started %s (pid %s): %s", child.spec.name, child.process.pid, " ".join(child.spec.argv))

    def _check_children(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._start(child)
                continue
            code = child.process.poll()
            if code is None:
                if now - child.started_at >= self.stable_seconds:
                    child.failures_in_a_row = 0
                continue
            # The leader is gone; anything it left in its group goes with it.
            self._signal_group(child.process.pid, signal.SIGKILL)
            self._exited(child.process.pid)
            uptime = now - child.started_at
            if uptime >= self.stable_seconds:
                child.failures_in_a_row = 0
            delay = min(self.backoff_max, self.backoff_initial * 2**child.failures_in_a_row)
            child.failures_in_a_row += 1
            child.restart_at = now + delay
            log.warning(
                "%s (pid %s) exited with %s after %.1fs; restarting in %.1fs (restart #%s)",
                child.spec.name,
                child.process.pid,
                _describe_exit(code),
                uptime,
                delay,
                child.restarts + 1,
            )

    def _stop_all(self) -> None:
        running = [c for c in self.children if c.process and c.process.poll() is None]
        log.info("stopping %s", ", ".join(c.spec.name for c in running) or "nothing")
        for child in running:
            self._signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.1fs: SIGKILL", child.spec.name, self.stop_timeout)
        for child in self.children:
            if child.process:
                # Kill the group even when the leader exited cleanly: nothing may outlive the node.
                self._signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait()
                self._exited(child.process.pid)
        for child in self.children:
            if child.reader:
                child.reader.join(timeout=1)
        log.info("all children stopped")

    def _exited(self, pid: int) -> None:
        if self.on_exit is not None:
            try:
                self.on_exit(pid)
            except Exception:
                log.warning("exit hook failed for pid %s", pid, exc_info=True)

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _pump(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._write(name, line)
        stream.close()

    def _write(self, name: str, line: str) -> None:
        if self.json_lines:
            try:
                payload = json.loads(line)
                if not isinstance(payload, dict):
                    raise ValueError
            except ValueError:
                payload = {"message": line}
            text = json.dumps({"process": name, **payload})
        else:
            text = f"{name.ljust(self._width)} | {line}"
        with self._output_lock:
            self.output.write(text + "\n")
            self.output.flush()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
