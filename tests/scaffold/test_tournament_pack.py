"""The tournament pack: tabular examples with their tests, a sample round, node wiring, doctor."""

import json

import pytest

from .helpers import generate, run_challenge_tests
from .test_doctor import run_doctor

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(tmp_path):
    return generate(tmp_path, pack="tournament")


def test_the_tournament_pack_generates_tabular_examples_whose_tests_pass(workspace):
    challenge, node = workspace.challenge_dir, workspace.node_dir
    for relative in (
        "crunch_btc_demo/tabular.py",
        "tournament_examples/logistic/main.py",
        "tournament_examples/constant/main.py",
        "tests/test_tabular.py",
    ):
        assert (challenge / relative).is_file(), relative
    rounds = json.loads((node / "rounds" / "sample_round.json").read_text())
    assert rounds["round_id"] == "sample-round"
    assert {s["part"] for s in rounds["samples"]} == {"in_sample", "out_of_sample"}
    assert (node / "rounds" / "sample_truth.csv").read_text().startswith("sample_id,")
    env = workspace.env
    assert env["MODELS_DIR"].endswith("tournament_examples")
    assert env["TOURNAMENT_PREDICT_METHOD"] == "predict_round"
    assert env["TOURNAMENT_OUT_OF_SAMPLE_WEIGHT"] == "0.5"
    assert env["TOURNAMENT_ROUNDS_DIR"] == str(node / "rounds")
    assert "tournament upload-truth sample-round" in (node / "RUNBOOK.md").read_text()
    configs = json.loads((node / "scheduled_prediction_configs.json").read_text())
    assert [c["active"] for c in configs] == [False]  # a round-based node: no live schedule

    outcome = run_challenge_tests(challenge)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert "test_tabular.py" in outcome.stdout or " passed" in outcome.stdout


def test_other_packs_have_no_tournament_files(tmp_path):
    baseline = generate(tmp_path, pack="baseline")
    assert not (baseline.challenge_dir / "tournament_examples").exists()
    assert "TOURNAMENT_ROUNDS_DIR" not in baseline.env


def test_doctor_checks_the_round_files_and_the_models_round_method(workspace):
    failure, lines = run_doctor(workspace.env)
    assert failure is None, failure
    assert lines["tournament"].startswith("ok")
    assert "1 round file(s), 10 sample(s)" in lines["tournament"]

    failure, lines = run_doctor(workspace.env, TOURNAMENT_PREDICT_METHOD="predict_something_else")
    assert lines["tournament"].startswith("FAIL")
    assert "constant, logistic" in lines["tournament"]

    bad = workspace.node_dir / "rounds" / "broken.json"
    bad.write_text(json.dumps({"samples": [{"sample_id": "a", "features": {}}, {"sample_id": "a", "features": {}}]}))
    failure, lines = run_doctor(workspace.env)
    assert lines["tournament"].startswith("FAIL")
    assert "duplicate sample_id" in lines["tournament"]


def test_doctor_skips_the_tournament_check_without_a_rounds_folder(tmp_path):
    _failure, lines = run_doctor(generate(tmp_path).env)
    assert lines["tournament"].startswith("ok")
    assert "unset" in lines["tournament"]
