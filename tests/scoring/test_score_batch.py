"""One unit of the score worker against the real database: claim, resolve, score, policy, snapshots."""

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from predictions.choices import FailureReason, InputStatus, PredictionStatus
from predictions.models import Input, Prediction
from scoring.hashing import leaf_hash, snapshot_document
from scoring.models import Score, Snapshot
from scoring.policy import missing_policy
from scoring.services import claim_inputs, score_batch
from tests.factories import T0, make_model
from tests.scoring.helpers import BAR, make_candle, make_round, make_scoring_input, make_tape

pytestmark = pytest.mark.django_db
NOW = T0 + timedelta(minutes=10)
UP_TAPE = [100.0, 100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0]  # from T0-1m: up


@pytest.fixture
def tape():
    make_tape(T0 - BAR, UP_TAPE)


@pytest.fixture
def models():
    return [make_model(model_id=f"m{i}") for i in range(5)]


def scores_by_model(input_):
    return {s.model.model_id: s for s in Score.objects.filter(input=input_).select_related("model")}


def test_resolves_scores_and_applies_worst_policy_to_failed_and_absent(tape, models):
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9, models[1]: 0.6, models[2]: 0.2, models[3]: "ABSENT", models[4]: "TIMEOUT"})

    result = score_batch(worker="w", batch=10, now=NOW)

    assert (result.claimed, result.resolved, result.scored, result.penalised) == (1, 1, 3, 2)
    input_.refresh_from_db()
    assert input_.status == InputStatus.RESOLVED
    assert input_.actuals["direction_up"] is True
    assert input_.actuals["entry_price"] == 100.0
    assert input_.actuals["resolved_price"] == 104.0
    assert (input_.claimed_by, input_.lease_until) == ("", None)
    scores = scores_by_model(input_)
    assert scores["m0"].value == pytest.approx(0.01)
    assert scores["m1"].value == pytest.approx(0.16)
    assert scores["m2"].value == pytest.approx(0.64)
    # Missing answers get the worst (highest Brier) score given on this Input.
    for model_id, reason in (("m3", "ABSENT"), ("m4", "TIMEOUT")):
        assert scores[model_id].value == pytest.approx(0.64)
        assert scores[model_id].success is False
        assert scores[model_id].failed_reason == reason
    statuses = dict(Prediction.objects.values_list("model__model_id", "status"))
    assert statuses == {"m0": "SCORED", "m1": "SCORED", "m2": "SCORED", "m3": "ABSENT", "m4": "FAILED"}


def test_policy_exclude_leaves_missing_answers_without_value(settings, tape, models):
    settings.MISSING_PREDICTION_POLICY = "exclude"
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9, models[1]: "ABSENT"})
    score_batch(worker="w", batch=10, now=NOW)
    absent = scores_by_model(input_)["m1"]
    assert absent.value is None
    assert absent.success is False
    snapshot = Snapshot.objects.get(model=models[1])
    assert snapshot.result_summary["coverage"] == 0.0
    assert snapshot.result_summary["value"] is None


def test_policy_fixed_value(settings, tape, models):
    settings.MISSING_PREDICTION_POLICY = "1.5"
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9, models[1]: "MODEL_ERROR"})
    score_batch(worker="w", batch=10, now=NOW)
    assert scores_by_model(input_)["m1"].value == 1.5


def test_worst_policy_with_nobody_scored_gives_no_value(tape, models):
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: "ABSENT", models[1]: "TIMEOUT"})
    score_batch(worker="w", batch=10, now=NOW)
    assert {s.value for s in Score.objects.all()} == {None}
    assert Input.objects.get().status == InputStatus.RESOLVED


@pytest.mark.parametrize("bad", ["sometimes", "nan", "inf"])
def test_unusable_policy_setting_is_a_clear_error(settings, bad):
    settings.MISSING_PREDICTION_POLICY = bad
    with pytest.raises(ImproperlyConfigured, match="MISSING_PREDICTION_POLICY"):
        missing_policy()


