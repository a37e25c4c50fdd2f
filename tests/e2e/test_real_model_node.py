"""The remote gateway against the REAL model node: `crunch-model-runner` 0.4.2 processes.

Each participant model runs in its own `model-runner` process (command of crunch-model-runner,
from the virtualenv `make model-runner-venv` builds: its protobuf<6 pin cannot share ours) on a
free loopback port; the orchestrator's WebSocket (`init`/`update` events, `report_failure`
messages) is simulated on loopback by tests/predictions/model_node_stub.Harness; the gateway is
the production one (model-runner-client 0.14). What is checked is what the real node answers and
how our gateway and predict cycle record it (MODEL_RUNNER_NOTES.md §1.3, §3.3):

| model                    | node answers                   | gateway result                          | Prediction                          |
|--------------------------|--------------------------------|-----------------------------------------|-------------------------------------|
| good                     | SUCCESS + value                | SUCCESS, decoded output                 | PENDING, the output                 |
| raises                   | MODEL_FAILED "The model raised"| FAILED "FAILED" (message lost)          | FAILED MODEL_ERROR "FAILED"         |
| sleeps past the deadline | (client DEADLINE_EXCEEDED)     | TIMEOUT "DEADLINE_EXCEEDED..."          | FAILED TIMEOUT                      |
| still busy afterwards    | RESOURCE_EXHAUSTED Server busy | TIMEOUT (or PREEMPTIVE_SKIP before it)  | FAILED TIMEOUT                      |
| lacks `predict`          | BAD_IMPLEMENTATION             | FAILED "BAD_IMPLEMENTATION"             | FAILED MODEL_ERROR                  |

With MODEL_RUNNER_REPORT_FAILURE on, BAD_IMPLEMENTATION is reported to the orchestrator and the
model leaves at once (then ABSENT); timeouts past MODEL_RUNNER_MAX_CONSECUTIVE_TIMEOUTS are reported
MULTIPLE_TIMEOUT; a predict that raises every cycle is never reported MULTIPLE_FAILED (the tick
before it succeeds and resets the client's count).

PostgreSQL only (slow, real subprocesses); skipped when the model node's virtualenv is not built.
"""

import ctypes
import os
import signal
import socket
import subprocess
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from predictions.choices import FailureReason, PredictionStatus
from predictions.gateway.base import BAD_IMPLEMENTATION, CallStatus
from predictions.gateway.remote import RemoteModelGateway
from predictions.models import Input, Prediction
from predictions.services import run_predict_cycle
from tests.e2e.processes import ROOT, Output, free_port, start, stop, user_env, wait_for
from tests.factories import T0, make_config
from tests.predictions.helpers import DIMS, fill_tape
from tests.predictions.model_node_stub import Harness

MODEL_RUNNER_VERSION = "0.4.2"  # the Makefile's MODEL_RUNNER_VERSION
VENV = ROOT / os.environ.get("MODEL_RUNNER_VENV", ".model-runner-venv")  # an absolute value wins
NODE = VENV / "bin" / "model-runner"
STAMP = VENV / f".installed-crunch-model-runner-{MODEL_RUNNER_VERSION}"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="real model-node processes: PostgreSQL runs only"),
    pytest.mark.skipif(
        not (STAMP.exists() and NODE.exists()),
        reason=f"crunch-model-runner {MODEL_RUNNER_VERSION} is not installed in {VENV}: run `make model-runner-venv`",
    ),
]

CRUNCH_ID = "real-node-crunch"
BASE = "cruncher.ModelBaseClass"
# Generous for a loaded 2-core machine: the good model answers in milliseconds, the sleeping one
# never does. The sleeping model holds its node long after the test (the process is killed).
TIMEOUT = 5.0
SLEEP = 120

# The challenge's base class, shipped with each submission (as `cruncher.py`): `tick` only, so a
# model that forgets `predict` has no such method on the node.
CRUNCHER = """
class ModelBaseClass:
    def tick(self, data):
        self.data = data
"""

