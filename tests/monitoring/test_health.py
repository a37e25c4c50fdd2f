"""The one health model: each stage judged from stored progress against its own cadence."""

import socket
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command

from coordinator_site.health import AMBER, GREEN, RED
from monitoring.health import (
    current_health,
    feed_check,
    forget_health,
    node_health,
    worker_check,
)
from predictions.choices import FailureReason, InputStatus, PredictionStatus
from tests.factories import (
    T0,
    make_checkpoint,
    make_config,
    make_heartbeat,
    make_ingestion_state,
    make_input,
    make_model,
    make_prediction,
)

pytestmark = pytest.mark.django_db
T = T0 + timedelta(days=3, hours=12)
STAGE_WORKERS = ("run_feed", "run_predict", "run_score", "run_checkpoint")


def healthy_node(*, now=T, cadence=7.0):
    """Four workers beating, a fresh 1 s tick stream: green, before predict/score/checkpoint data."""
    for name in STAGE_WORKERS:
        make_heartbeat(name=name, last_beat_at=now - timedelta(seconds=1), cadence_seconds=cadence)
    make_ingestion_state(kind="tick", granularity="1s", last_event_ts=now - timedelta(seconds=1))


def check(health, stage, name=None):
    return next(c for c in health.checks if c.stage == stage and (name is None or c.name == name))


@pytest.mark.parametrize(
    ("age", "cadence", "stopped", "errors", "level"),
    [
        (timedelta(seconds=2), 7.0, False, 0, GREEN),
        (timedelta(seconds=8), 7.0, False, 0, AMBER),  # beyond its cadence
        (timedelta(seconds=10), 7.0, False, 0, AMBER),
        (timedelta(seconds=11), 7.0, False, 0, RED),  # beyond 1.5 times its cadence
        # A checkpoint worker that announced a long cadence is not judged against another's.
        (timedelta(seconds=26), 35.0, False, 0, GREEN),
        (timedelta(seconds=2), 7.0, True, 0, RED),
        (timedelta(seconds=2), 7.0, False, 1, AMBER),
        (timedelta(seconds=2), 7.0, False, 5, RED),
    ],
)
def test_a_worker_is_judged_against_its_own_cadence(age, cadence, stopped, errors, level):
    beat = make_heartbeat(
        last_beat_at=T - age,
        cadence_seconds=cadence,
        stopped_at=T if stopped else None,
        consecutive_errors=errors,
        last_error="ValueError: boom" if errors else "",
    )
    result = worker_check(beat, now=T)
    assert result.level == level, result.reason
    assert result.values["cadence_seconds"] == cadence


def test_a_silent_worker_says_how_long_and_what_was_expected():
    beat = make_heartbeat(name="run_score", last_beat_at=T - timedelta(seconds=30), cadence_seconds=7.0)
    assert worker_check(beat, now=T).reason == "no heartbeat for 30 s (expected every 7 s)"


@pytest.mark.parametrize(
    ("lag", "errors", "level"),
    [
        (timedelta(minutes=2), 0, GREEN),  # a 1m candle is stored a bar after it opens
        (timedelta(minutes=2), 3, AMBER),
        (timedelta(minutes=10), 0, AMBER),
        (timedelta(hours=1), 0, RED),
    ],
)
def test_a_feed_is_judged_against_its_stream_step(lag, errors, level):
    state = make_ingestion_state(last_event_ts=T - lag, consecutive_errors=errors, last_error="boom" if errors else "")
    assert feed_check(state, now=T).level == level


def test_a_feed_without_any_record_is_red_with_its_error():
    state = make_ingestion_state(last_event_ts=None, last_error="ConnectionError: refused")
    result = feed_check(state, now=T)
    assert (result.level, result.reason) == (RED, "nothing ingested yet; last error: ConnectionError: refused")


def test_an_empty_node_is_red_and_says_to_start_the_workers():
    health = node_health(now=T)
    assert health.level == RED
    assert "start the workers" in health.reason


def test_a_healthy_node_is_green_and_a_missing_stage_worker_is_red():
    healthy_node()
    assert node_health(now=T).level == GREEN
    from coordinator_site.models import WorkerHeartbeat

    WorkerHeartbeat.objects.filter(name="run_checkpoint").delete()
    health = node_health(now=T)
    assert health.level == RED
    assert health.reason == "worker run_checkpoint: no heartbeat yet: start it"


