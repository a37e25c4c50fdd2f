"""`manage.py run_checkpoint` as real processes against the test database."""

import signal
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from checkpoints.models import Checkpoint
from checkpoints.selectors import aligned_period
from coordinator_site.models import WorkerHeartbeat
from predictions.choices import InputStatus
from tests.checkpoints.helpers import add_snapshot, indexed_models
from tests.factories import make_config, make_input
from tests.foundation.test_worker_loop import wait_for

WEEK = timedelta(days=7)


def three_ended_weeks():
    """Snapshots (and resolved inputs) in the three weeks before the current one."""
    current = aligned_period(timezone.now())
    starts = [current.start - k * WEEK for k in (3, 2, 1)]
    models = indexed_models(3)
    config = make_config(next_run_at=current.end)  # its schedule is past every ended week
    for week, start in enumerate(starts):
        for i, model in enumerate(models):
            add_snapshot(model, start + timedelta(hours=i), 0.1 * ((i + week) % 3 + 1), 4)
        make_input(config=config, scheduled_for=start + timedelta(days=1), status=InputStatus.RESOLVED)
    make_input(config=config, scheduled_for=current.start + timedelta(minutes=1))  # the current week: not due
    return starts


def start_worker(manage_py, env):
    return subprocess.Popen(
        [*manage_py, "run_checkpoint", "--sleep", "0.05"],
        env={**env, "WORKER_HEARTBEAT_SECONDS": "0.1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def heartbeat(process):
    return WorkerHeartbeat.objects.filter(name="run_checkpoint", pid=process.pid).first()


def idle_units(process):
    row = heartbeat(process)
    return row.counters.get("units", 0) if row else 0


def test_two_processes_at_once_build_one_checkpoint_per_period(manage_py, worker_env):
    starts = three_ended_weeks()
    workers = [start_worker(manage_py, worker_env) for _ in range(2)]
    try:
        assert wait_for(lambda: Checkpoint.objects.count() >= 3, timeout=60), "checkpoints were not built"
        # let both keep polling well past the catch-up: nothing more may appear
        target = {w.pid: idle_units(w) + 10 for w in workers}
        assert wait_for(lambda: all(idle_units(w) >= target[w.pid] for w in workers), timeout=60), "workers stalled"
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=10)
    finally:
        for w in workers:
            w.kill()
    outputs = [w.stdout.read() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    periods = list(Checkpoint.objects.order_by("period_start").values_list("period_start", "period_end"))
    assert periods == [(start, start + WEEK) for start in starts]
    built = sum(heartbeat(w).counters.get("checkpoints", 0) for w in workers)
    assert built == 3
    assert all(not heartbeat(w).last_error for w in workers), outputs


@pytest.mark.django_db
def test_once_builds_exactly_the_oldest_due_period(manage_py, worker_env):
    starts = three_ended_weeks()
    result = subprocess.run(
        [*manage_py, "run_checkpoint", "--once"], env=worker_env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    checkpoint = Checkpoint.objects.get()
    assert (checkpoint.period_start, checkpoint.period_end) == (starts[0], starts[0] + WEEK)
    assert len(checkpoint.ranking) == 3
    assert "checkpoint" in result.stderr + result.stdout
