"""CRPS scoring functions: golden values against scoringrules 0.10.0 (a test-only dependency) to
1e-9, hand-computed worked examples (docs/rules.md), and junk distributions refused with a reason."""

import functools
import math
import random

import numpy as np
import pytest
import scoringrules
from pydantic import ValidationError

from coordinator_site.contract import StarterGroundTruth
from scoring.distributions import EnsembleForecast, QuantileForecast, quantile_forecast_type
from scoring.functions import crps_ensemble_fair_score, crps_ensemble_score, crps_quantile_score

TOLERANCE = {"rel": 1e-9, "abs": 1e-9}


def truth(realised_return: float, resolved_price: float = 101.0) -> StarterGroundTruth:
    return StarterGroundTruth(
        entry_price=100.0, resolved_price=resolved_price, **{"return": realised_return}, direction_up=True
    )


def test_the_reference_implementation_is_the_pinned_one():
    assert scoringrules.__version__ == "0.10.0"


# --- worked examples (docs/rules.md, "Scoring presets") ----------------------------------------


def test_quantile_worked_example():
    # q=0.1 at -0.02 <= 0.01: 0.1 * 0.03 = 0.003; q=0.5 at 0 <= 0.01: 0.5 * 0.01 = 0.005;
    # q=0.9 at 0.02 > 0.01: (1 - 0.9) * 0.01 = 0.001; CRPS = 2 * (0.009 / 3) = 0.006
    forecast = QuantileForecast(quantiles={"0.1": -0.02, "0.5": 0.0, "0.9": 0.02})
    result = crps_quantile_score(forecast, truth(0.01))
    assert result == {"value": pytest.approx(0.006, abs=1e-15), "observed": 0.01}


def test_ensemble_worked_example_energy_and_fair_forms():
    # samples 101, 102, 104 against the resolved price 103: mean |x - y| = (2 + 1 + 1) / 3 = 4/3,
    # sum over all pairs (i, j) of |x_i - x_j| = 2 * (1 + 3 + 2) = 12.
    # energy (NRG): 4/3 - 12 / (2 * 3^2) = 2/3;  fair: 4/3 - 12 / (2 * 3 * 2) = 1/3.
    by_price = functools.partial(crps_ensemble_score, target="resolved_price")
    fair_by_price = functools.partial(crps_ensemble_fair_score, target="resolved_price")
    forecast = EnsembleForecast(samples=[104.0, 101.0, 102.0])
    assert by_price(forecast, truth(0.03, resolved_price=103.0))["value"] == pytest.approx(2 / 3, abs=1e-12)
    assert fair_by_price(forecast, truth(0.03, resolved_price=103.0))["value"] == pytest.approx(1 / 3, abs=1e-12)


def test_one_sample_is_the_absolute_error_and_a_point_mass_quantile_too():
    assert crps_ensemble_score({"samples": [0.02]}, {"return": -0.01})["value"] == pytest.approx(0.03, abs=1e-15)
    # All quantiles at one point: 2/|Q| * sum pinball -> the absolute error when levels are symmetric.
    point = {"quantiles": {"0.25": 0.02, "0.5": 0.02, "0.75": 0.02}}
    assert crps_quantile_score(point, {"return": -0.01})["value"] == pytest.approx(0.03, abs=1e-15)


def test_a_perfect_point_forecast_scores_zero():
    assert crps_ensemble_score({"samples": [0.01, 0.01]}, {"return": 0.01})["value"] == 0.0
    assert crps_quantile_score({"quantiles": {"0.5": 0.01}}, {"return": 0.01})["value"] == 0.0


# --- golden values against scoringrules ------------------------------------------------------


