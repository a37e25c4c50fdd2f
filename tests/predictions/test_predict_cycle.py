"""One predict cycle against the real database: statuses, Input, identities, schedule, atomicity."""

import shutil
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings

from feeds.dims import FeedDims
from feeds.selectors import price_at
from predictions.choices import FailureReason, ModelStatus, PredictionStatus
from predictions.models import Input, ModelDeployment, ParticipantModel, Prediction
from predictions.services import run_predict_cycle
from tests.factories import T0, make_config, make_input, make_model
from tests.predictions.helpers import DIMS, fill_tape, make_gateway, write_model

pytestmark = pytest.mark.django_db
NOW = T0 + timedelta(seconds=5)


def due_config(**overrides):
    fields = {"scope_key": "BTC-1m", "scope_template": dict(DIMS), "interval_seconds": 60, "horizon_seconds": 300}
    fields.update(overrides)
    return make_config(next_run_at=T0, **fields)


def predictions_by_model(input_id):
    return {p.model.model_id: p for p in Prediction.objects.filter(input_id=input_id).select_related("model")}


def cycle(gateway, now=NOW, worker_id="w1"):
    return run_predict_cycle(gateway=gateway, worker_id=worker_id, now=now)


def test_one_cycle_records_every_outcome_in_one_input(tmp_path):
    for name in (
        "good",
        "raising",
        "sleeping",
        "missing",
        "out_of_range",
        "wrong_type",
        "nan",
        "extra_keys",
        "not_a_dict",
    ):
        write_model(tmp_path, name)
    fill_tape()
    config = due_config()
    report = cycle(make_gateway(tmp_path, timeout=0.2))

    [input_row] = Input.objects.all()
    assert report.input_id == input_row.pk
    assert input_row.scheduled_for == T0
    assert input_row.resolvable_at == T0 + timedelta(seconds=300)
    assert input_row.status == "RECEIVED"
    assert input_row.scope == {**DIMS, "scope_key": "BTC-1m", "horizon_seconds": 300, "step_seconds": 60}
    assert len(input_row.raw_data["records"]) == 30
    # as_of is the close time of the newest bar, so price_at(as_of) is the last price shown.
    assert input_row.as_of == T0
    assert price_at(FeedDims(**DIMS), input_row.as_of).price == input_row.raw_data["records"][-1]["close"]

    got = predictions_by_model(input_row.pk)
    assert (got["good"].status, got["good"].output) == (PredictionStatus.PENDING, {"p_up": 0.7})
    assert isinstance(got["good"].exec_time_us, int)
    assert (got["raising"].failure_reason, got["raising"].failure_detail) == (
        FailureReason.MODEL_ERROR,
        "RuntimeError: boom",
    )
    assert (got["sleeping"].failure_reason, got["sleeping"].failure_detail) == (
        FailureReason.TIMEOUT,
        "DEADLINE_EXCEEDED",
    )
    assert (got["missing"].failure_reason, got["missing"].failure_detail) == (
        FailureReason.MODEL_ERROR,
        "BAD_IMPLEMENTATION",
    )
    for name, words in {
        "out_of_range": "less than or equal to 1",
        "wrong_type": "valid number",
        "nan": "NaN",
        "extra_keys": "confidence: Extra inputs are not permitted",
        "not_a_dict": "expected a JSON object",
    }.items():
        assert got[name].status == PredictionStatus.FAILED, name
        assert got[name].failure_reason == FailureReason.INVALID_OUTPUT, name
        assert words in got[name].failure_detail, name
    assert got["out_of_range"].output == {"p_up": 1.5}  # the invalid answer is kept for inspection
    assert all(p.resolvable_at == input_row.resolvable_at and p.performed_at == NOW for p in got.values())

    config.refresh_from_db()
    assert config.next_run_at == T0 + timedelta(seconds=60)
    assert (config.claimed_by, config.lease_until) == ("", None)
    assert ParticipantModel.objects.count() == 9
    assert report.counts["pending"] == 1
    assert report.counts["invalid_output"] == 5


def test_a_timed_out_model_is_busy_in_the_next_cycle(tmp_path):
    write_model(tmp_path, "sleeping")
    fill_tape(end=T0 + timedelta(minutes=1))
    due_config()
    gateway = make_gateway(tmp_path, timeout=0.2)
    first = cycle(gateway)
    second = cycle(gateway, now=T0 + timedelta(seconds=61))
    assert predictions_by_model(first.input_id)["sleeping"].failure_detail == "DEADLINE_EXCEEDED"
    busy = predictions_by_model(second.input_id)["sleeping"]
    assert (busy.failure_reason, busy.failure_detail) == (FailureReason.TIMEOUT, "RESOURCE_EXHAUSTED: Server busy")


def test_model_removed_between_cycles_and_after_a_restart_is_absent(tmp_path):
    write_model(tmp_path, "good")
    write_model(tmp_path, "raising")
    fill_tape(end=T0 + timedelta(minutes=2))
    due_config()
    gateway = make_gateway(tmp_path)
    cycle(gateway)
    shutil.rmtree(tmp_path / "raising")
    gateway.refresh()
    second = cycle(gateway, now=T0 + timedelta(seconds=60))
    absent = predictions_by_model(second.input_id)["raising"]
    assert (absent.status, absent.output, absent.exec_time_us) == (PredictionStatus.ABSENT, None, None)
    # A fresh gateway (a restarted worker) knows nothing in memory: the DB says who is expected.
    third = cycle(make_gateway(tmp_path), now=T0 + timedelta(seconds=120))
    got = predictions_by_model(third.input_id)
    assert got["raising"].status == PredictionStatus.ABSENT
    assert got["good"].status == PredictionStatus.PENDING