def test_a_raising_or_invalid_scorer_fails_only_that_prediction(settings, tape, models):
    settings.CALLABLE_OVERRIDES = {
        **settings.CALLABLE_OVERRIDES,
        "SCORING_FUNCTION": "tests.scoring.scorers:flaky_brier",
    }
    first = make_scoring_input(scheduled_for=T0)
    make_round(first, {models[0]: 0.123, models[1]: 0.9, models[2]: 0.321, models[3]: 0.3})
    later = make_scoring_input(scheduled_for=T0 + BAR, config=first.config)
    make_round(later, {models[0]: 0.8, models[1]: 0.9})

    result = score_batch(worker="w", batch=10, now=NOW + BAR)

    assert (result.resolved, result.scored, result.scoring_errors) == (2, 4, 2)
    raised = Prediction.objects.get(input=first, model=models[0])
    assert raised.status == PredictionStatus.FAILED
    assert raised.failure_reason == FailureReason.SCORING_ERROR
    assert "ZeroDivisionError: scorer exploded" in raised.failure_detail
    invalid = Prediction.objects.get(input=first, model=models[2])
    assert invalid.failure_reason == FailureReason.SCORING_ERROR
    assert "not a finite number" in invalid.failure_detail or "finite" in invalid.failure_detail
    first_scores = scores_by_model(first)
    assert first_scores["m0"].success is False
    assert first_scores["m0"].failed_reason == FailureReason.SCORING_ERROR
    assert "ZeroDivisionError" in first_scores["m0"].result["detail"]
    assert first_scores["m0"].value == pytest.approx(0.49)  # worst on the Input: (0.3 - 1)^2
    assert first_scores["m1"].success
    assert first_scores["m3"].success
    assert set(Prediction.objects.filter(input=later).values_list("status", flat=True)) == {"SCORED"}


def test_poisoned_input_backs_off_and_does_not_block_the_queue(settings, tape, models):
    settings.CALLABLE_OVERRIDES = {
        **settings.CALLABLE_OVERRIDES,
        "GROUND_TRUTH_RESOLVER": "tests.scoring.scorers:poisoned_resolver",
    }
    poisoned = make_scoring_input(scheduled_for=T0)
    poisoned.scope = {**poisoned.scope, "poison": True}
    poisoned.save()
    make_round(poisoned, {models[0]: 0.9})
    healthy = make_scoring_input(scheduled_for=T0 + BAR, config=poisoned.config)
    make_round(healthy, {models[0]: 0.9})

    result = score_batch(worker="w", batch=10, now=NOW + BAR)

    assert (result.resolved, result.errors) == (1, 1)
    poisoned.refresh_from_db()
    assert poisoned.status == InputStatus.RECEIVED
    assert poisoned.attempts == 1
    assert "resolver exploded" in poisoned.last_error
    assert poisoned.next_attempt_at == NOW + BAR + timedelta(seconds=10)
    assert poisoned.claimed_by == ""
    assert Input.objects.get(pk=healthy.pk).status == InputStatus.RESOLVED
    # Backing off: not claimed again before next_attempt_at, claimed (and failing again) after.
    assert score_batch(worker="w", batch=10, now=NOW + BAR + timedelta(seconds=5)).claimed == 0
    again = score_batch(worker="w", batch=10, now=NOW + BAR + timedelta(seconds=11))
    assert again.errors == 1
    poisoned.refresh_from_db()
    assert poisoned.attempts == 2
    assert poisoned.next_attempt_at == NOW + BAR + timedelta(seconds=11 + 20)


