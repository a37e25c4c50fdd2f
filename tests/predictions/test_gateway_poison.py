"""Local models cannot take the gateway down: BaseException from model code is contained."""

import time

import pytest

from predictions.gateway.base import CallStatus
from predictions.gateway.local import KILLED_CALL, QUARANTINED
from tests.predictions.helpers import make_gateway, write_model

EXITING = "class Exiting(ModelBaseClass):\n    def predict(self, *a):\n        import sys\n        sys.exit(3)\n"
INTERRUPTING = (
    "class Interrupting(ModelBaseClass):\n    def predict(self, *a):\n        raise KeyboardInterrupt('stop')\n"
)


def by_id(results):
    return {r.model_id: r for r in results}


def test_sys_exit_in_a_model_fails_that_call_only_and_at_once(tmp_path):
    write_model(tmp_path, "exiting", EXITING)
    write_model(tmp_path, "interrupting", INTERRUPTING)
    write_model(tmp_path, "good")
    gateway = make_gateway(tmp_path, timeout=30)
    started = time.monotonic()
    results = by_id(gateway.call("predict", ["BTC", 300, 60]))
    # Every call finished: the fan-out did not wait for its 30 s timeout.
    assert time.monotonic() - started < 15
    assert results["good"].status == CallStatus.SUCCESS
    assert results["exiting"].status == CallStatus.FAILED
    assert results["exiting"].detail == f"{KILLED_CALL}: SystemExit: 3"
    assert results["interrupting"].detail == f"{KILLED_CALL}: KeyboardInterrupt: stop"


def test_many_exits_never_starve_healthy_models(tmp_path):
    for i in range(20):
        write_model(tmp_path, f"exiting{i:02}", EXITING)
    write_model(tmp_path, "good")
    gateway = make_gateway(tmp_path, timeout=5)
    gateway.max_consecutive_kills = 1000  # keep them all in for this test
    for _ in range(3):
        results = by_id(gateway.call("predict", ["BTC", 300, 60]))
        assert results["good"].status == CallStatus.SUCCESS
        assert all(r.status == CallStatus.FAILED for k, r in results.items() if k != "good")
    # Every pool thread survived its model's exit: none died, none is replaced needlessly.
    assert gateway._pool.threads <= gateway._pool.PARALLELISM


def test_a_model_that_keeps_killing_its_call_is_quarantined_until_its_code_changes(tmp_path):
    folder = write_model(tmp_path, "exiting", EXITING)
    write_model(tmp_path, "good")
    gateway = make_gateway(tmp_path)
    gateway.max_consecutive_kills = 2
    for _ in range(2):
        gateway.call("predict", ["BTC", 300, 60])
    assert [m.model_id for m in gateway.connected_models()] == ["good"]
    assert gateway.load_errors["exiting"][1].startswith(QUARANTINED)
    gateway.refresh()
    assert "exiting" not in {m.model_id for m in gateway.connected_models()}
    (folder / "main.py").write_text((folder / "main.py").read_text() + "\n# fixed\n")
    gateway.refresh(force=True)
    assert "exiting" in {m.model_id for m in gateway.connected_models()}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_pool_thread_is_replaced(tmp_path):
    write_model(tmp_path, "good")
    gateway = make_gateway(tmp_path)
    gateway.call("predict", ["BTC", 300, 60])
    pool = gateway._pool
    before = pool.threads
    # A thread leaving its loop other than by the close sentinel gives its place back.
    pool.queue.put(RuntimeError)  # not a batch: the thread's loop raises and ends
    deadline = time.monotonic() + 10
    while pool.threads >= before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.threads == before - 1
    assert by_id(gateway.call("predict", ["BTC", 300, 60]))["good"].status == CallStatus.SUCCESS
