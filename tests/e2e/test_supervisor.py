"""run_node's supervisor with real children on the shared worker loop (tests.workerapp)."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from coordinator_site.models import WorkerHeartbeat
from coordinator_site.supervisor import ChildSpec, Supervisor
from tests.e2e.processes import alive, descendants, free_port, start, stop, wait_for


def run_node(manage_py, env, *args, **extra_env):
    return start(
        [*manage_py, "run_node", "--backoff-max", "0.5", *args],
        {**env, "WORKER_HEARTBEAT_SECONDS": "0.1", "FEED_SOURCE": "synthetic", **extra_env},
    )


def live_heartbeat(pid_not_in=()):
    return (
        WorkerHeartbeat.objects.filter(name="test_worker", stopped_at__isnull=True, counters__done__gte=1)
        .exclude(pid__in=pid_not_in)
        .first()
    )


def test_a_child_killed_with_sigkill_is_restarted_and_logged(manage_py, worker_env):
    process, output = run_node(manage_py, worker_env, "--no-web", "--child", "loop=run_test_worker --sleep 0.05")
    try:
        first = wait_for(live_heartbeat)
        assert first, f"the child never beat:\n{output.text}"
        os.kill(first.pid, signal.SIGKILL)
        second = wait_for(lambda: live_heartbeat(pid_not_in=[first.pid]))
        assert second, f"the child was not restarted:\n{output.text}"
        assert second.pid != first.pid
        assert process.poll() is None
        assert output.contains(f"loop (pid {first.pid}) exited with signal SIGKILL")
        assert output.contains("restarting in 0.5s (restart #1)")
        assert any(line.startswith("loop | ") and "test_worker started" in line for line in output.lines)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        stop(process)


def test_sigterm_stops_web_and_workers_with_no_orphan(manage_py, worker_env, tmp_path):
    port = free_port()
    process, output = run_node(
        manage_py,
        worker_env,
        "--bind",
        f"127.0.0.1:{port}",
        "--child",
        "one=run_test_worker",
        "--child",
        "two=run_test_worker",
        STATIC_ROOT=str(tmp_path / "static"),
        GUNICORN_WORKERS="2",
    )
    try:
        assert wait_for(lambda: WorkerHeartbeat.objects.filter(name="test_worker").count() == 2, timeout=60), (
            output.text
        )

        def admin_login_page():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        assert wait_for(admin_login_page, timeout=30), output.text
        tree = descendants(process.pid)
        # web (gunicorn master + 2 workers) and two loop workers
        assert len(tree) >= 5, tree
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        stop(process)
    assert process.returncode == 0, output.text
    assert elapsed < 10
    assert wait_for(lambda: not any(alive(pid) for pid in tree), timeout=1), [p for p in tree if alive(p)]
    assert output.contains("supervisor: all children stopped")
    assert WorkerHeartbeat.objects.filter(name="test_worker", stopped_at__isnull=True).count() == 0


def test_supervisor_escalates_to_sigkill_for_a_child_that_ignores_sigterm():
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    out = io.StringIO()
    supervisor = Supervisor([ChildSpec("stubborn", [sys.executable, "-c", stubborn])], stop_timeout=0.5, output=out)
    runner = threading.Thread(target=supervisor.run, kwargs={"install_signals": False})
    runner.start()
    assert wait_for(lambda: "ready" in out.getvalue(), timeout=10)
    pid = supervisor.pids()["stubborn"]
    supervisor.stop()
    runner.join(timeout=5)
    assert not runner.is_alive()
    assert not alive(pid)


def test_json_mode_tags_each_child_line_with_its_process_name():
    script = "import json; print(json.dumps({'level': 'INFO', 'message': 'hi'})); print('plain text')"
    out = io.StringIO()
    supervisor = Supervisor([ChildSpec("feed", [sys.executable, "-c", script])], json_lines=True, output=out)
    runner = threading.Thread(target=supervisor.run, kwargs={"install_signals": False})
    runner.start()
    assert wait_for(lambda: "plain text" in out.getvalue(), timeout=10)
    supervisor.stop()
    runner.join(timeout=5)
    lines = out.getvalue().splitlines()
    assert lines[:2] == [
        '{"process": "feed", "level": "INFO", "message": "hi"}',
        '{"process": "feed", "message": "plain text"}',
    ]


def test_duplicate_child_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        Supervisor([ChildSpec("a", ["true"]), ChildSpec("a", ["true"])])


def test_run_node_refuses_pyth_without_a_key_and_names_the_ways_out(manage_py):
    env = {**os.environ, "FEED_SOURCE": "pyth", "PYTH_API_KEY": ""}
    result = subprocess.run([*manage_py, "run_node"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "PYTH_API_KEY is empty" in result.stderr
    assert "FEED_SOURCE=binance" in result.stderr
    assert "make demo" in result.stderr


def test_run_node_rejects_a_malformed_child(manage_py):
    env = {**os.environ, "FEED_SOURCE": "synthetic"}
    result = subprocess.run(
        [*manage_py, "run_node", "--child", "no-command"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "--child expects NAME=COMMAND" in result.stderr
