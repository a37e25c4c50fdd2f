"""The remote gateway over the real wire: model-runner-client 0.14 -> loopback gRPC model nodes,
discovered through a WebSocket orchestrator stub speaking the `init`/`update` events."""

import time

import pytest

from predictions.choices import FailureReason, PredictionStatus
from predictions.gateway.base import CallStatus
from predictions.gateway.remote import RemoteModelGateway
from predictions.models import Prediction
from predictions.services import run_predict_cycle
from tests.factories import T0, make_config
from tests.predictions.helpers import DIMS, fill_tape, wait_until
from tests.predictions.model_node_stub import Harness

CRUNCH_ID = "test-crunch"


class Good:
    def tick(self, data):
        self.data = data

    def predict(self, subject, horizon, step):
        return {"p_up": 0.7 if self.data["symbol"] == subject else 0.0}


class Raising(Good):
    def predict(self, subject, horizon, step):
        raise RuntimeError("boom")


class Sleeping(Good):
    def predict(self, subject, horizon, step):
        time.sleep(0.8)
        return {"p_up": 0.5}


@pytest.fixture
def harness():
    h = Harness(CRUNCH_ID)
    yield h
    h.close()


@pytest.fixture
def gateway(harness):
    for model_id, model in (("1", Good()), ("2", Raising()), ("3", Sleeping())):
        harness.add_model(
            model_id,
            model,
            name=f"model-{model_id}",
            cruncher_id=f"wallet-{model_id}",
            cruncher_name=f"Cruncher {model_id}",
            deployment_id=f"{model_id}_20261102_000000_000",
        )
    g = RemoteModelGateway(
        crunch_id=CRUNCH_ID,
        host="127.0.0.1",
        port=harness.ws_port,
        base_classname="cruncher.ModelBaseClass",
        timeout=0.3,
        report_failure=False,
    )
    started = time.monotonic()
    g.start()
    assert time.monotonic() - started < 5.0  # start() returns without waiting for init (headroom for a loaded CI)
    assert g.wait_ready(10), g.last_error
    yield g
    g.close()


def by_id(results):
    return {r.model_id: r for r in results}


def test_success_failure_and_timeout_come_back_as_distinct_results(gateway):
    assert {m.model_id for m in gateway.connected_models()} == {"1", "2", "3"}
    gateway.call("tick", [{"symbol": "BTC", "records": []}])
    results = by_id(gateway.call("predict", ["BTC", 300, 60]))
    good = results["1"]
    assert (good.status, good.output) == (CallStatus.SUCCESS, {"p_up": 0.7})
    assert isinstance(good.exec_time_us, int)
    identity = good.identity
    assert (identity.name, identity.cruncher_id, identity.cruncher_name, identity.deployment_id) == (
        "model-1",
        "wallet-1",
        "Cruncher 1",
        "1_20261102_000000_000",
    )
    assert (results["2"].status, results["2"].detail) == (CallStatus.FAILED, "FAILED")
    assert results["3"].status == CallStatus.TIMEOUT
    assert results["3"].detail.startswith("DEADLINE_EXCEEDED")


def test_models_join_and_leave_through_orchestrator_updates(harness, gateway):
    joined = harness.add_model(
        "4", Good(), name="late", cruncher_id="wallet-4", cruncher_name="Dee", deployment_id="4_a"
    )
    harness.push(joined)
    assert wait_until(lambda: "4" in {m.model_id for m in gateway.connected_models()}, timeout=10)
    gateway.call("tick", [{"symbol": "BTC", "records": []}])
    assert by_id(gateway.call("predict", ["BTC", 300, 60]))["4"].output == {"p_up": 0.7}

    harness.stop_model("1")
    assert wait_until(lambda: "1" not in {m.model_id for m in gateway.connected_models()}, timeout=10)
    assert "1" not in by_id(gateway.call("predict", ["BTC", 300, 60]))


@pytest.mark.django_db
def test_a_predict_cycle_through_the_remote_gateway_records_each_outcome(harness, gateway):
    fill_tape()
    make_config(scope_key="BTC-1m", scope_template=dict(DIMS), next_run_at=T0)
    first = run_predict_cycle(gateway=gateway, worker_id="w", now=T0)
    got = {p.model.model_id: p for p in Prediction.objects.filter(input_id=first.input_id)}
    assert (got["1"].status, got["1"].output) == (PredictionStatus.PENDING, {"p_up": 0.7})
    assert got["2"].failure_reason == FailureReason.MODEL_ERROR
    assert got["3"].failure_reason == FailureReason.TIMEOUT
    harness.stop_model("2")
    assert wait_until(lambda: "2" not in {m.model_id for m in gateway.connected_models()}, timeout=10)
    second = run_predict_cycle(gateway=gateway, worker_id="w", now=T0.replace(minute=1))
    assert Prediction.objects.get(input_id=second.input_id, model__model_id="2").status == PredictionStatus.ABSENT