def random_cases(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        size = rng.choice([1, 2, 3, 5, 10, 51, 200, 1000])
        centre, spread = rng.choice([(0.0, 0.01), (0.0, 1.0), (95_000.0, 1_500.0)])
        samples = [rng.gauss(centre, spread) for _ in range(size)]
        if rng.random() < 0.2:  # ties
            samples = [round(x, 1 if spread > 1 else 3) for x in samples]
        yield samples, rng.gauss(centre, spread * 1.5)


@pytest.mark.parametrize("seed", range(4))
def test_ensemble_energy_form_matches_scoringrules_nrg(seed):
    for samples, observed in random_cases(seed, 40):
        expected = float(scoringrules.crps_ensemble(observed, np.array(samples), estimator="nrg", backend="numpy"))
        # "qd" (the default) and "int" are the same estimator of the empirical distribution.
        default = float(scoringrules.crps_ensemble(observed, np.array(samples), backend="numpy"))
        got = crps_ensemble_score({"samples": samples}, {"return": observed})["value"]
        assert got == pytest.approx(expected, **TOLERANCE)
        assert got == pytest.approx(default, **TOLERANCE)


@pytest.mark.parametrize("seed", range(4))
def test_ensemble_fair_form_matches_scoringrules_fair_and_pwm(seed):
    for samples, observed in random_cases(100 + seed, 40):
        if len(samples) < 2:
            continue
        got = crps_ensemble_fair_score({"samples": samples}, {"return": observed})["value"]
        for estimator in ("fair", "pwm"):
            expected = scoringrules.crps_ensemble(observed, np.array(samples), estimator=estimator, backend="numpy")
            assert got == pytest.approx(float(expected), **TOLERANCE), estimator


@pytest.mark.parametrize("seed", range(4))
def test_quantile_form_matches_scoringrules_crps_quantile(seed):
    rng = random.Random(200 + seed)
    grids = [[0.5], [0.05, 0.5, 0.95], [0.1, 0.25, 0.5, 0.75, 0.9], [i / 100 for i in range(1, 100)]]
    for _ in range(40):
        levels = rng.choice(grids)
        centre, spread = rng.choice([(0.0, 0.01), (95_000.0, 1_500.0)])
        values = sorted(rng.gauss(centre, spread) for _ in levels)
        observed = rng.gauss(centre, spread)
        expected = scoringrules.crps_quantile(observed, np.array(values), np.array(levels), backend="numpy")
        forecast = QuantileForecast(quantiles={repr(q): v for q, v in zip(levels, values, strict=True)})
        got = crps_quantile_score(forecast, {"return": observed})["value"]
        assert got == pytest.approx(float(expected), **TOLERANCE)


def test_quantile_levels_in_any_key_order_score_the_same():
    ordered = {"0.1": -1.0, "0.5": 0.0, "0.9": 1.0}
    shuffled = {"0.9": 1.0, "0.1": -1.0, "0.5": 0.0}
    assert crps_quantile_score({"quantiles": ordered}, {"return": 0.3}) == crps_quantile_score(
        {"quantiles": shuffled}, {"return": 0.3}
    )


# --- junk is refused, with the reason -----------------------------------------------------------

JUNK_QUANTILES = [
    ({"0.1": 2.0, "0.5": 1.0}, "not monotone"),
    ({}, "empty"),
    ({"0.5": float("nan")}, "not a finite number"),
    ({"0.5": float("inf")}, "not a finite number"),
    ({"1.5": 1.0}, "strictly between 0 and 1"),
    ({"0": 1.0}, "strictly between 0 and 1"),
    ({"median": 1.0}, "not a number"),
    ({"0.5": 1.0, "0.50": 2.0}, "appears twice"),
    ({"0.5": "1.0"}, "not a number"),
]


@pytest.mark.parametrize(("quantiles", "reason"), JUNK_QUANTILES)
def test_junk_quantiles_are_refused_by_the_scorer_with_a_reason(quantiles, reason):
    with pytest.raises(ValueError, match=reason):
        crps_quantile_score({"quantiles": quantiles}, {"return": 0.0})


@pytest.mark.parametrize(("quantiles", "reason"), [case for case in JUNK_QUANTILES if case[1] != "not a number"])
def test_junk_quantiles_are_refused_by_the_output_type(quantiles, reason):
    with pytest.raises(ValidationError, match=reason):
        QuantileForecast.model_validate({"quantiles": quantiles})


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        ([], "empty"),
        ([0.1, float("nan")], "sample 1 is nan"),
        ([float("-inf")], "not a finite number"),
        ("0.1 0.2", "list of numbers"),
        ([0.1, None], "not a number"),
        ([True], "not a number"),
    ],
)
def test_junk_samples_are_refused_with_a_reason(samples, reason):
    with pytest.raises(ValueError, match=reason):
        crps_ensemble_score({"samples": samples}, {"return": 0.0})


