"""A model registered while a leaderboard is being computed (PostgreSQL, real concurrent transactions).

The predict cycle registers a new model with the cycle's clock, which may lie seconds behind a
board computed while the models were answering. Replay lists a model on the boards created after
its first_seen_at, so the registration waits for a board in progress and takes its first_seen_at
after it: the board that did not list the model live is the board a replay does not list it on.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from predictions.gateway.base import ModelIdentity
from predictions.models import ParticipantModel
from predictions.services import upsert_model_identities
from scoring.models import Leaderboard
from scoring.services import rebuild_leaderboard
from tests.factories import make_model

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks: PostgreSQL"),
]
BOUND = 30  # seconds; generous on a loaded 2-core machine


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def waits(pids: dict[str, int], name: str) -> bool:
    """Whether the thread `name`'s database session waits for a lock (its own, not another test's)."""
    if name not in pids:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pids[name]])
        return cursor.fetchone()[0] > 0


def wait_until(predicate) -> None:
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def in_thread(target, pids: dict[str, int], name: str) -> threading.Thread:
    errors: list[BaseException] = []

    def run():
        try:
            pids[name] = backend_pid()
            target()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors
    thread.start()
    return thread


def test_a_model_registered_during_a_rebuild_is_first_seen_after_that_board():
    old = make_model(model_id="old")
    cycle_clock = timezone.now() - timedelta(seconds=5)  # the predict cycle began before the board
    release = threading.Event()
    row_held = threading.Event()

    def hold_old_row():
        # Keeps the rebuild's transaction open: its last write (old's overall_score) waits here.
        with transaction.atomic():
            list(ParticipantModel.objects.select_for_update().filter(pk=old.pk))
            row_held.set()
            release.wait(BOUND)

    def register():
        identity = ModelIdentity("new", "New", "cruncher-new", "Cruncher new", "new_d1")
        with transaction.atomic():
            upsert_model_identities(identities=[identity], now=cycle_clock)

    pids: dict[str, int] = {}
    holder = in_thread(hold_old_row, pids, "holder")
    assert row_held.wait(BOUND)
    rebuild = in_thread(rebuild_leaderboard, pids, "rebuild")
    wait_until(lambda: waits(pids, "rebuild"))  # the rebuild waits for old's row, its board computed
    registration = in_thread(register, pids, "registration")
    wait_until(lambda: waits(pids, "registration"))  # the registration waits for the rebuild
    release.set()
    for thread in (holder, rebuild, registration):
        thread.join(BOUND)
        assert not thread.is_alive()
        assert not thread.errors, thread.errors

    board = Leaderboard.objects.get()
    new = ParticipantModel.objects.get(model_id="new")
    assert [e["model_id"] for e in board.entries] == ["old"]
    assert new.first_seen_at > board.created_at
    assert new.last_seen_at == cycle_clock


def test_a_model_registered_before_a_rebuild_is_on_its_board():
    identity = ModelIdentity("new", "New", "cruncher-new", "Cruncher new", "new_d1")
    with transaction.atomic():
        upsert_model_identities(identities=[identity], now=timezone.now())
    board = rebuild_leaderboard()
    new = ParticipantModel.objects.get(model_id="new")
    assert [e["model_id"] for e in board.entries] == ["new"]
    assert new.first_seen_at < board.created_at