def test_an_exit_price_that_never_arrives_expires_after_the_grace_period(settings, models):
    settings.GROUND_TRUTH_GRACE_SECONDS = 600
    make_tape(T0 - BAR, [100.0, 101.0, 102.0])  # stops long before the horizon
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9, models[1]: "ABSENT"})

    first = score_batch(worker="w", batch=10, now=T0 + timedelta(minutes=6))
    assert (first.claimed, first.deferred) == (1, 1)
    input_.refresh_from_db()
    assert input_.status == InputStatus.RECEIVED
    assert input_.attempts == 0
    assert Score.objects.count() == 0

    last = score_batch(worker="w", batch=10, now=T0 + timedelta(minutes=5, seconds=600))
    assert last.expired == 1
    input_.refresh_from_db()
    assert input_.status == InputStatus.EXPIRED
    pending = Prediction.objects.get(model=models[0])
    assert (pending.status, pending.failure_reason) == ("FAILED", "NO_GROUND_TRUTH")
    assert Prediction.objects.get(model=models[1]).status == "ABSENT"
    assert Score.objects.count() == 2
    assert {s.value for s in Score.objects.all()} == {None}
    assert Score.objects.get(prediction=pending).failed_reason == "NO_GROUND_TRUTH"
    # Nothing is left to do: the Input will not be claimed again.
    assert score_batch(worker="w", batch=10, now=T0 + timedelta(hours=5)).claimed == 0


def test_a_late_exit_price_is_scored_when_it_arrives(models):
    make_tape(T0 - BAR, [100.0, 101.0, 102.0])
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    assert score_batch(worker="w", batch=10, now=T0 + timedelta(minutes=6)).deferred == 1
    # The feed back-fills the gap afterwards.
    for minute, close in ((2, 103.0), (3, 104.0), (4, 98.0), (5, 99.0)):
        make_candle(T0 + minute * BAR, close)
    result = score_batch(worker="w", batch=10, now=T0 + timedelta(minutes=7))
    assert result.resolved == 1
    input_.refresh_from_db()
    assert input_.actuals["resolved_price"] == 98.0
    assert input_.actuals["direction_up"] is False
    assert Score.objects.get().value == pytest.approx(0.81)


def test_leased_inputs_are_skipped_until_the_lease_expires(tape, models):
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    _token, claimed = claim_inputs(worker="a", batch=10, now=NOW)
    assert [i.pk for i in claimed] == [input_.pk]
    assert claim_inputs(worker="b", batch=10, now=NOW)[1] == []
    # Worker "a" died; its lease (SCORE_LEASE_SECONDS=120) runs out and "b" takes over.
    result = score_batch(worker="b", batch=10, now=NOW + timedelta(seconds=121))
    assert result.resolved == 1
    assert Score.objects.count() == 1


def test_a_worker_that_lost_its_lease_writes_nothing(tape, models):
    from scoring.services import ScoringContext, assess_input, write_outcomes

    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    token, claimed = claim_inputs(worker="a", batch=10, now=NOW)
    ctx = ScoringContext(NOW)
    outcomes = [assess_input(ctx, i) for i in claimed]
    Input.objects.filter(pk=input_.pk).update(claimed_by="b:other")  # someone took over
    assert write_outcomes(ctx, outcomes, token=token) == []
    assert Score.objects.count() == 0
    assert Prediction.objects.get().status == PredictionStatus.PENDING


