"""The prediction configs file: strict format, upsert by scope_key, the command."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from predictions.configs import ConfigFileError, parse_configs, read_configs
from predictions.models import PredictionConfig
from predictions.services import load_prediction_configs, upsert_prediction_configs
from tests.factories import T0, make_input

ONE = {"scope_key": "BTC-1m", "scope_template": {"subject": "BTC"}, "interval_seconds": 60, "horizon_seconds": 300}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps(ONE), "expected a JSON array"),
        (json.dumps([{**ONE, "intervall": 5}]), "[0] intervall: Extra inputs are not permitted"),
        (
            json.dumps([{**ONE, "interval_seconds": 0}]),
            "[0] interval_seconds: Input should be greater than or equal to 1",
        ),
        (json.dumps([{**ONE, "interval_seconds": "60"}]), "[0] interval_seconds: Input should be a valid integer"),
        (json.dumps([{k: v for k, v in ONE.items() if k != "horizon_seconds"}]), "[0] horizon_seconds: Field required"),
        (json.dumps([ONE, ONE]), "duplicate scope_key 'BTC-1m'"),
    ],
)
def test_a_bad_file_is_rejected_with_a_clear_message(text, problem):
    with pytest.raises(ConfigFileError) as caught:
        parse_configs(text, source="configs.json")
    assert problem in str(caught.value)
    assert str(caught.value).startswith("configs.json: ")


def test_the_repository_file_is_valid():
    specs = read_configs(settings.PREDICTION_CONFIGS_PATH)
    assert specs
    assert all(s.interval_seconds >= 1 for s in specs)


@pytest.mark.django_db
def test_upsert_keeps_rows_and_schedule_updates_fields_and_deactivates_dropped_ones():
    first = parse_configs(json.dumps([ONE, {**ONE, "scope_key": "ETH-1m", "scope_template": {"subject": "ETH"}}]))
    assert upsert_prediction_configs(specs=first, now=T0 + timedelta(seconds=30))["created"] == 2
    btc = PredictionConfig.objects.get(scope_key="BTC-1m")
    assert btc.next_run_at == T0  # first due at the current aligned slot
    PredictionConfig.objects.filter(pk=btc.pk).update(next_run_at=T0 + timedelta(minutes=7))
    make_input(config=btc)  # history that must survive reloads

    changed = parse_configs(json.dumps([{**ONE, "horizon_seconds": 600, "order": 3}]))
    counts = upsert_prediction_configs(specs=changed, now=T0 + timedelta(hours=1))
    assert counts == {"created": 0, "updated": 1, "unchanged": 0, "deactivated": 1}
    btc_after = PredictionConfig.objects.get(scope_key="BTC-1m")
    assert btc_after.pk == btc.pk
    assert (btc_after.horizon_seconds, btc_after.order) == (600, 3)
    assert btc_after.next_run_at == T0 + timedelta(minutes=7)
    assert btc_after.inputs.count() == 1
    assert PredictionConfig.objects.get(scope_key="ETH-1m").active is False
    again = upsert_prediction_configs(specs=changed, now=T0 + timedelta(hours=2))
    assert again == {"created": 0, "updated": 0, "unchanged": 1, "deactivated": 0}


@pytest.mark.django_db
def test_test_databases_are_not_seeded_from_the_repository_file():
    assert PredictionConfig.objects.count() == 0


@pytest.mark.django_db
def test_command_loads_a_file_and_refuses_a_bad_one_without_changing_anything(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([ONE]))
    call_command("load_prediction_configs", "--path", str(good))
    assert f"Prediction configs from {good}: 1 created." in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**ONE, "horizon_seconds": 1, "colour": "red"}]))
    with pytest.raises(CommandError, match="colour"):
        call_command("load_prediction_configs", "--path", str(bad))
    assert PredictionConfig.objects.get().horizon_seconds == 300
    assert load_prediction_configs(path=good)["unchanged"] == 1


def test_migrate_loads_the_configs_file_outside_the_test_suite(tmp_path, manage_py):
    import os
    import subprocess

    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps([ONE]))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_VERSION", "DATABASE_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", PREDICTION_CONFIGS_PATH=str(configs), SECRET_KEY="x"
    )
    done = subprocess.run([*manage_py, "migrate", "-v1"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Prediction configs from" in done.stdout
    assert "created 1" in done.stdout
    again = subprocess.run([*manage_py, "migrate", "-v1"], env=env, capture_output=True, text=True, timeout=120)
    assert "unchanged 1" in again.stdout
