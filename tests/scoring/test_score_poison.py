"""Poison values in scoring (NUL, huge numbers, a resolver that always raises) never stop the stage."""

import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from predictions.choices import ExpiryReason, FailureReason, InputStatus, PredictionStatus
from predictions.models import Input, Prediction
from scoring.models import Leaderboard, Score, Snapshot
from scoring.services import rebuild_leaderboard, score_batch
from tests.factories import T0, make_model
from tests.scoring.helpers import BAR, make_round, make_scoring_input, make_tape

pytestmark = pytest.mark.django_db
NOW = T0 + timedelta(minutes=10)
UP_TAPE = [100.0, 100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0]


@pytest.fixture
def tape():
    make_tape(T0 - BAR, UP_TAPE)


@pytest.fixture
def models():
    return [make_model(model_id=f"m{i}") for i in range(6)]


def use(settings, **slots):
    settings.CALLABLE_OVERRIDES = {**settings.CALLABLE_OVERRIDES, **slots}


def test_poisoned_scores_fail_alone_and_the_leaderboard_is_still_written(settings, tape, models):
    use(settings, SCORING_FUNCTION="tests.scoring.scorers:poison_scorer")
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.11, models[1]: 0.12, models[2]: 0.13, models[3]: 0.14, models[4]: 0.9})

    result = score_batch(worker="w", batch=10, now=NOW)

    assert (result.resolved, result.scored, result.scoring_errors, result.errors) == (1, 1, 4, 0)
    statuses = dict(Prediction.objects.values_list("model__model_id", "status"))
    assert statuses == {"m0": "FAILED", "m1": "FAILED", "m2": "FAILED", "m3": "FAILED", "m4": "SCORED"}
    details = dict(Prediction.objects.values_list("model__model_id", "failure_detail"))
    assert "UNSTORABLE_TEXT" in details["m0"]
    assert "OUT_OF_RANGE" in details["m1"]
    assert "ValueError: bad \\ud800 message\\0" == details["m2"]  # escaped: the reason survives
    assert "UNSTORABLE_TEXT" in details["m3"]
    assert Score.objects.filter(input=input_).count() == 5
    assert all(s.content_hash for s in Snapshot.objects.all())
    board = rebuild_leaderboard(now=NOW)
    assert Leaderboard.objects.filter(pk=board.pk).exists()
    assert {e["model_id"] for e in board.entries} >= {"m0", "m4"}


def test_an_input_that_stays_unprocessable_expires_as_poisoned_after_bounded_attempts(settings, tape, models):
    settings.SCORE_MAX_ATTEMPTS = 3
    use(settings, GROUND_TRUTH_RESOLVER="tests.scoring.scorers:always_raising_resolver")
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9, models[1]: "ABSENT"})

    now = NOW
    kinds = []
    for _ in range(3):
        result = score_batch(worker="w", batch=10, now=now)
        kinds.append((result.errors, result.poisoned))
        now += timedelta(minutes=16)  # past any backoff (capped at 15 min), within the grace
    assert kinds == [(1, 0), (1, 0), (0, 1)]
    input_.refresh_from_db()
    assert (input_.status, input_.expiry_reason, input_.attempts) == (
        InputStatus.EXPIRED,
        ExpiryReason.POISONED,
        3,
    )
    assert "POISONED after 3 attempts" in input_.last_error
    assert "\\0" in input_.last_error
    pending = Prediction.objects.get(input=input_, model=models[0])
    assert (pending.status, pending.failure_reason) == (PredictionStatus.FAILED, FailureReason.INPUT_POISONED)
    # Not held against the models: no value for anyone on a poisoned Input.
    assert set(Score.objects.filter(input=input_).values_list("value", flat=True)) == {None}
    assert score_batch(worker="w", batch=10, now=now).claimed == 0  # nothing retried forever


