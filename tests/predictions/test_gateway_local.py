"""The local gateway: discovery like the model node, own namespaces, threads, timeout/busy, wire parity."""

import pytest

from predictions.gateway.base import BAD_IMPLEMENTATION, DEADLINE_EXCEEDED, SERVER_BUSY, CallStatus
from predictions.gateway.local import LocalModelGateway
from tests.predictions.helpers import MODELS, make_gateway, wait_until, write_model


def by_id(results):
    return {r.model_id: r for r in results}


def test_success_carries_identity_output_and_integer_exec_time(tmp_path):
    write_model(
        tmp_path, "good", manifest={"model_id": "42", "name": "Good one", "cruncher_id": "w1", "cruncher_name": "Ann"}
    )
    gateway = make_gateway(tmp_path)
    [result] = gateway.call("predict", ["BTC", 300, 60])
    assert result.status == CallStatus.SUCCESS
    assert result.output == {"p_up": 0.7}
    assert isinstance(result.exec_time_us, int)
    assert result.exec_time_us >= 0
    identity = result.identity
    assert (identity.model_id, identity.name, identity.cruncher_id, identity.cruncher_name) == (
        "42",
        "Good one",
        "w1",
        "Ann",
    )
    assert identity.deployment_id.startswith("42_")


def test_raising_model_fails_with_the_exception_text(tmp_path):
    write_model(tmp_path, "raising")
    [result] = make_gateway(tmp_path).call("predict", ["BTC", 300, 60])
    assert result.status == CallStatus.FAILED
    assert result.detail == "RuntimeError: boom"


def test_missing_method_is_bad_implementation(tmp_path):
    write_model(tmp_path, "missing")
    [result] = make_gateway(tmp_path).call("predict", ["BTC", 300, 60])
    assert (result.status, result.detail) == (CallStatus.FAILED, BAD_IMPLEMENTATION)


def test_folder_without_a_subclass_does_not_join(tmp_path):
    write_model(tmp_path, "plain", "class NotAModel:\n    def predict(self, *a):\n        return {'p_up': 0.5}\n")
    write_model(tmp_path, "good")
    gateway = make_gateway(tmp_path)
    assert [m.model_id for m in gateway.connected_models()] == ["good"]
    assert BAD_IMPLEMENTATION in gateway.load_errors["plain"][1]


def test_sleeping_model_times_out_then_answers_busy_until_it_finishes(tmp_path):
    write_model(tmp_path, "sleeping")
    write_model(tmp_path, "good")
    gateway = make_gateway(tmp_path, timeout=0.2)
    first = by_id(gateway.call("predict", ["BTC", 300, 60]))
    assert (first["sleeping"].status, first["sleeping"].detail) == (CallStatus.TIMEOUT, DEADLINE_EXCEEDED)
    assert first["sleeping"].exec_time_us >= 200_000
    assert first["good"].status == CallStatus.SUCCESS  # one slow model does not hold the others
    second = by_id(gateway.call("predict", ["BTC", 300, 60]))
    assert (second["sleeping"].status, second["sleeping"].detail) == (CallStatus.TIMEOUT, SERVER_BUSY)
    sleeper = gateway.models["sleeping"]
    assert wait_until(lambda: not sleeper.busy.locked(), timeout=2)
    gateway.timeout = 1.0
    third = by_id(gateway.call("predict", ["BTC", 300, 60]))
    assert third["sleeping"].status == CallStatus.SUCCESS


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (MODELS["tuple"], "MODEL_FAILED: Unsupported data type: <class 'tuple'>"),
        (
            "import numpy\nclass Numpy(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': numpy.int64(1)}\n",
            "MODEL_FAILED: Data cannot be serialized to JSON",
        ),
    ],
)
def test_outputs_the_wire_cannot_carry_fail_like_over_grpc(tmp_path, body, detail):
    write_model(tmp_path, "odd", body)
    [result] = make_gateway(tmp_path).call("predict", ["BTC", 300, 60])
    assert result.status == CallStatus.FAILED
    assert result.detail.startswith(detail)


def test_two_models_with_the_same_module_names_keep_their_own_code(tmp_path):
    for folder, value in (("a", 0.1), ("b", 0.9)):
        write_model(
            tmp_path,
            folder,
            "from helpers import VALUE\nclass M(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': VALUE}\n",
            files={"helpers.py": f"VALUE = {value}\n"},
        )
    results = by_id(make_gateway(tmp_path).call("predict", ["BTC", 300, 60]))
    assert results["a"].output == {"p_up": 0.1}
    assert results["b"].output == {"p_up": 0.9}


def test_keyword_arguments_the_method_does_not_accept_are_dropped(tmp_path):
    write_model(
        tmp_path,
        "kw",
        "class Kw(ModelBaseClass):\n    def predict(self, subject, extra=0):\n        return {'p_up': extra}\n",
    )
    [result] = make_gateway(tmp_path).call("predict", ["BTC"], {"extra": 0.25, "unknown": 1})
    assert result.output == {"p_up": 0.25}


def test_code_change_is_a_redeploy_and_a_removed_folder_leaves(tmp_path):
    folder = write_model(tmp_path, "good")
    write_model(tmp_path, "raising")
    gateway = make_gateway(tmp_path)
    before = gateway.models["good"].identity.deployment_id
    (folder / "main.py").write_text((folder / "main.py").read_text().replace("0.7", "0.65"))
    import shutil

    shutil.rmtree(tmp_path / "raising")
    gateway.refresh()
    assert [m.model_id for m in gateway.connected_models()] == ["good"]
    assert gateway.models["good"].identity.deployment_id != before
    [result] = gateway.call("predict", ["BTC", 300, 60])
    assert result.output == {"p_up": 0.65}


def test_examples_folder_loads_with_the_default_base_class():
    from django.conf import settings

    gateway = LocalModelGateway(
        models_dir=settings.MODELS_DIR, base_classname=settings.MODEL_BASE_CLASSNAME, timeout=1.0
    )
    gateway.start()
    assert len(gateway.connected_models()) >= 3
    assert gateway.load_errors == {}
    gateway.call("tick", [{"symbol": "BTC", "records": [{"close": 100.0}, {"close": 101.0}]}])
    results = gateway.call("predict", ["BTC", 300, 60])
    assert all(r.status == CallStatus.SUCCESS and 0 <= r.output["p_up"] <= 1 for r in results)


def test_models_stuck_past_their_timeout_do_not_starve_the_next_call(tmp_path):
    # More overrunning models than the pool's PARALLELISM: every thread of the first call is stuck.
    for i in range(20):
        write_model(tmp_path, f"sleeping{i:02d}", MODELS["sleeping"])
    write_model(tmp_path, "good")
    gateway = make_gateway(tmp_path, timeout=0.2)
    first = by_id(gateway.call("predict", ["BTC", 300, 60]))
    assert first.pop("good").status == CallStatus.SUCCESS
    assert {(r.status, r.detail) for r in first.values()} == {(CallStatus.TIMEOUT, DEADLINE_EXCEEDED)}
    second = by_id(gateway.call("predict", ["BTC", 300, 60]))
    assert second.pop("good").status == CallStatus.SUCCESS
    assert {(r.status, r.detail) for r in second.values()} == {(CallStatus.TIMEOUT, SERVER_BUSY)}
    assert wait_until(lambda: not any(m.busy.locked() for m in gateway.models.values()), timeout=5)
    gateway.close()
