"""Wake-ups instead of polling (DESIGN.md §12): PostgreSQL LISTEN/NOTIFY, short polling elsewhere.

A stage that makes work for the next one calls `notify(channel)` in its transaction (the
notification is delivered at COMMIT, and not at all on rollback). A worker waits with
`Waiter.wait(seconds)`: it returns as soon as a notification arrives on one of its channels, or
after `seconds`. A lost notification (a worker restarting between the COMMIT and its LISTEN)
costs latency only: every wait is bounded by the caller, who then looks for due work anyway.
On SQLite there is no notification: `wait` just sleeps (the workers poll every `--sleep` there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.db import connection

log = logging.getLogger("coordinator.wakeup")

# Channels: who notifies, who listens.
INPUTS = "coordinator_inputs"  # run_predict wrote an Input -> run_score (its resolvable_at)
CONFIGS = "coordinator_configs"  # prediction configs changed -> run_predict
SCORES = "coordinator_scores"  # run_score made Inputs terminal -> run_checkpoint
TAPE = "coordinator_tape"  # run_feed stored tape records -> run_predict (event ticks)


def notify(channel: str, payload: str = "") -> None:
    """Queue a notification on `channel` for the current transaction (sent at COMMIT; in
    autocommit at once). No-op on backends without LISTEN/NOTIFY."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])


class Waiter:
    """Waits for notifications on some channels over its own connection (PostgreSQL), or sleeps."""

    def __init__(self, channels: Iterable[str], *, stop=None) -> None:
        self.channels = list(channels)
        self.woken_by: set[str] = set()  # channels notified since last consumed (see `consume`)
        self.stop = stop
        self._conn = None

    def _listen(self):
        if self._conn is None or self._conn.closed:
            conn = connection.get_new_connection(connection.get_connection_params())
            conn.autocommit = True
            for channel in self.channels:
                conn.execute(f'LISTEN "{channel}"')
            self._conn = conn
        return self._conn

    def wait(self, seconds: float) -> bool:
        """Block up to `seconds`; True when woken by a notification (or a stop), False on timeout."""
        seconds = max(0.0, seconds)
        if connection.vendor != "postgresql" or not self.channels:
            self._sleep(seconds)
            return False
        deadline = time.monotonic() + seconds
        try:
            conn = self._listen()
            # Short slices so a SIGTERM (the stop flag) takes effect promptly.
            while (remaining := deadline - time.monotonic()) > 0:
                if self.stop:
                    return True
                woke = {n.channel for n in conn.notifies(timeout=min(remaining, 0.5), stop_after=1)}
                if woke:  # drained only once that generator is closed: it holds the connection
                    self.woken_by |= woke | self._drain(conn)
                    return True
            return False
        except Exception:
            log.warning("wake-up connection failed; falling back to a plain sleep", exc_info=True)
            self.close()
            self._sleep(max(0.0, deadline - time.monotonic()))
            return False

    @staticmethod
    def _drain(conn) -> set[str]:
        """Several notifications may be queued for one wake-up: consume them without waiting;
        returns their channels."""
        # timeout=0 would mean "no timeout"
        return {extra.channel for extra in conn.notifies(timeout=0.001, stop_after=100)}

    def consume(self, channel: str) -> bool:
        """Whether `channel` was notified since the last call for it (then forgotten)."""
        if channel in self.woken_by:
            self.woken_by.discard(channel)
            return True
        return False

    def _sleep(self, seconds: float) -> None:
        if self.stop is not None and hasattr(self.stop, "sleep"):
            self.stop.sleep(seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: S110 - closing a broken connection
                pass
            self._conn = None
