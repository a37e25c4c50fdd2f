"""Helpers for tests that run the node as real subprocesses: free ports, process trees, waiting."""

import json
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


ROOT = Path(__file__).resolve().parents[2]


def repo_copy(tmp_path: Path) -> Path:
    """The project's files as a fresh clone has them (tracked and new; no .env, no databases),
    in tmp_path/repo."""
    import shutil

    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    target = tmp_path / "repo"
    for name in filter(None, (raw.decode() for raw in files)):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def user_env() -> dict[str, str]:
    """An operator's shell: none of the suite's database, settings or pytest variables."""
    drop = ("PYTEST_VERSION", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ENV_FILE", "SQLITE_PATH")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("DJANGO_SUPERUSER_")}


def synthetic_pipeline_env(
    worker_env: dict, tmp_path: Path, *, scope_key: str, interval: int, horizon: int, **settings
) -> dict:
    """Environment for the four workers on a synthetic 1 s tick feed with one prediction config
    (written to tmp_path), the local example models, and `settings` (periods, graces) on top."""
    configs = tmp_path / "configs.json"
    configs.write_text(
        json.dumps(
            [
                {
                    "scope_key": scope_key,
                    "scope_template": {"subject": "BTC"},
                    "interval_seconds": interval,
                    "horizon_seconds": horizon,
                }
            ]
        )
    )
    return {
        **worker_env,
        "FEED_SOURCE": "synthetic",
        "FEED_SUBJECTS": "BTC",
        "FEED_KIND": "tick",
        "FEED_GRANULARITY": "1s",
        "FEED_POLL_SECONDS": "1",
        "PREDICTION_CONFIGS_PATH": str(configs),
        "MODEL_GATEWAY": "local",
        "WORKER_HEARTBEAT_SECONDS": "1",
        **{key: str(value) for key, value in settings.items()},
    }