def test_predict_slots_late_then_missed_against_the_config_interval():
    healthy_node()
    config = make_config(scope_key="BTC-60s", interval_seconds=60, next_run_at=T - timedelta(seconds=3))
    assert check(node_health(now=T), "predict").level == GREEN
    config.next_run_at = T - timedelta(seconds=30)
    config.save()
    late = check(node_health(now=T), "predict")
    assert (late.level, late.reason) == (AMBER, "slot late by 30 s")
    config.next_run_at = T - timedelta(seconds=150)
    config.save()
    missed = check(node_health(now=T), "predict")
    assert missed.level == RED
    assert missed.values["slots_missed"] == 2
    assert missed.reason.startswith("2 slot(s) missed")


def test_predict_answer_share_of_the_newest_slot():
    healthy_node()
    config = make_config(scope_key="BTC-60s", next_run_at=T + timedelta(seconds=30))
    old = make_input(config=config, scheduled_for=T - timedelta(minutes=2))
    newest = make_input(config=config, scheduled_for=T - timedelta(minutes=1))
    models = [make_model() for _ in range(4)]
    for model in models:  # the old slot: nobody answered (must not count)
        make_prediction(input=old, model=model, status=PredictionStatus.ABSENT)
    make_prediction(input=newest, model=models[0])
    make_prediction(input=newest, model=models[1], status=PredictionStatus.SCORED)
    make_prediction(input=newest, model=models[2], status=PredictionStatus.FAILED, failure_reason=FailureReason.TIMEOUT)
    make_prediction(input=newest, model=models[3], status=PredictionStatus.ABSENT)
    result = check(node_health(now=T), "predict")
    assert result.level == GREEN
    assert result.values["answer_share"] == 0.5
    from predictions.models import Prediction

    Prediction.objects.filter(input=newest, model=models[1]).update(
        status=PredictionStatus.FAILED, failure_reason=FailureReason.MODEL_ERROR
    )
    result = check(node_health(now=T), "predict")
    assert (result.level, result.reason) == (AMBER, "only 1 of 4 models answered the newest slot")
    Prediction.objects.filter(input=newest).update(status=PredictionStatus.ABSENT)
    assert check(node_health(now=T), "predict").level == RED


def test_score_backlog_by_age_of_the_oldest_resolvable_input(settings):
    settings.GROUND_TRUTH_GRACE_SECONDS = 60
    healthy_node(cadence=7.0)
    config = make_config(next_run_at=T + timedelta(seconds=30))
    make_input(config=config, scheduled_for=T - timedelta(minutes=5), resolvable_at=T + timedelta(seconds=5))
    assert check(node_health(now=T), "score").values["backlog_inputs"] == 0
    due = make_input(config=config, scheduled_for=T - timedelta(minutes=4), resolvable_at=T - timedelta(seconds=5))
    score = check(node_health(now=T), "score")
    assert (score.level, score.values["backlog_inputs"]) == (GREEN, 1)
    due.resolvable_at = T - timedelta(seconds=30)  # > 2 cadences + the tape's 2 s step
    due.save()
    score = check(node_health(now=T), "score")
    assert score.level == AMBER
    assert score.reason == "backlog: 1 resolvable input(s), oldest 30 s past resolvable_at"
    due.resolvable_at = T - timedelta(seconds=90)  # past the grace: should have been expired
    due.save()
    assert check(node_health(now=T), "score").level == RED
    due.status = InputStatus.EXPIRED
    due.save()
    assert check(node_health(now=T), "score").level == GREEN


def test_checkpoint_due_then_waiting_with_the_reason_then_overdue(settings):
    settings.CHECKPOINT_INTERVAL_SECONDS = 3600
    settings.CHECKPOINT_GRACE_SECONDS = 60
    healthy_node(cadence=7.0)
    config = make_config(next_run_at=T + timedelta(hours=1))
    start = T - timedelta(minutes=30)
    input_ = make_input(config=config, scheduled_for=start, resolvable_at=start + timedelta(minutes=40))
    due = check(node_health(now=T - timedelta(minutes=20)), "checkpoint")
    assert due.level == GREEN
    assert due.reason == "next checkpoint due in 20 m"
    waiting = check(node_health(now=T + timedelta(seconds=10)), "checkpoint")
    assert waiting.level == GREEN  # the period just ended: waiting for its input is correct
    assert waiting.values["waiting"] == 1
    assert "waiting for: " in waiting.reason
    assert "input" in waiting.reason
    input_.status = InputStatus.RESOLVED
    input_.save()
    overdue = check(node_health(now=T + timedelta(minutes=20)), "checkpoint")
    assert overdue.level == RED  # ready for 20 minutes and still not built
    assert overdue.reason.startswith("overdue: period ended 20 m ago, ready")


