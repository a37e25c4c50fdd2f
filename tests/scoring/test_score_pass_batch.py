"""score_batch with a scoring preset and a score pass, end to end on the real database: CRPS,
per-Input normalisation and capping, the missing-answer policy after the pass, junk outputs."""

from datetime import timedelta

import pytest

from predictions.choices import FailureReason, PredictionStatus
from predictions.models import Prediction
from scoring.models import Score, Snapshot
from scoring.services import rebuild_leaderboard, score_batch
from tests.factories import T0, make_model, make_prediction
from tests.scoring.helpers import BAR, make_round, make_scoring_input, make_tape

pytestmark = pytest.mark.django_db
NOW = T0 + timedelta(minutes=10)
# From T0 - 1m; an Input at T0 with a 5-minute horizon: entry 100 (at T0), exit 104: return 0.04.
UP_TAPE = [100.0, 100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0]
ABS = 1e-12


@pytest.fixture
def tape():
    make_tape(T0 - BAR, UP_TAPE)


@pytest.fixture
def quantile_contract(settings):
    settings.CRUNCH_CONTRACT = "tests.scoring.contracts:CRPS_QUANTILE_NORMALISED"


def answer(input_, model, output=None, status=None):
    if status == PredictionStatus.ABSENT:
        return make_prediction(input=input_, model=model, status=status, output=None)
    if status is not None:
        return make_prediction(
            input=input_, model=model, status=PredictionStatus.FAILED, failure_reason=status, output=None
        )
    return make_prediction(input=input_, model=model, output=output)


def median(x):
    """One quantile, the median: CRPS = 2 x 0.5 x |y - x| = |y - x|."""
    return {"quantiles": {"0.5": x}}


def scores(input_):
    return {s.model.model_id: s for s in Score.objects.filter(input=input_).select_related("model")}


def test_crps_quantile_normalised_per_input_with_missing_and_junk_answers(quantile_contract, tape):
    models = {name: make_model(model_id=name) for name in ("a", "b", "c", "d", "e", "absent", "late", "bad", "empty")}
    input_ = make_scoring_input(scheduled_for=T0)
    # raw CRPS |0.04 - x|: a 0, b 0.01, c 0.02, d 0.04, e 0.08
    for name, x in (("a", 0.04), ("b", 0.03), ("c", 0.02), ("d", 0.0), ("e", -0.04)):
        answer(input_, models[name], median(x))
    answer(input_, models["absent"], status=PredictionStatus.ABSENT)
    answer(input_, models["late"], status=FailureReason.TIMEOUT)
    answer(input_, models["bad"], {"quantiles": {"0.1": 0.05, "0.9": -0.05}})  # non-monotone
    answer(input_, models["empty"], {"quantiles": {}})

    result = score_batch(worker="w", batch=10, now=NOW)

    assert (result.resolved, result.scored, result.scoring_errors, result.penalised) == (1, 5, 2, 4)
    by_model = scores(input_)
    # population = the 5 answers; k = ceil(5 x 0.05) = 1, best 0, t = 0.08: (0.08 - raw) / 0.08
    expected = {"a": (1.0, 0.0), "b": (0.875, 0.01), "c": (0.75, 0.02), "d": (0.5, 0.04), "e": (0.0, 0.08)}
    for name, (value, raw) in expected.items():
        score = by_model[name]
        assert score.success is True
        assert score.value == pytest.approx(value, abs=ABS)
        assert score.result["value"] == pytest.approx(value, abs=ABS)
        assert score.result["raw_value"] == pytest.approx(raw, abs=ABS)
        assert score.result["observed"] == pytest.approx(0.04, abs=ABS)
        assert score.result["score_pass"] == "normalise"
    # Missing answers come after the pass: `worst` is the bottom of the normalised scale, 0;
    # raw_value records what they would have got without the pass (the worst raw CRPS).
    for name in ("absent", "late", "bad", "empty"):
        score = by_model[name]
        assert (score.success, score.value, score.result["policy"]) == (False, 0.0, "worst")
        assert score.result["raw_value"] == pytest.approx(0.08, abs=ABS)
    assert by_model["absent"].failed_reason == "ABSENT"
    assert by_model["late"].failed_reason == "TIMEOUT"
    bad = Prediction.objects.get(model=models["bad"])
    assert (bad.status, bad.failure_reason) == (PredictionStatus.FAILED, FailureReason.SCORING_ERROR)
    assert "not monotone: q(0.9) = -0.05 is below q(0.1) = 0.05" in bad.failure_detail
    assert "quantiles is empty" in Prediction.objects.get(model=models["empty"]).failure_detail
    # Snapshots and the leaderboard aggregate the normalised values, higher is better.
    snapshot = Snapshot.objects.get(model=models["b"])
    assert snapshot.result_summary["value"] == pytest.approx(0.875, abs=ABS)
    assert snapshot.result_summary["raw_value"] == pytest.approx(0.01, abs=ABS)
    board = rebuild_leaderboard(now=NOW)
    ranks = {entry["model_id"]: entry["rank"] for entry in board.entries}
    assert [ranks[name] for name in ("a", "b", "c", "d")] == [1, 2, 3, 4]
    assert board.meta["ranking_direction"] == "desc"