MODELS = {
    # The value comes from the ticked data, so it proves the tick crossed the wire intact.
    "good": """
        class Good(ModelBaseClass):
            def predict(self, subject, horizon_seconds, step_seconds):
                assert subject == self.data["subject"]
                return {"p_up": self.data["records"][-1]["close"] / 1000}
    """,
    "raising": """
        class Raising(ModelBaseClass):
            def predict(self, subject, horizon_seconds, step_seconds):
                raise RuntimeError("boom")
    """,
    "sleeping": f"""
        import time

        class Sleeping(ModelBaseClass):
            def predict(self, subject, horizon_seconds, step_seconds):
                time.sleep({SLEEP})
                return {{"p_up": 0.5}}
    """,
    "missing": """
        class Missing(ModelBaseClass):
            pass
    """,
}
IDS = {"good": "1", "raising": "2", "sleeping": "3", "missing": "4"}


def write_submission(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True)
    (directory / "cruncher.py").write_text(textwrap.dedent(CRUNCHER).lstrip())
    (directory / "main.py").write_text("from cruncher import ModelBaseClass\n" + textwrap.dedent(body))
    return directory


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child only calls it


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL when pytest dies, so no node outlives a killed run."""
    _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Node:
    """One `model-runner` process serving one submission on a free loopback port."""

    def __init__(self, code_dir: Path) -> None:
        self.code_dir = code_dir
        self.launch()

    def launch(self) -> None:
        env = {k: v for k, v in user_env().items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        self.port = free_port()
        argv = [str(NODE), "--address", f"127.0.0.1:{self.port}", "--code-directory", str(self.code_dir)]
        self.process = subprocess.Popen(
            [*argv, "--log-level", "info"],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
        )
        self.output = Output(self.process)

    def wait_listening(self) -> None:
        for _attempt in range(3):  # a free port can be taken between free_port() and the bind
            up = wait_for(lambda: self.process.poll() is not None or listening(self.port), timeout=120, interval=0.2)
            if up and self.process.poll() is None:
                return
            self.stop()
            self.launch()
        raise AssertionError(f"model-runner never listened on 127.0.0.1:{self.port}:\n{self.output.text}")

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture
def nodes(tmp_path):
    started = {}
    try:
        for name, body in MODELS.items():  # all four start side by side
            started[name] = Node(write_submission(tmp_path / name, body))
        for node in started.values():
            node.wait_listening()
        yield started
    finally:
        for node in started.values():
            node.stop()


@pytest.fixture
def harness(nodes):
    h = Harness(CRUNCH_ID)
    for name, node in nodes.items():
        model_id = IDS[name]
        h.add_node(
            model_id,
            node.port,
            name=name,
            cruncher_id=f"wallet-{model_id}",
            cruncher_name=f"Cruncher {model_id}",
            deployment_id=f"{model_id}_20261206_000000_000",
        )
    yield h
    h.close()


def open_gateway(harness, nodes, **options) -> RemoteModelGateway:
    gateway = RemoteModelGateway(
        crunch_id=CRUNCH_ID, host="127.0.0.1", port=harness.ws_port, base_classname=BASE, timeout=TIMEOUT, **options
    )
    gateway.start()
    logs = "\n".join(f"--- {name}\n{node.output.text}" for name, node in nodes.items())
    assert gateway.wait_ready(180), f"gateway never ready: {gateway.last_error}\n{logs}"
    connected = {m.model_id for m in gateway.connected_models()}
    assert connected == set(IDS.values()), f"connected: {connected}\n{logs}"
    return gateway


@pytest.fixture
def gateway(harness, nodes):
    g = open_gateway(harness, nodes, report_failure=False)
    yield g
    g.close()


def by_name(results):
    names = {v: k for k, v in IDS.items()}
    return {names[r.model_id]: r for r in results}


def tick_data():
    records = [{"ts_event": f"2026-12-06T00:0{i}:00+00:00", "close": 100.0 + i} for i in range(3)]
    return {"symbol": "BTC", "subject": "BTC", "records": records}


def test_the_real_node_answers_map_to_the_documented_statuses(gateway, nodes):
    ticks = by_name(gateway.call("tick", [tick_data()]))
    assert {name: r.status for name, r in ticks.items()} == dict.fromkeys(IDS, CallStatus.SUCCESS)
    assert all(r.output is None for r in ticks.values())  # tick returns None: SUCCESS, no value

    results = by_name(gateway.call("predict", ["BTC", 300, 60]))
    good = results["good"]
    assert (good.status, good.output) == (CallStatus.SUCCESS, {"p_up": 0.102})
    assert isinstance(good.exec_time_us, int)
    assert 0 < good.exec_time_us < TIMEOUT * 1e6
    assert (good.identity.name, good.identity.cruncher_id, good.identity.deployment_id) == (
        "good",
        "wallet-1",
        "1_20261206_000000_000",
    )
    # MODEL_FAILED: the node's message ("The model raised an exception: boom") does not reach us.
    assert (results["raising"].status, results["raising"].detail) == (CallStatus.FAILED, "FAILED")
    assert nodes["raising"].output.contains("boom")
    assert results["sleeping"].status == CallStatus.TIMEOUT
    assert results["sleeping"].detail.startswith("DEADLINE_EXCEEDED"), results["sleeping"].detail
    assert results["sleeping"].exec_time_us >= TIMEOUT * 1e6 * 0.9
    assert (results["missing"].status, results["missing"].detail) == (CallStatus.FAILED, BAD_IMPLEMENTATION)
    assert nodes["missing"].output.contains('Method "predict" not found')

    # The sleeping node is still running the first predict: the client skips it once (cooldown
    # after a timeout), then the node itself refuses ("Server busy"); both are TIMEOUT.
    details = []
    for _ in range(2):
        again = by_name(gateway.call("predict", ["BTC", 300, 60]))
        assert again["good"].status == CallStatus.SUCCESS
        assert again["sleeping"].status == CallStatus.TIMEOUT
        details.append(again["sleeping"].detail)
    assert details[0].startswith("PREEMPTIVE_SKIP"), details
    assert details[1] == "RESOURCE_EXHAUSTED: Server busy", details
    # report_failure off (the default): a BAD_IMPLEMENTATION model stays connected.
    assert {m.model_id for m in gateway.connected_models()} == set(IDS.values())


@pytest.mark.django_db
def test_a_predict_cycle_on_real_nodes_records_each_outcome(gateway):
    fill_tape()
    make_config(scope_key="BTC-1m", scope_template=dict(DIMS), next_run_at=T0)
    report = run_predict_cycle(gateway=gateway, worker_id="w", now=T0)
    input_ = Input.objects.get(pk=report.input_id)
    got = {p.model.name: p for p in Prediction.objects.filter(input=input_).select_related("model")}
    last_close = input_.raw_data["records"][-1]["close"]
    assert (got["good"].status, got["good"].output) == (PredictionStatus.PENDING, {"p_up": last_close / 1000})
    assert isinstance(got["good"].exec_time_us, int)
    assert got["good"].exec_time_us > 0
    outcomes = {name: (p.status, p.failure_reason, p.failure_detail) for name, p in got.items() if name != "good"}
    assert outcomes["raising"] == (PredictionStatus.FAILED, FailureReason.MODEL_ERROR, "FAILED")
    assert outcomes["missing"] == (PredictionStatus.FAILED, FailureReason.MODEL_ERROR, BAD_IMPLEMENTATION)
    status, reason, detail = outcomes["sleeping"]
    assert (status, reason) == (PredictionStatus.FAILED, FailureReason.TIMEOUT)
    assert detail.startswith("DEADLINE_EXCEEDED"), detail


def reported(harness) -> set[tuple[str, str]]:
    """(model_id, failure_code) of every `report_failure` the orchestrator received."""
    messages = [m for m in list(harness.received) if m.get("event") == "report_failure"]
    return {(item["model_id"], item["failure_code"]) for message in messages for item in message["data"]}


@pytest.mark.django_db
def test_with_report_failure_the_client_reports_and_drops_models(harness, nodes):
    gateway = open_gateway(harness, nodes, report_failure=True, max_consecutive_failures=1, max_consecutive_timeouts=1)

    def connected() -> set[str]:
        return {m.model_id for m in gateway.connected_models()}

    def cycle(minute: int) -> dict[str, Prediction]:
        report = run_predict_cycle(gateway=gateway, worker_id="w", now=T0 + timedelta(minutes=minute))
        rows = Prediction.objects.filter(input_id=report.input_id).select_related("model")
        return {p.model.name: p for p in rows}

    try:
        fill_tape()
        make_config(scope_key="BTC-1m", scope_template=dict(DIMS), next_run_at=T0)
        first = cycle(0)
        assert (first["missing"].failure_reason, first["missing"].failure_detail) == (
            FailureReason.MODEL_ERROR,
            BAD_IMPLEMENTATION,
        )
        assert first["sleeping"].failure_reason == FailureReason.TIMEOUT  # 1 timeout: not past the max (1)
        # BAD_IMPLEMENTATION is reported at once and the model dropped (the orchestrator stops it).
        assert wait_for(lambda: (IDS["missing"], BAD_IMPLEMENTATION) in reported(harness), timeout=30)
        assert wait_for(lambda: IDS["missing"] not in connected(), timeout=30)

        second = cycle(1)
        assert second["missing"].status == PredictionStatus.ABSENT
        assert second["good"].status == PredictionStatus.PENDING
        # This cycle's tick to the still-busy sleeping node is its 2nd timeout in a row (past the
        # max): reported MULTIPLE_TIMEOUT and dropped.
        assert wait_for(lambda: (IDS["sleeping"], "MULTIPLE_TIMEOUT") in reported(harness), timeout=30)
        assert wait_for(lambda: IDS["sleeping"] not in connected(), timeout=30)

        third = cycle(2)
        assert third["sleeping"].status == PredictionStatus.ABSENT
        # A predict that raises every cycle is never reported MULTIPLE_FAILED, whatever the max:
        # the successful tick before each predict resets the client's consecutive-failure count.
        assert third["raising"].failure_reason == FailureReason.MODEL_ERROR
        assert IDS["raising"] in connected()
        assert reported(harness) == {(IDS["missing"], BAD_IMPLEMENTATION), (IDS["sleeping"], "MULTIPLE_TIMEOUT")}
    finally:
        gateway.close()


def fresh(query):
    close_old_connections()
    return query()


def test_run_predict_command_serves_real_nodes(harness, nodes, tmp_path, manage_py, worker_env):
    now = timezone.now()
    fill_tape(end=now + timedelta(minutes=5))
    make_config(scope_key="BTC-5s", scope_template=dict(DIMS), interval_seconds=5, next_run_at=now)
    env = {
        **worker_env,
        "MODEL_GATEWAY": "remote",
        "CRUNCH_ID": CRUNCH_ID,
        "MODEL_RUNNER_NODE_HOST": "127.0.0.1",
        "MODEL_RUNNER_NODE_PORT": str(harness.ws_port),
        "MODEL_BASE_CLASSNAME": BASE,
        "MODEL_CALL_TIMEOUT_SECONDS": str(TIMEOUT),
    }
    process, output = start([*manage_py, "run_predict", "--wait-ready", "180", "--sleep", "1"], env)
    try:
        served = wait_for(
            lambda: fresh(lambda: Prediction.objects.filter(model__name="good").count() >= 2), timeout=240
        )
        assert served, output.text
    finally:
        stop(process)
    first = Input.objects.order_by("scheduled_for").first()
    got = {p.model.name: p for p in Prediction.objects.filter(input=first).select_related("model")}
    last_close = first.raw_data["records"][-1]["close"]
    assert (got["good"].status, got["good"].output) == (PredictionStatus.PENDING, {"p_up": last_close / 1000})
    assert (got["raising"].failure_reason, got["raising"].failure_detail) == (FailureReason.MODEL_ERROR, "FAILED")
    assert got["sleeping"].failure_reason == FailureReason.TIMEOUT
    assert got["missing"].failure_detail == BAD_IMPLEMENTATION
