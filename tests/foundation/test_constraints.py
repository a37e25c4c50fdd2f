"""Integrity lives in the database: natural keys and status checks reject bad rows."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from predictions.models import Prediction
from reports.models import ApiKey
from tests.factories import (
    T0,
    make_checkpoint,
    make_config,
    make_feed_record,
    make_heartbeat,
    make_input,
    make_model,
    make_prediction,
    make_score,
    make_snapshot,
)

pytestmark = pytest.mark.django_db


def rejects(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_two_feed_records_with_the_same_five_dims_are_rejected():
    make_feed_record()
    rejects(make_feed_record)
    make_feed_record(ts_event=T0 + timedelta(minutes=1))  # another time is fine
    make_feed_record(granularity="5m")  # another stream is fine


def test_two_predictions_for_the_same_input_and_model_are_rejected():
    prediction = make_prediction()
    rejects(lambda: make_prediction(input=prediction.input, model=prediction.model))
    assert Prediction.objects.count() == 1


def test_two_scores_for_one_prediction_are_rejected():
    score = make_score()
    rejects(lambda: make_score(prediction=score.prediction))


def test_two_inputs_for_the_same_schedule_slot_are_rejected():
    input_ = make_input()
    rejects(lambda: make_input(config=input_.config, scheduled_for=input_.scheduled_for))


def test_natural_keys_of_models_configs_snapshots_checkpoints_keys_and_heartbeats():
    model = make_model(model_id="dup")
    rejects(lambda: make_model(model_id="dup"))
    make_config(scope_key="BTC-60")
    rejects(lambda: make_config(scope_key="BTC-60"))
    make_snapshot(model=model)
    rejects(lambda: make_snapshot(model=model))
    make_checkpoint()
    rejects(make_checkpoint)
    ApiKey.objects.create(name="a", prefix="abc", hashed_secret="x")
    rejects(lambda: ApiKey.objects.create(name="b", prefix="abc", hashed_secret="y"))
    make_heartbeat(pid=7)
    rejects(lambda: make_heartbeat(pid=7))


def test_status_columns_only_hold_known_statuses():
    rejects(lambda: make_prediction(status="DONE"))
    rejects(lambda: make_input(status="MAYBE"))
    rejects(lambda: make_checkpoint(status="LOST"))


def test_a_failed_prediction_must_say_why_and_a_submitted_checkpoint_needs_a_tx_hash():
    rejects(lambda: make_prediction(status="FAILED", failure_reason=""))
    rejects(lambda: make_prediction(status="FAILED", failure_reason="BECAUSE"))
    make_prediction(status="FAILED", failure_reason="TIMEOUT")
    rejects(lambda: make_checkpoint(status="SUBMITTED", tx_hash=""))


def test_periods_must_be_non_empty():
    rejects(lambda: make_snapshot(period_end=T0))
    rejects(lambda: make_checkpoint(period_end=T0))
