"""What the event-tick test models record (they run in the test's process, in gateway threads).

A model calls `enter(model, method, data)` when a call starts and `leave(model)` when it ends;
a call that starts while another call of the same model is running is an overlap.
"""

import threading

_lock = threading.Lock()
calls: list[tuple[str, str, str | None]] = []  # (model, method, newest record ts_event of a tick)
overlaps: list[tuple[str, str]] = []  # (model, method started while another call ran)
_running: dict[str, str] = {}


def enter(model: str, method: str, data=None) -> None:
    newest = None
    if isinstance(data, dict) and data.get("records"):
        newest = data["records"][-1].get("ts_event")
    with _lock:
        if model in _running:
            overlaps.append((model, method))
        _running[model] = method
        calls.append((model, method, newest))


def leave(model: str) -> None:
    with _lock:
        _running.pop(model, None)


def reset() -> None:
    with _lock:
        calls.clear()
        overlaps.clear()
        _running.clear()


def count(model: str, method: str) -> int:
    with _lock:
        return sum(1 for m, name, _ts in calls if m == model and name == method)


def ticked(model: str) -> list[str | None]:
    """The newest record ts_event of each tick `model` received, in order."""
    with _lock:
        return [ts for m, name, ts in calls if m == model and name == "tick"]
