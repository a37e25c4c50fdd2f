"""`manage.py run_predict` as real processes against the test database."""

import subprocess
from datetime import timedelta

from django.utils import timezone

from predictions.choices import PredictionStatus
from predictions.models import Input, Prediction, PredictionConfig
from tests.factories import make_config
from tests.predictions.helpers import BASE, DIMS, fill_tape, write_model


def predict_env(worker_env, models_dir, **extra):
    return {
        **worker_env,
        "MODELS_DIR": str(models_dir),
        "MODEL_BASE_CLASSNAME": BASE,
        "MODEL_CALL_TIMEOUT_SECONDS": "1",
        **extra,
    }


def setup_due_config(tmp_path):
    for name in ("good", "raising"):
        write_model(tmp_path / "models", name)
    now = timezone.now()
    fill_tape(end=now)
    return make_config(scope_key="BTC-1m", scope_template=dict(DIMS), next_run_at=now - timedelta(seconds=1))


def test_two_runs_started_together_write_the_slot_once(tmp_path, manage_py, worker_env):
    config = setup_due_config(tmp_path)
    env = predict_env(worker_env, tmp_path / "models")
    runs = [
        subprocess.Popen(
            [*manage_py, "run_predict", "--once"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    [input_row] = Input.objects.all()
    assert Prediction.objects.filter(input=input_row).count() == 2
    assert set(Prediction.objects.values_list("status", flat=True)) == {
        PredictionStatus.PENDING,
        PredictionStatus.FAILED,
    }
    config.refresh_from_db()
    assert config.next_run_at == input_row.scheduled_for + timedelta(seconds=60)
    # A third run in the same slot finds nothing due.
    third = subprocess.run([*manage_py, "run_predict", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert Input.objects.count() == 1


def test_a_process_killed_between_model_calls_and_the_write_leaves_no_partial_cycle(tmp_path, manage_py, worker_env):
    config = setup_due_config(tmp_path)
    env = predict_env(worker_env, tmp_path / "models")
    crashed = subprocess.run(
        [*manage_py, "run_predict", "--once"],
        env={**env, "INFERENCE_OUTPUT_VALIDATOR": "tests.predictions.targets:hard_exit_validator"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == 3, crashed.stdout + crashed.stderr
    assert (Input.objects.count(), Prediction.objects.count()) == (0, 0)
    config.refresh_from_db()
    assert config.claimed_by  # the dead worker's lease is still on the row...
    PredictionConfig.objects.filter(pk=config.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )  # ...until it expires
    done = subprocess.run([*manage_py, "run_predict", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [input_row] = Input.objects.all()
    assert Prediction.objects.filter(input=input_row).count() == 2