def test_a_write_that_keeps_failing_ends_poisoned_too(settings, tape, models, monkeypatch):
    from scoring import services

    settings.SCORE_MAX_ATTEMPTS = 2
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    healthy = make_scoring_input(scheduled_for=T0 + BAR, config=input_.config)
    make_round(healthy, {models[0]: 0.8})
    real_insert = services.insert_scores

    def insert_failing_for_first_input(rows):
        if any(r.input_id == input_.pk and r.success for r in rows):
            raise RuntimeError("simulated write failure")
        real_insert(rows)

    monkeypatch.setattr(services, "insert_scores", insert_failing_for_first_input)
    first = score_batch(worker="w", batch=10, now=NOW + BAR)
    assert (first.resolved, first.errors) == (1, 1)
    second = score_batch(worker="w", batch=10, now=NOW + timedelta(minutes=16))
    assert second.poisoned == 1
    input_.refresh_from_db()
    assert (input_.status, input_.expiry_reason) == (InputStatus.EXPIRED, ExpiryReason.POISONED)
    assert "simulated write failure" in input_.last_error


scores = st.one_of(
    st.floats(min_value=0, max_value=1),
    st.sampled_from([float("nan"), float("inf"), 1e308, -1e308, 1e13, 5e-324]),
    st.text(max_size=5),
    st.sampled_from(["\x00", "\ud800"]),
    st.none(),
    st.lists(st.floats(), max_size=2),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(scores, min_size=1, max_size=5), note=st.text(max_size=10) | st.sampled_from(["\x00", "\udc00"]))
def test_property_adversarial_scores_are_terminal_and_good_ones_stored(values, note, settings, tape, models):
    from tests.scoring import scorers

    Score.objects.all().delete()
    Snapshot.objects.all().delete()
    Prediction.objects.all().delete()
    Input.objects.all().delete()
    answers = iter(values)

    def scripted(prediction, ground_truth):
        if prediction.p_up == 0.9:
            return {"value": 0.01}
        return {"value": next(answers), "note": note}

    scorers.scripted = scripted
    use(settings, SCORING_FUNCTION="tests.scoring.scorers:scripted")
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9, **{models[i + 1]: 0.5 for i in range(len(values))}})
    result = score_batch(worker="w", batch=10, now=NOW)
    assert result.resolved == 1
    assert result.errors == 0
    statuses = dict(Prediction.objects.values_list("model__model_id", "status"))
    assert statuses["m0"] == PredictionStatus.SCORED
    assert set(statuses.values()) <= {PredictionStatus.SCORED, PredictionStatus.FAILED}
    assert Score.objects.filter(input=input_).count() == len(values) + 1
    rebuild_leaderboard(now=NOW)


def test_run_score_process_survives_a_poisoned_scorer(settings, manage_py, worker_env):
    now = timezone.now()
    make_tape(now - timedelta(minutes=20), [100.0 + i for i in range(21)])
    models = [make_model(model_id=f"p{i}") for i in range(3)]
    input_ = make_scoring_input(scheduled_for=now - timedelta(minutes=10))
    make_round(input_, {models[0]: 0.11, models[1]: 0.12, models[2]: 0.9})
    env = {**worker_env, "SCORING_FUNCTION": "tests.scoring.scorers:poison_scorer"}
    run = subprocess.run([*manage_py, "run_score", "--once"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    input_.refresh_from_db()
    assert input_.status == InputStatus.RESOLVED
    assert dict(Prediction.objects.values_list("model__model_id", "status")) == {
        "p0": "FAILED",
        "p1": "FAILED",
        "p2": "SCORED",
    }


def test_a_ground_truth_that_cannot_be_stored_is_an_attempt_never_a_failed_batch(settings, tape, models):
    settings.SCORE_MAX_ATTEMPTS = 2
    use(settings, GROUND_TRUTH_RESOLVER="tests.scoring.scorers:nul_ground_truth")
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    first = score_batch(worker="w", batch=10, now=NOW)
    assert (first.errors, first.resolved) == (1, 0)
    input_.refresh_from_db()
    assert "UNSTORABLE_TEXT" in input_.last_error
    second = score_batch(worker="w", batch=10, now=NOW + timedelta(minutes=16))
    assert second.poisoned == 1
    input_.refresh_from_db()
    assert (input_.status, input_.expiry_reason) == (InputStatus.EXPIRED, ExpiryReason.POISONED)
