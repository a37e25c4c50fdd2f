"""verify_e2e and worker_health against rows made by the factories."""

import socket
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from scoring.models import Leaderboard
from tests.factories import T0, make_checkpoint, make_feed_record, make_heartbeat, make_score

pytestmark = pytest.mark.django_db
NOW = T0 + timedelta(days=10)


def verify(capsys, *args):
    try:
        call_command("verify_e2e", "--timeout", "0", *args)
        error = None
    except CommandError as exc:
        error = str(exc)
    return error, capsys.readouterr().out


def make_full_pipeline():
    make_feed_record(ts_event=NOW - timedelta(seconds=5), ts_ingested=NOW - timedelta(seconds=3))
    score = make_score()
    Leaderboard.objects.create(
        created_at=NOW,
        entries=[{"model_id": score.model.model_id, "model_name": score.model.name, "rank": 1, "metrics": {}}],
    )


@time_machine.travel(NOW, tick=False)
def test_verify_e2e_names_everything_missing_on_an_empty_database(capsys):
    error, out = verify(capsys, "--checkpoint")
    assert error == "verify_e2e: missing after 0s: feed, predictions, leaderboard, checkpoint"
    assert "MISSING feed: no feed record yet" in out
    assert "MISSING predictions: 0 scored of 0 predictions (need 1)" in out


@time_machine.travel(NOW, tick=False)
def test_verify_e2e_passes_and_prints_what_it_found(capsys):
    make_full_pipeline()
    error, out = verify(capsys)
    assert error is None, out
    assert "ok      feed: newest record synthetic/BTC/candle/1m" in out
    assert "ingested 3s ago" in out
    assert "ok      predictions: 1 scored of 1 predictions" in out
    assert "ok      leaderboard: 1 models" in out
    assert "checkpoint" not in out


@time_machine.travel(NOW, tick=False)
def test_verify_e2e_treats_an_old_feed_record_as_stale(capsys):
    make_full_pipeline()
    make_feed_record(ts_event=NOW - timedelta(hours=1), ts_ingested=NOW - timedelta(minutes=10))
    error, out = verify(capsys, "--fresh-seconds", "2")
    assert error == "verify_e2e: missing after 0s: feed"
    assert "ingested 3s ago (fresh = within 2s)" in out


@time_machine.travel(NOW, tick=False)
def test_verify_e2e_checkpoint_option_requires_a_checkpoint(capsys):
    make_full_pipeline()
    assert verify(capsys, "--checkpoint")[0] == "verify_e2e: missing after 0s: checkpoint"
    make_checkpoint()
    error, out = verify(capsys, "--checkpoint")
    assert error is None
    assert "ok      checkpoint: #" in out


def test_verify_e2e_rejects_nonsense_options(capsys):
    assert "must be" in verify(capsys, "--min-scored", "0")[0]


@time_machine.travel(NOW, tick=False)
def test_worker_health_accepts_a_recent_heartbeat_on_this_host(capsys):
    make_heartbeat(
        name="indexer", host=socket.gethostname(), last_beat_at=NOW - timedelta(seconds=10), cadence_seconds=30
    )
    call_command("worker_health", "indexer")
    assert "indexer (pid" in capsys.readouterr().out


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("beat", "args", "message"),
    [
        (None, [], "indexer: no heartbeat on host"),
        ({"last_beat_at": NOW - timedelta(seconds=90)}, [], r"no heartbeat for 1 m 30 s \(expected every 30 s\)"),
        ({"last_beat_at": NOW, "stopped_at": NOW}, [], "stopped"),
        ({"last_beat_at": NOW, "host": "elsewhere"}, [], "no heartbeat on host"),
        ({"last_beat_at": NOW - timedelta(seconds=90), "host": "elsewhere"}, ["--any-host"], "1 m 30 s"),
    ],
)
def test_worker_health_fails_with_the_reason(beat, args, message):
    if beat is not None:
        make_heartbeat(**{"name": "indexer", "host": socket.gethostname(), "cadence_seconds": 30, **beat})
    with pytest.raises(CommandError, match=message):
        call_command("worker_health", "indexer", *args)


@time_machine.travel(NOW, tick=False)
def test_worker_health_looks_at_the_newest_beat_only():
    host = socket.gethostname()
    make_heartbeat(name="indexer", host=host, last_beat_at=NOW - timedelta(seconds=5), stopped_at=NOW)
    make_heartbeat(name="indexer", host=host, last_beat_at=NOW - timedelta(hours=1))
    with pytest.raises(CommandError, match="stopped"):
        call_command("worker_health", "indexer")
    make_heartbeat(name="indexer", host=host, last_beat_at=NOW)
    call_command("worker_health", "indexer")
    assert timezone.now() == NOW


@time_machine.travel(NOW, tick=False)
def test_worker_health_resolves_a_worker_command_to_its_heartbeat_name(capsys):
    # run_test_worker beats as "test_worker": compose names the command, not the heartbeat.
    make_heartbeat(name="test_worker", host=socket.gethostname(), last_beat_at=NOW - timedelta(seconds=2))
    call_command("worker_health", "run_test_worker")
    assert "test_worker (pid" in capsys.readouterr().out