def test_each_input_is_its_own_population(quantile_contract, tape):
    first = make_scoring_input(scheduled_for=T0)
    second = make_scoring_input(scheduled_for=T0 + BAR, config=first.config)  # entry 101, exit 105
    a, b, c = (make_model(model_id=name) for name in "abc")
    y2 = (105.0 - 101.0) / 101.0
    for model, x1, x2 in ((a, 0.04, y2 - 0.03), (b, 0.02, y2), (c, 0.0, y2 - 0.01)):
        answer(first, model, median(x1))
        answer(second, model, median(x2))

    score_batch(worker="w", batch=10, now=NOW + BAR)

    # first: raw 0, 0.02, 0.04 -> 1, 0.5, 0; second: raw 0.03, 0, 0.01 -> 0, 1, 2/3
    assert {k: s.value for k, s in scores(first).items()} == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0}, abs=1e-9)
    assert {k: s.value for k, s in scores(second).items()} == pytest.approx({"a": 0.0, "b": 1.0, "c": 2 / 3}, abs=1e-9)


def test_when_every_answer_ties_they_all_get_1_and_a_missing_answer_still_gets_0(quantile_contract, tape):
    input_ = make_scoring_input(scheduled_for=T0)
    a, b, gone = (make_model(model_id=name) for name in ("a", "b", "gone"))
    answer(input_, a, median(0.01))
    answer(input_, b, median(0.01))
    answer(input_, gone, status=PredictionStatus.ABSENT)
    score_batch(worker="w", batch=10, now=NOW)
    assert {k: s.value for k, s in scores(input_).items()} == {"a": 1.0, "b": 1.0, "gone": 0.0}


@pytest.mark.parametrize(("policy", "missing_value"), [("exclude", None), ("0.25", 0.25)])
def test_exclude_and_fixed_policies_apply_after_the_pass(settings, quantile_contract, tape, policy, missing_value):
    settings.MISSING_PREDICTION_POLICY = policy
    input_ = make_scoring_input(scheduled_for=T0)
    a, b, gone = (make_model(model_id=name) for name in ("a", "b", "gone"))
    answer(input_, a, median(0.04))
    answer(input_, b, median(0.0))
    answer(input_, gone, status=PredictionStatus.ABSENT)
    score_batch(worker="w", batch=10, now=NOW)
    by_model = scores(input_)
    assert (by_model["a"].value, by_model["b"].value) == (1.0, 0.0)
    # The fixed value is on the normalised scale: taken as given, not normalised again.
    assert by_model["gone"].value == missing_value
    assert by_model["gone"].result["raw_value"] == missing_value


