"""The shared worker loop, run as a real subprocess against the test database."""

import json
import re
import signal
import subprocess
import time

import pytest

from coordinator_site.models import WorkerHeartbeat


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def start_worker(manage_py, env, **extra_env):
    return subprocess.Popen(
        [*manage_py, "run_test_worker", "--sleep", "0.05"],
        env={**env, "WORKER_HEARTBEAT_SECONDS": "0.1", **extra_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def units_done(process):
    row = WorkerHeartbeat.objects.filter(name="test_worker", pid=process.pid).first()
    return row.counters.get("done", 0) if row else 0


def test_worker_writes_heartbeat_and_stops_promptly_on_sigterm(manage_py, worker_env):
    """The worker finishes its current unit (0.3 s) and stops. The bound is measured by the
    worker itself, from the signal's arrival to its exit, so a loaded machine that is slow to
    start or schedule the process cannot fail it; the wall-clock wait only has to be finite."""
    process = start_worker(manage_py, worker_env, TEST_WORKER_UNIT_SECONDS="0.3")
    try:
        assert wait_for(lambda: units_done(process) >= 2, timeout=60), "worker never reported progress"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    output = process.stdout.read()
    assert process.returncode == 0, output
    row = WorkerHeartbeat.objects.get(name="test_worker", pid=process.pid)
    assert row.stopped_at is not None
    assert row.last_beat_at >= row.started_at
    stopped = re.search(r"test_worker stopped, ([0-9.]+)s after the stop request", output)
    assert stopped, output
    # One unit (0.3 s) + one sleep slice (0.2 s) + the final heartbeat write, with headroom.
    assert float(stopped.group(1)) < 1.5, output


def test_an_idle_worker_beats_during_its_long_sleep(manage_py, worker_env):
    process = subprocess.Popen(
        [*manage_py, "run_test_worker", "--sleep", "30"],
        env={**worker_env, "WORKER_HEARTBEAT_SECONDS": "0.2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.filter(pid=process.pid).exists(), timeout=60)
        first = WorkerHeartbeat.objects.get(pid=process.pid).last_beat_at
        # Within its 30 s sleep, the heartbeat keeps moving.
        assert wait_for(lambda: WorkerHeartbeat.objects.get(pid=process.pid).last_beat_at > first, timeout=60)
        row = WorkerHeartbeat.objects.get(pid=process.pid)
        assert row.cadence_seconds == pytest.approx(0.2 + 5.0)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, process.stdout.read()


def test_worker_survives_a_unit_that_raises_and_records_the_error(manage_py, worker_env):
    process = start_worker(manage_py, worker_env, TEST_WORKER_FAIL_UNITS="2", WORKER_ERROR_BACKOFF_MAX_SECONDS="0.1")
    try:
        assert wait_for(lambda: units_done(process) >= 3), "worker did not keep going after the error"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=5)
    finally:
        process.kill()
    output = process.stdout.read()
    row = WorkerHeartbeat.objects.get(name="test_worker", pid=process.pid)
    assert "unit 2 exploded" in row.last_error
    assert row.counters["errors"] == 1
    assert "unit 2 exploded" in output


@pytest.mark.django_db
def test_once_runs_exactly_one_unit(manage_py, worker_env):
    result = subprocess.run(
        [*manage_py, "run_test_worker", "--once"], env=worker_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    row = WorkerHeartbeat.objects.get(name="test_worker")
    assert row.counters == {"units": 1, "done": 1}


def test_worker_logs_one_summary_line_per_interval_not_one_per_unit(manage_py, worker_env):
    process = start_worker(manage_py, worker_env, WORKER_LOG_SUMMARY_SECONDS="1", LOG_FORMAT="json")
    try:
        assert wait_for(lambda: units_done(process) >= 40, timeout=60), "worker never reported progress"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        process.kill()
    lines = [json.loads(line) for line in process.stdout.read().splitlines() if line.startswith("{")]
    summaries = [line for line in lines if line["message"].startswith("test_worker summary:")]
    done = WorkerHeartbeat.objects.get(name="test_worker", pid=process.pid).counters["done"]
    assert summaries, lines
    assert len(summaries) < done / 4  # a unit every ~0.05 s, a line every second (and one at stop)
    assert sum(s["done"] for s in summaries) == done  # the same fields, as JSON keys
    assert not [line for line in lines if " unit found=" in line["message"]]  # per unit: DEBUG only
