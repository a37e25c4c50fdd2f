"""Helpers for tests that run the node as real subprocesses: free ports, process trees, waiting."""

import os
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a live process, None if it is gone (zombies count as gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return None if state in ("Z", "X") else (state, int(ppid))


def alive(pid: int) -> bool:
    return _stat(pid) is not None


def descendants(root: int) -> set[int]:
    """Every live process below `root` in the process tree (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(int(entry))):
            children.setdefault(info[1], []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Output:
    """Collects a subprocess's merged stdout in a thread, so its pipe never fills up."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def contains(self, needle: str) -> bool:
        return any(needle in line for line in self.lines)


def start(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, Output]:
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, Output(process)


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """Last-resort cleanup after a failed assertion: kill the whole tree."""
    if process.poll() is None:
        for pid in descendants(process.pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        process.kill()
        process.wait(timeout=timeout)
