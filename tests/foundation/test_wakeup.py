"""Wake-ups: a notification committed by one connection wakes a waiter on another at once;
without one the wait ends at its bound (a lost notification costs latency only)."""

import logging
import threading
import time

import pytest
from django.db import connection, transaction

from coordinator_site.wakeup import Waiter, notify
from coordinator_site.worker import Heartbeat, StopFlag, WorkerCommand

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_wait_without_a_notification_ends_at_its_bound():
    waiter = Waiter(["coordinator_test"])
    started = time.monotonic()
    assert waiter.wait(0.3) is False
    assert time.monotonic() - started >= 0.25
    waiter.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_a_committed_notification_wakes_the_waiter_and_a_rolled_back_one_does_not():
    waiter = Waiter(["coordinator_test"])
    waiter.wait(0)  # LISTEN before anything is sent
    woke = []

    def wait():
        started = time.monotonic()
        woke.append((waiter.wait(30), time.monotonic() - started))

    def notify_then_roll_back():
        with transaction.atomic():
            notify("coordinator_test")
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        notify_then_roll_back()
    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    assert not woke  # the rolled-back notification never arrived
    with transaction.atomic():
        notify("coordinator_test", "x")
    thread.join(timeout=30)
    [(notified, after)] = woke
    assert notified is True
    assert after < 20  # woken by the notification, not by the 30 s bound
    waiter.close()


class _DueNow(WorkerCommand):
    """A worker whose work is always due: with wake-ups it waits only a short pause."""

    worker_name = "wakeup_test"
    wakeup_channels = ("coordinator_test",)

    def next_due_seconds(self) -> float:
        return 0.0


def _idle_worker() -> _DueNow:
    worker = _DueNow()
    worker.stop = StopFlag()
    worker.heartbeat = Heartbeat(worker.worker_name, cadence_seconds=1.0)
    worker.log = logging.getLogger("test")
    return worker


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_an_idle_worker_waits_for_its_due_time_with_wake_ups_and_polls_every_sleep_without(settings):
    worker = _idle_worker()
    started = time.monotonic()
    worker.idle_wait(5.0)  # due now: a short pause, not the 5 s sleep
    assert time.monotonic() - started < 4
    assert worker.waiter._conn is not None  # it listens
    worker.waiter.close()

    settings.WAKEUP_ENABLED = False  # e.g. behind a transaction-pooling PgBouncer: no LISTEN
    worker = _idle_worker()
    started = time.monotonic()
    worker.idle_wait(0.6)
    assert time.monotonic() - started >= 0.55  # the whole --sleep, as on SQLite
    assert not hasattr(worker, "waiter")


class _RecordingWaiter(Waiter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.asked.append(seconds)
        return super().wait(seconds)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_work_due_in_a_few_milliseconds_is_waited_for_exactly_not_for_the_idle_pause():
    worker = _idle_worker()
    worker.next_due_seconds = lambda: 0.01  # a wake-up a hair early finds the slot 10 ms away
    worker.waiter = _RecordingWaiter(worker.wakeup_channels, stop=worker.stop)
    worker.idle_wait(0.5)
    assert worker.waiter.asked
    assert max(worker.waiter.asked) <= 0.01  # not the 50 ms pause kept for work due now
    worker.waiter.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_the_due_time_counts_from_when_it_was_asked_not_from_when_the_answer_came():
    worker = _idle_worker()

    def slow_due() -> float:
        time.sleep(1.0)  # a slow query on a loaded machine
        return 1.0  # measured when asked

    worker.next_due_seconds = slow_due
    started = time.monotonic()
    worker.idle_wait(5.0)
    assert time.monotonic() - started < 1.8  # about 1 s; counting from the answer would be 2 s
    worker.waiter.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_the_waiter_remembers_which_channels_woke_it_until_each_is_consumed():
    waiter = Waiter(["coordinator_a", "coordinator_b"])
    waiter.wait(0)  # LISTEN before anything is sent
    with transaction.atomic():
        notify("coordinator_a")
        notify("coordinator_b")
    assert waiter.wait(30) is True
    assert waiter.consume("coordinator_a") is True
    assert waiter.consume("coordinator_a") is False  # forgotten once consumed
    assert waiter.consume("coordinator_b") is True
    waiter.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_work_that_became_due_while_the_unit_looked_is_looked_at_again_without_the_pause():
    """A unit that began a hair before the slot finds nothing; the slot is due when it ends: no
    50 ms pause. Work that was already due when the unit began (claimed elsewhere) still pauses."""
    worker = _idle_worker()
    worker.waiter = _RecordingWaiter(worker.wakeup_channels, stop=worker.stop)
    worker.next_due_seconds = lambda: -0.002  # due 2 ms ago
    worker.idle_wait(0.5, unit_started=time.monotonic() - 0.5)  # the unit began 500 ms ago
    assert worker.waiter.asked == []  # straight back to the unit
    worker.next_due_seconds = lambda: -0.5  # due 500 ms ago
    worker.idle_wait(0.5, unit_started=time.monotonic() - 0.002)  # it began after the work was due
    assert worker.waiter.asked
    assert max(worker.waiter.asked) <= 0.05  # the short pause, no spin
    worker.waiter.close()
