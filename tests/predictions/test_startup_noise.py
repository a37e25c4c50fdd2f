"""A new node starts quietly: configs line says what it is, no 'missed during downtime' warning."""

import json
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command

from predictions.services import run_predict_cycle
from tests.factories import T0, make_config, make_input
from tests.predictions.helpers import DIMS, fill_tape, make_gateway, write_model

pytestmark = pytest.mark.django_db


def test_the_configs_line_names_the_file_and_only_what_happened(tmp_path, capsys):
    path = tmp_path / "configs.json"
    path.write_text(json.dumps([{"scope_key": "BTC-1m", "scope_template": {}, "interval_seconds": 60,
                                 "horizon_seconds": 300}]))  # fmt: skip
    call_command("load_prediction_configs", "--path", str(path))
    call_command("load_prediction_configs", "--path", str(path))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"Prediction configs from {path}: 1 created.", f"Prediction configs from {path}: 1 unchanged."]


def test_a_new_schedule_started_late_is_not_a_downtime_warning(tmp_path, caplog):
    write_model(tmp_path, "good")
    fill_tape(count=30, end=T0 + timedelta(minutes=5))
    make_config(next_run_at=T0, scope_template=dict(DIMS))
    with caplog.at_level(logging.INFO, logger="predictions"):
        run_predict_cycle(gateway=make_gateway(tmp_path), worker_id="w1", now=T0 + timedelta(minutes=3, seconds=1))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("first slot served" in r.getMessage() for r in caplog.records)


def test_slots_missed_after_the_schedule_has_served_are_still_a_warning(tmp_path, caplog):
    write_model(tmp_path, "good")
    fill_tape(count=30, end=T0 + timedelta(minutes=5))
    config = make_config(next_run_at=T0, scope_template=dict(DIMS))
    make_input(config=config, scheduled_for=T0 - timedelta(minutes=1))
    with caplog.at_level(logging.INFO, logger="predictions"):
        run_predict_cycle(gateway=make_gateway(tmp_path), worker_id="w1", now=T0 + timedelta(minutes=3, seconds=1))
    assert any(r.levelno == logging.WARNING and "missed during downtime" in r.getMessage() for r in caplog.records)