@pytest.mark.parametrize("samples", [[], [0.1, float("nan")], "abc", [True], [0.1, "0.2"]])
def test_junk_samples_are_refused_by_the_output_type(samples):
    with pytest.raises(ValidationError):
        EnsembleForecast.model_validate({"samples": samples})


def test_a_wrong_shape_or_missing_ground_truth_field_is_a_clear_error():
    with pytest.raises(ValueError, match="no 'samples'"):
        crps_ensemble_score({"p_up": 0.5}, {"return": 0.0})
    with pytest.raises(ValueError, match="ground truth 'return' is None"):
        crps_ensemble_score({"samples": [1.0]}, {"resolved_price": 1.0})
    with pytest.raises(ValueError, match="ground truth 'return' is nan"):
        crps_quantile_score({"quantiles": {"0.5": 0.0}}, {"return": math.nan})


def test_the_fair_estimator_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        crps_ensemble_fair_score({"samples": [0.1]}, {"return": 0.0})


def test_too_many_samples_are_refused():
    with pytest.raises(ValueError, match="at most 10000"):
        crps_ensemble_score({"samples": [0.0] * 10001}, {"return": 0.0})


def test_a_quantile_grid_type_requires_exactly_its_levels():
    grid = quantile_forecast_type([0.05, 0.5, 0.95])
    grid.model_validate({"quantiles": {"0.05": -1.0, "0.5": 0.0, "0.95": 1.0}})
    with pytest.raises(ValidationError, match=r"missing: 0\.95; unexpected: 0\.9"):
        grid.model_validate({"quantiles": {"0.05": -1.0, "0.5": 0.0, "0.9": 1.0}})
    with pytest.raises(ValidationError, match="not monotone"):
        grid.model_validate({"quantiles": {"0.05": 1.0, "0.5": 0.0, "0.95": 1.0}})


def test_output_types_accept_integers_and_keep_their_shape():
    forecast = QuantileForecast.model_validate({"quantiles": {"0.5": 1, "0.9": 2}})
    assert forecast.pairs() == [(0.5, 1.0), (0.9, 2.0)]
    assert EnsembleForecast.model_validate({"samples": [1, 2.5]}).samples == [1.0, 2.5]


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ({"quantiles": {"0.25": 1.0, "0.75": 0.5}}, "not monotone"),
        ({"quantiles": {}}, "empty"),
        ({"quantiles": {"0.5": float("nan")}}, "NaN"),
        ({"samples": []}, "empty"),
    ],
)
def test_the_predict_worker_refuses_junk_distributions_as_invalid_output(output, reason):
    from predictions.defaults import validate_output
    from predictions.services import validated_output

    output_type = EnsembleForecast if "samples" in output else QuantileForecast
    with pytest.raises(ValueError, match=reason):
        validated_output(output, validator=validate_output, output_type=output_type)
    good = {"quantiles": {"0.5": 1.0, "0.9": 2}}
    stored = validated_output(good, validator=validate_output, output_type=QuantileForecast)
    assert stored == {"quantiles": {"0.5": 1.0, "0.9": 2.0}}