def test_snapshots_use_aligned_half_open_periods_and_merge_across_batches(models):
    make_tape(T0 - BAR, [100.0 + i for i in range(80)])  # always up
    early = make_scoring_input(scheduled_for=T0 + timedelta(minutes=59))
    make_round(early, {models[0]: 0.9})
    edge = make_scoring_input(scheduled_for=T0 + timedelta(minutes=60), config=early.config)
    make_round(edge, {models[0]: 0.5})
    first = make_scoring_input(scheduled_for=T0 + timedelta(minutes=1), config=early.config)
    make_round(first, {models[0]: 0.7, models[1]: "ABSENT"})

    now = T0 + timedelta(minutes=70)
    score_batch(worker="w", batch=1, now=now)  # T0+1m: first period
    score_batch(worker="w", batch=5, now=now)  # T0+59m (first period) and T0+60m (second)

    snapshots = {(s.model.model_id, s.period_start): s for s in Snapshot.objects.select_related("model")}
    assert set(snapshots) == {("m0", T0), ("m0", T0 + timedelta(hours=1)), ("m1", T0)}
    merged = snapshots[("m0", T0)]
    assert merged.period_end == T0 + timedelta(hours=1)
    assert merged.prediction_count == 2
    assert merged.counts == {"SCORED": 2}
    assert merged.result_summary["value_count"] == 2
    assert merged.result_summary["value"] == pytest.approx((0.09 + 0.01) / 2)
    assert merged.result_summary["p_up"] == pytest.approx(0.8)
    assert merged.result_summary["coverage"] == 1.0
    assert snapshots[("m0", T0 + timedelta(hours=1))].result_summary["value"] == pytest.approx(0.25)
    absent = snapshots[("m1", T0)]
    assert absent.counts == {"ABSENT": 1}
    assert absent.result_summary["coverage"] == 0.0
    assert absent.result_summary["value"] == pytest.approx(0.09)  # worst on its Input
    for snapshot in snapshots.values():
        assert snapshot.content_hash == leaf_hash(snapshot_document(snapshot))


def test_log_loss_is_swappable_by_setting_alone(settings, tape, models):
    settings.CALLABLE_OVERRIDES = {
        **settings.CALLABLE_OVERRIDES,
        "SCORING_FUNCTION": "scoring.functions:log_loss_score",
    }
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.8})
    score_batch(worker="w", batch=10, now=NOW)
    assert Score.objects.get().value == pytest.approx(0.2231435513142097)


@pytest.mark.parametrize(
    ("late", "retry_after"),
    [
        (timedelta(0), timedelta(milliseconds=50)),  # just due: the next tape record is moments away
        (timedelta(seconds=1), timedelta(milliseconds=500)),  # half of how late it already is
        (timedelta(minutes=1), timedelta(seconds=10)),  # long overdue (an outage): capped
    ],
)
def test_an_input_whose_truth_is_not_there_yet_is_looked_at_again_by_how_late_it_is(models, late, retry_after):
    make_tape(T0 - BAR, [100.0, 101.0, 102.0])  # stops before the horizon
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    now = input_.resolvable_at + late
    assert score_batch(worker="w", batch=10, now=now).deferred == 1
    input_.refresh_from_db()
    assert (input_.status, input_.attempts) == (InputStatus.RECEIVED, 0)
    assert input_.next_attempt_at == now + retry_after
    # Not claimed before then; claimed again once it is due.
    assert score_batch(worker="w", batch=10, now=now + retry_after - timedelta(milliseconds=1)).claimed == 0
    again = score_batch(worker="w", batch=10, now=now + retry_after + timedelta(milliseconds=1))
    assert (again.claimed, again.deferred) == (1, 1), again


def test_new_tape_records_bring_an_input_waiting_for_its_data_back_before_its_retry_time(models):
    make_tape(T0 - BAR, [100.0, 101.0, 102.0])  # stops before the horizon
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    now = input_.resolvable_at + timedelta(minutes=1)
    assert score_batch(worker="w", batch=10, now=now).deferred == 1  # retry in 10 s
    soon = now + timedelta(seconds=1)
    assert score_batch(worker="w", batch=10, now=soon).claimed == 0
    # run_score was woken by the feed's tape notification: the waiting Input is looked at now.
    for minute, close in ((2, 103.0), (3, 104.0), (4, 98.0), (5, 99.0)):
        make_candle(T0 + minute * BAR, close)
    assert score_batch(worker="w", batch=10, now=soon, tape_moved=True).resolved == 1


def test_new_tape_records_never_bring_back_an_input_backing_off_after_a_failure(models):
    input_ = make_scoring_input(scheduled_for=T0)
    make_round(input_, {models[0]: 0.9})
    Input.objects.filter(pk=input_.pk).update(attempts=1, next_attempt_at=NOW + timedelta(minutes=5))
    assert score_batch(worker="w", batch=10, now=NOW, tape_moved=True).claimed == 0
