import io
import json
import os
import subprocess

import pytest
from django.core.management import CommandError, call_command

from coordinator_site.contract import SLOT_PARAMETERS
from coordinator_site.scaffold.doctor import node_configured_by

from .helpers import generate, stub_callables_for_missing_defaults, write_spec

pytestmark = pytest.mark.django_db


def run_doctor(env: dict[str, str], *args: str, **changes: str) -> tuple[str | None, dict[str, str]]:
    """Doctor in-process for a node configured by `env` (+ changes): (failure message, {check: line})."""
    out = io.StringIO()
    failure = None
    with node_configured_by({**env, **changes}):
        try:
            call_command("doctor", *args, stdout=out)
        except CommandError as exc:
            failure = str(exc)
    lines = [line for line in out.getvalue().splitlines() if line.startswith(("ok ", "FAIL"))]
    return failure, {line[6:42].strip(): line for line in lines}


def assert_only_failure(env, check: str, detail: str, **changes):
    failure, lines = run_doctor(env, **changes)
    assert failure is not None
    assert check in failure, failure
    assert lines[check].startswith("FAIL"), lines[check]
    assert detail in lines[check], lines[check]
    assert [name for name, line in lines.items() if line.startswith("FAIL")] == [check]


@pytest.fixture
def workspace(tmp_path):
    return generate(tmp_path)


def test_doctor_passes_on_a_generated_workspace(workspace):
    failure, lines = run_doctor(workspace.env)

    assert failure is None
    assert list(lines) == [
        "contract",
        *(f"callable {slot}" for slot in SLOT_PARAMETERS),
        "prediction configs",
        "feed source",
        "database",
        "models directory",
        "tournament",
        "start-up checks",
    ]
    assert all(line.startswith("ok") for line in lines.values())
    assert "3 models load" in lines["models directory"]
    assert "crunch_btc_demo.scoring:brier_score" in lines["callable SCORING_FUNCTION"]


def test_doctor_passes_in_a_subprocess_configured_only_by_the_generated_env(workspace, worker_env, manage_py):
    env = {**worker_env, **{k: v for k, v in workspace.env.items() if k != "DATABASE_URL"}}
    result = subprocess.run([*manage_py, "doctor"], env=env, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 18 checks passed" in result.stdout


def test_doctor_catches_a_contract_that_does_not_import(workspace):
    _failure, lines = run_doctor(workspace.env, CRUNCH_CONTRACT="crunch_node_btc_demo.contract:NOPE")
    assert lines["contract"].startswith("FAIL")
    assert "has no attribute 'NOPE'" in lines["contract"]


def test_doctor_catches_a_callable_that_does_not_import(workspace):
    assert_only_failure(
        workspace.env,
        "callable SCORING_FUNCTION",
        "has no attribute 'missing'",
        SCORING_FUNCTION="crunch_btc_demo.scoring:missing",
    )


def test_doctor_catches_a_callable_with_the_wrong_signature(workspace):
    assert_only_failure(
        workspace.env,
        "callable SCORING_FUNCTION",
        "cannot be called as (prediction, ground_truth)",
        SCORING_FUNCTION="tests.foundation.callable_targets:scoring_with_one_parameter",
    )


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("[{", "invalid JSON"),
        ("{}", "expected a JSON array of config objects"),
        (
            '[{"scope_key": "a", "interval_seconds": 60, "horizon_seconds": 60, "every": 5}]',
            "every: Extra inputs are not permitted",
        ),
        ('[{"scope_key": "a", "interval_seconds": 0, "horizon_seconds": 60}]', "interval_seconds"),
        (
            '[{"scope_key": "a", "interval_seconds": 60, "horizon_seconds": 60},'
            ' {"scope_key": "a", "interval_seconds": 30, "horizon_seconds": 60}]',
            "duplicate scope_key 'a'",
        ),
        (
            '[{"scope_key": "a", "scope_template": {"subject": "DOGE"}, "interval_seconds": 60, "horizon_seconds": 60}]',
            "subject 'DOGE', not in FEED_SUBJECTS",
        ),
    ],
)
def test_doctor_catches_malformed_prediction_configs(workspace, tmp_path, content, detail):
    path = tmp_path / "configs.json"
    path.write_text(content)
    assert_only_failure(workspace.env, "prediction configs", detail, PREDICTION_CONFIGS_PATH=str(path))


def test_doctor_catches_a_missing_prediction_configs_file(workspace, tmp_path):
    assert_only_failure(
        workspace.env, "prediction configs", "cannot read", PREDICTION_CONFIGS_PATH=str(tmp_path / "none.json")
    )


def test_doctor_catches_an_unknown_feed_source(workspace):
    assert_only_failure(workspace.env, "feed source", "carrier-pigeon", FEED_SOURCE="carrier-pigeon")


def test_doctor_catches_an_unknown_feed_granularity(workspace):
    assert_only_failure(workspace.env, "feed source", "FEED_GRANULARITY='7q'", FEED_GRANULARITY="7q")


def test_doctor_catches_an_unreachable_database(workspace, manage_py):
    unreachable = {"DATABASE_URL": "postgres://postgres@127.0.0.1:9/nowhere", "PGCONNECT_TIMEOUT": "3"}
    env = {**os.environ, **workspace.env, **unreachable}
    result = subprocess.run([*manage_py, "doctor"], env=env, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode != 0
    database = next(line for line in result.stdout.splitlines() if " database " in line)
    assert database.startswith("FAIL")
    assert "unreachable" in database
    assert "1 of 18 checks failed: database" in result.stderr


def test_doctor_catches_a_missing_models_directory(workspace, tmp_path):
    assert_only_failure(workspace.env, "models directory", "is not a directory", MODELS_DIR=str(tmp_path / "none"))


def test_doctor_catches_a_model_that_fails_to_load(workspace, tmp_path):
    models = tmp_path / "models"
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "main.py").write_text("raise RuntimeError('no weights found')\n")
    assert_only_failure(
        workspace.env,
        "models directory",
        "model 'broken': SETUP_FAILED: importing main: RuntimeError: no weights found",
        MODELS_DIR=str(models),
    )


def test_doctor_catches_a_model_without_a_subclass_of_the_base_class(workspace, tmp_path):
    models = tmp_path / "models"
    (models / "plain").mkdir(parents=True)
    (models / "plain" / "main.py").write_text("class Model:\n    pass\n")
    assert_only_failure(
        workspace.env,
        "models directory",
        "BAD_IMPLEMENTATION: no subclass of crunch_btc_demo.model.ModelBaseClass",
        MODELS_DIR=str(models),
    )


def test_doctor_catches_an_empty_models_directory(workspace, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_only_failure(workspace.env, "models directory", "no model folders", MODELS_DIR=str(tmp_path / "empty"))


def test_doctor_checks_a_spec_file(tmp_path):
    spec = write_spec(tmp_path / "spec.json", pack="realtime", callables=stub_callables_for_missing_defaults())
    failure, lines = run_doctor({}, "--spec", str(spec))

    assert failure is None
    assert lines["spec"].startswith("ok")
    assert "crunch_doctor_spec.scoring:brier_score" in lines["callable SCORING_FUNCTION"]


def test_doctor_reports_a_malformed_spec_file(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"spec_version": "1", "feed": {"source": "pyth", "speed": 3}}))
    failure, lines = run_doctor({}, "--spec", str(spec))

    assert failure is not None
    assert lines["spec"].startswith("FAIL")
    assert "feed.speed: unknown key" in lines["spec"]