def test_retired_models_are_neither_expected_nor_recorded(tmp_path):
    write_model(tmp_path, "good")
    make_model(model_id="gone", status=ModelStatus.RETIRED)
    make_model(model_id="good", status=ModelStatus.RETIRED)
    fill_tape()
    due_config()
    report = cycle(make_gateway(tmp_path))
    assert Prediction.objects.filter(input_id=report.input_id).count() == 0
    assert report.counts["retired_skipped"] == 1


def test_identities_are_upserted_and_a_redeploy_records_a_new_deployment(tmp_path):
    folder = write_model(
        tmp_path, "good", manifest={"model_id": "7", "name": "First", "cruncher_id": "w", "cruncher_name": "Ann"}
    )
    fill_tape(end=T0 + timedelta(minutes=1))
    due_config()
    make_model(model_id="7", name="stale name", deployment_id="7_old")
    gateway = make_gateway(tmp_path)
    first = cycle(gateway)
    model = ParticipantModel.objects.get(model_id="7")
    assert (model.name, model.cruncher_id, model.cruncher_name) == ("First", "w", "Ann")
    (folder / "main.py").write_text((folder / "main.py").read_text() + "\n# v2\n")
    gateway.refresh()
    second = cycle(gateway, now=T0 + timedelta(seconds=60))
    model.refresh_from_db()
    deployments = set(ModelDeployment.objects.filter(model=model).values_list("deployment_id", flat=True))
    old = predictions_by_model(first.input_id)["7"].deployment_id
    new = predictions_by_model(second.input_id)["7"].deployment_id
    assert old != new
    assert deployments == {old, new}
    assert model.deployment_id == new
    assert ParticipantModel.objects.filter(model_id="7").count() == 1


def test_after_downtime_the_current_slot_is_served_once_not_every_missed_one(tmp_path):
    write_model(tmp_path, "good")
    fill_tape(count=120, end=T0 + timedelta(hours=1))
    config = due_config()
    now = T0 + timedelta(minutes=30, seconds=20)
    report = cycle(make_gateway(tmp_path), now=now)
    assert report.scheduled_for == T0 + timedelta(minutes=30)
    assert report.counts["missed_slots"] == 30
    assert cycle(make_gateway(tmp_path), now=now) is None  # nothing else due
    config.refresh_from_db()
    assert config.next_run_at == T0 + timedelta(minutes=31)
    assert Input.objects.count() == 1


def test_not_due_inactive_and_leased_configs_are_left_alone(tmp_path):
    write_model(tmp_path, "good")
    fill_tape()
    make_config(scope_key="later", scope_template=dict(DIMS), next_run_at=NOW + timedelta(seconds=1))
    make_config(scope_key="off", scope_template=dict(DIMS), next_run_at=T0, active=False)
    make_config(
        scope_key="leased",
        scope_template=dict(DIMS),
        next_run_at=T0,
        claimed_by="other",
        lease_until=NOW + timedelta(seconds=30),
    )
    assert cycle(make_gateway(tmp_path)) is None
    assert Input.objects.count() == 0


def test_empty_tape_skips_the_slot_without_an_input(tmp_path):
    write_model(tmp_path, "good")
    config = due_config()
    report = cycle(make_gateway(tmp_path))
    assert report.skipped == "no input data on the tape"
    assert Input.objects.count() == 0
    config.refresh_from_db()
    assert config.next_run_at == T0 + timedelta(seconds=60)


def test_a_crash_after_the_model_calls_writes_nothing_and_is_retried_later(tmp_path):
    write_model(tmp_path, "good")
    fill_tape()
    config = due_config()
    broken = {
        **settings.CALLABLE_OVERRIDES,
        "INFERENCE_OUTPUT_VALIDATOR": "tests.predictions.targets:exploding_validator",
    }
    with override_settings(CALLABLE_OVERRIDES=broken), pytest.raises(RuntimeError, match="validator crashed"):
        cycle(make_gateway(tmp_path))
    assert (Input.objects.count(), Prediction.objects.count(), ParticipantModel.objects.count()) == (0, 0, 0)
    config.refresh_from_db()
    assert config.next_run_at == T0  # still due
    assert config.meta["last_error"] == "RuntimeError: validator crashed"
    assert config.lease_until > NOW  # pushed back, so it cannot crash-loop
    report = cycle(make_gateway(tmp_path), now=config.lease_until + timedelta(seconds=1))
    assert report.input_id is not None
    assert Prediction.objects.get().status == PredictionStatus.PENDING
    config.refresh_from_db()
    assert "last_error" not in config.meta


def test_a_slot_already_written_by_another_worker_is_not_written_twice(tmp_path):
    write_model(tmp_path, "good")
    fill_tape()
    config = due_config()
    existing = make_input(config=config, scheduled_for=T0)
    report = cycle(make_gateway(tmp_path))
    assert report.skipped == "slot already served"
    assert list(Input.objects.values_list("pk", flat=True)) == [existing.pk]
    assert Prediction.objects.count() == 0
    config.refresh_from_db()
    assert (config.claimed_by, config.lease_until) == ("", None)
