"""Scoring functions: hand-computed golden values."""

import math

import pytest

from coordinator_site.contract import StarterGroundTruth, StarterOutput
from scoring.functions import brier_score, log_loss_score

UP = StarterGroundTruth(entry_price=100.0, resolved_price=101.0, **{"return": 0.01}, direction_up=True)
DOWN = StarterGroundTruth(entry_price=100.0, resolved_price=99.0, **{"return": -0.01}, direction_up=False)


@pytest.mark.parametrize(
    ("p_up", "truth", "expected"),
    [
        (0.7, UP, 0.09),  # (0.7 - 1)^2
        (0.7, DOWN, 0.49),  # (0.7 - 0)^2
        (0.5, UP, 0.25),
        (1.0, UP, 0.0),
        (0.0, UP, 1.0),
        (0.2, DOWN, 0.04),
    ],
)
def test_brier_golden_values(p_up, truth, expected):
    assert brier_score(StarterOutput(p_up=p_up), truth)["value"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("p_up", "truth", "expected"),
    [
        (0.8, UP, 0.2231435513142097),  # -ln 0.8
        (0.8, DOWN, 1.6094379124341003),  # -ln 0.2
        (0.5, DOWN, math.log(2)),
        (0.0, UP, 34.538776394910684),  # clipped to 1e-15: -ln 1e-15
    ],
)
def test_log_loss_golden_values(p_up, truth, expected):
    assert log_loss_score(StarterOutput(p_up=p_up), truth)["value"] == pytest.approx(expected, rel=1e-9)


def test_scorers_accept_plain_dicts():
    assert brier_score({"p_up": 0.9}, {"direction_up": False})["value"] == pytest.approx(0.81)


def test_probability_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="not a probability"):
        brier_score({"p_up": 1.5}, {"direction_up": True})
