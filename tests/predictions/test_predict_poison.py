"""Poison values from models (NUL, lone surrogates, sys.exit) never stop a predict cycle."""

import json
import subprocess
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predictions import services
from predictions.choices import FailureReason, PredictionStatus
from predictions.gateway.base import CallStatus, ModelCallResult, ModelIdentity
from predictions.models import Input, ParticipantModel, Prediction, PredictionConfig
from predictions.services import run_predict_cycle
from tests.factories import T0, make_config
from tests.predictions.helpers import BASE, DIMS, MODELS, fill_tape, make_gateway, write_model

pytestmark = pytest.mark.django_db
NOW = T0 + timedelta(seconds=5)

POISON = {
    "nul_output": "class A(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': 'x\\x00y'}\n",
    "surrogate_output": "class B(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': '\\ud800'}\n",
    "nul_error": "class C(ModelBaseClass):\n    def predict(self, *a):\n        raise RuntimeError('bad\\x00 \\udfff')\n",
    "exiting": "class D(ModelBaseClass):\n    def predict(self, *a):\n        import sys\n        sys.exit(1)\n",
}


def due_config():
    return make_config(
        scope_key="BTC-1m", scope_template=dict(DIMS), interval_seconds=60, horizon_seconds=300, next_run_at=T0
    )


def by_model(input_id):
    return {p.model.model_id: p for p in Prediction.objects.filter(input_id=input_id).select_related("model")}


def test_poisoned_answers_fail_alone_and_the_good_answer_is_stored(tmp_path):
    for name, body in POISON.items():
        write_model(tmp_path, name, body)
    write_model(tmp_path, "good")
    fill_tape()
    config = due_config()
    report = run_predict_cycle(gateway=make_gateway(tmp_path, timeout=5), worker_id="w1", now=NOW)

    got = by_model(report.input_id)
    assert got["good"].status == PredictionStatus.PENDING
    for name in ("nul_output", "surrogate_output"):
        assert (got[name].status, got[name].failure_reason) == (PredictionStatus.FAILED, FailureReason.INVALID_OUTPUT)
        assert "unstorable_output" in got[name].output
    assert got["nul_error"].failure_reason == FailureReason.MODEL_ERROR
    assert got["nul_error"].failure_detail == "RuntimeError: bad\\0 \\udfff"  # escaped, so the reason survives
    assert got["exiting"].failure_detail == "KILLED_CALL: SystemExit: 1"
    config.refresh_from_db()
    assert config.next_run_at == T0 + timedelta(seconds=60)
    assert "last_error" not in config.meta


def test_a_model_with_an_unstorable_identity_is_dropped_not_the_cycle(tmp_path):
    write_model(tmp_path, "bad_name", MODELS["good"], manifest={"model_id": "bad", "name": "x\ud800"})
    write_model(tmp_path, "good")
    fill_tape()
    due_config()
    report = run_predict_cycle(gateway=make_gateway(tmp_path), worker_id="w1", now=NOW)
    assert set(by_model(report.input_id)) == {"good"}
    assert report.counts["identity_rejected"] == 1
    assert not ParticipantModel.objects.filter(model_id="bad").exists()


def test_a_row_the_database_refuses_is_isolated_when_the_boundary_misses_it(tmp_path, monkeypatch):
    """Defence in depth: with the boundary switched off, the write itself isolates the bad row."""
    monkeypatch.setattr(services, "clean_json", lambda value, **_: value)
    write_model(tmp_path, "nul_output", POISON["nul_output"])
    write_model(tmp_path, "good")
    fill_tape()
    due_config()
    report = run_predict_cycle(gateway=make_gateway(tmp_path), worker_id="w1", now=NOW)
    got = by_model(report.input_id)
    assert got["good"].status == PredictionStatus.PENDING
    assert got["nul_output"].status == PredictionStatus.FAILED
    if connection.vendor == "postgresql":  # SQLite stores NUL in JSON text; Postgres refuses it
        assert got["nul_output"].failure_detail.startswith("WRITE_REJECTED")
        assert got["nul_output"].output is None
        assert report.counts["write_rejected"] == 1


class ScriptedGateway:
    """Answers from a list, as a remote model node would return them (any text, any JSON)."""

    name = "scripted"
    ready = True

    def __init__(self, outputs):
        self.outputs = outputs

    def _identity(self, i):
        return ModelIdentity(f"m{i}", f"m{i}", "c", "c", f"m{i}_d")

    def connected_models(self):
        return [self._identity(i) for i in range(len(self.outputs))]

    def call(self, method, args=(), kwargs=None):
        if method == "tick":
            return []
        return [
            ModelCallResult(self._identity(i), status, output, 10, detail)
            for i, (status, output, detail) in enumerate(self.outputs)
        ]


junk_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=30) | st.sampled_from(
    ["\x00", "\ud800", "a\udfffb", "\x01\x1f", "x" * 5000]
)
junk_number = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 5e-324, 10**40])
junk = st.recursive(
    st.none() | st.booleans() | junk_text | junk_number,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(junk_text, c, max_size=3),
    max_leaves=8,
)
answer = st.tuples(st.sampled_from([CallStatus.SUCCESS, CallStatus.FAILED, CallStatus.TIMEOUT]), junk, junk_text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.lists(answer, min_size=1, max_size=4))
def test_property_adversarial_answers_are_terminal_and_good_ones_stored(answers):
    Prediction.objects.all().delete()
    Input.objects.all().delete()
    PredictionConfig.objects.all().delete()
    ParticipantModel.objects.all().delete()
    if not _tape_filled():
        fill_tape()
    config = due_config()
    good = (CallStatus.SUCCESS, {"p_up": 0.25}, None)
    gateway = ScriptedGateway([good, *answers])
    report = run_predict_cycle(gateway=gateway, worker_id="w1", now=NOW)
    rows = by_model(report.input_id)
    assert rows["m0"].status == PredictionStatus.PENDING
    assert rows["m0"].output == {"p_up": 0.25}
    assert len(rows) == len(answers) + 1
    for i in range(1, len(answers) + 1):
        assert rows[f"m{i}"].status in (PredictionStatus.PENDING, PredictionStatus.FAILED)
        if rows[f"m{i}"].status == PredictionStatus.FAILED:
            assert rows[f"m{i}"].failure_reason
    json.dumps(rows["m0"].output)
    config.refresh_from_db()
    assert config.next_run_at == T0 + timedelta(seconds=60)  # the stage moved on


def _tape_filled():
    from feeds.models import FeedRecord

    return FeedRecord.objects.exists()


def test_run_predict_process_survives_poisoned_models_and_keeps_serving(tmp_path, manage_py, worker_env):
    models = tmp_path / "models"
    for name, body in POISON.items():
        write_model(models, name, body)
    write_model(models, "good")
    now = timezone.now()
    fill_tape(end=now)
    make_config(scope_key="BTC-1m", scope_template=dict(DIMS), next_run_at=now - timedelta(seconds=1))
    env = {**worker_env, "MODELS_DIR": str(models), "MODEL_BASE_CLASSNAME": BASE, "MODEL_CALL_TIMEOUT_SECONDS": "5"}
    run = subprocess.run([*manage_py, "run_predict", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    [input_row] = Input.objects.all()
    got = by_model(input_row.pk)
    assert got["good"].status == PredictionStatus.PENDING
    assert {got[n].status for n in POISON} == {PredictionStatus.FAILED}