def test_a_built_checkpoint_unconfirmed_for_a_whole_period_is_amber(settings):
    settings.CHECKPOINT_INTERVAL_SECONDS = 3600
    healthy_node()
    make_checkpoint(
        period_start=T - timedelta(hours=1), period_end=T + timedelta(hours=2), created_at=T - timedelta(hours=2)
    )
    result = check(node_health(now=T), "checkpoint")
    assert result.level == AMBER
    assert "unconfirmed for 2 h" in result.reason


def test_a_checkpoint_that_failed_verification_is_red_with_its_id(settings):
    settings.CHECKPOINT_INTERVAL_SECONDS = 3600
    healthy_node()
    failed = make_checkpoint(
        period_start=T - timedelta(hours=1),
        period_end=T + timedelta(hours=2),
        meta={"verification": {"ok": False, "problems": ["leaf 0 changed"]}},
    )
    result = check(node_health(now=T), "checkpoint")
    assert result.level == RED
    assert f"checkpoint(s) {failed.pk} failed verification" in result.reason
    assert result.values["unverified"] == 1


def test_current_health_is_computed_at_most_every_few_seconds(settings):
    settings.HEALTH_CACHE_SECONDS = 60
    first = current_health()
    healthy_node()
    assert current_health() is first  # cached: probes cost no query
    forget_health()
    assert current_health() is not first


@time_machine.travel(T, tick=False)
def test_worker_health_command_reads_the_health_model(capsys):
    host = socket.gethostname()
    make_heartbeat(name="run_score", host=host, last_beat_at=T - timedelta(seconds=2), cadence_seconds=7.0)
    call_command("worker_health", "run_score")
    assert "run_score (pid" in capsys.readouterr().out
    make_heartbeat(name="run_checkpoint", host=host, last_beat_at=T - timedelta(seconds=26), cadence_seconds=35.0)
    call_command("worker_health", "run_checkpoint")  # the 30 s sleeper is judged by its own cadence
    make_heartbeat(name="run_feed", host=host, last_beat_at=T - timedelta(seconds=20), cadence_seconds=7.0)
    with pytest.raises(CommandError, match=r"run_feed .*no heartbeat for 20 s \(expected every 7 s\)"):
        call_command("worker_health", "run_feed")


def test_computing_health_costs_a_fixed_number_of_queries(django_assert_num_queries):
    healthy_node()
    config = make_config(next_run_at=T + timedelta(seconds=30))
    for minutes in range(1, 4):
        input_ = make_input(config=config, scheduled_for=T - timedelta(minutes=minutes))
        for _ in range(3):
            make_prediction(input=input_)
    make_ingestion_state(subject="ETH", last_event_ts=T)
    # heartbeats, feed states, configs, newest answers, score backlog, unconfirmed checkpoint,
    # failed verifications, next period (newest checkpoint, first snapshot, first input);
    # readiness only once it ended
    with django_assert_num_queries(10):
        node_health(now=T)


def test_live_processes_are_counted_against_each_workers_own_cadence():
    from monitoring.health import live_process_counts

    make_heartbeat(name="run_checkpoint", last_beat_at=T - timedelta(seconds=26), cadence_seconds=35.0)
    make_heartbeat(name="run_score", last_beat_at=T - timedelta(seconds=26), cadence_seconds=7.0)
    make_heartbeat(name="run_score", last_beat_at=T - timedelta(seconds=1), cadence_seconds=7.0)
    make_heartbeat(name="run_feed", last_beat_at=T - timedelta(seconds=1), cadence_seconds=7.0, stopped_at=T)
    assert live_process_counts(now=T) == {"run_checkpoint": 1, "run_score": 1}