def test_crps_ensemble_capped_from_the_environment(settings, tape):
    settings.CRUNCH_CONTRACT = "tests.scoring.contracts:CRPS_ENSEMBLE"
    settings.SCORE_PASS = "cap"
    settings.SCORE_PASS_CAP_PERCENTILE = "75"
    input_ = make_scoring_input(scheduled_for=T0)
    models = [make_model(model_id=f"m{i}") for i in range(5)]
    # One sample each: CRPS = |0.04 - x| = 0, 0.01, 0.02, 0.03, 0.44
    for model, x in zip(models, (0.04, 0.05, 0.02, 0.07, 0.48), strict=True):
        answer(input_, model, {"samples": [x]})
    junk = [make_model(model_id=name) for name in ("empty", "text")]
    answer(input_, junk[0], {"samples": []})
    answer(input_, junk[1], {"samples": ["NaN"]})

    result = score_batch(worker="w", batch=10, now=NOW)

    assert (result.resolved, result.scored, result.scoring_errors) == (1, 5, 2)
    by_model = scores(input_)
    # p = 75 of 0, 0.01, 0.02, 0.03, 0.44: h = 3, cap = 0.03; values stay raw CRPS (asc)
    expected = {"m0": 0.0, "m1": 0.01, "m2": 0.02, "m3": 0.03, "m4": 0.03}
    assert {k: by_model[k].value for k in expected} == pytest.approx(expected, abs=ABS)
    assert by_model["m4"].result["raw_value"] == pytest.approx(0.44, abs=ABS)
    assert by_model["m4"].result["score_pass"] == "cap"
    # worst after the cap: the cap itself
    for name, reason in (("empty", "samples is empty"), ("text", "valid number")):
        assert by_model[name].value == pytest.approx(0.03, abs=ABS)
        assert by_model[name].failed_reason == FailureReason.SCORING_ERROR
        assert reason in Prediction.objects.get(model__model_id=name).failure_detail


def test_without_a_pass_scores_are_stored_as_before(tape):
    input_ = make_scoring_input(scheduled_for=T0)
    a, b = make_model(model_id="a"), make_model(model_id="b")
    make_round(input_, {a: 0.9, b: "ABSENT"})
    score_batch(worker="w", batch=10, now=NOW)
    by_model = scores(input_)
    assert by_model["a"].result == {"value": pytest.approx(0.01), "p_up": 0.9, "outcome": 1.0}
    assert "raw_value" not in by_model["b"].result


def test_the_docs_example_contract_scores_its_grid_and_refuses_another(settings, tape):
    settings.CRUNCH_CONTRACT = "tests.scoring.contracts:CRPS_QUANTILE_GRID"
    input_ = make_scoring_input(scheduled_for=T0)
    grid = ("0.05", "0.25", "0.5", "0.75", "0.95")
    sharp, wide, off_grid = (make_model(model_id=name) for name in ("sharp", "wide", "off_grid"))
    answer(input_, sharp, {"quantiles": dict(zip(grid, (0.03, 0.035, 0.04, 0.045, 0.05), strict=True))})
    answer(input_, wide, {"quantiles": dict(zip(grid, (-0.1, -0.05, 0.0, 0.05, 0.1), strict=True))})
    answer(input_, off_grid, {"quantiles": {"0.1": 0.0, "0.5": 0.04, "0.9": 0.08}})
    result = score_batch(worker="w", batch=10, now=NOW)
    assert (result.scored, result.scoring_errors) == (2, 1)
    by_model = scores(input_)
    assert (by_model["sharp"].value, by_model["wide"].value, by_model["off_grid"].value) == (1.0, 0.0, 0.0)
    assert by_model["sharp"].result["raw_value"] < by_model["wide"].result["raw_value"]
    detail = Prediction.objects.get(model=off_grid).failure_detail
    assert "quantile levels must be exactly 0.05, 0.25, 0.5, 0.75, 0.95" in detail
