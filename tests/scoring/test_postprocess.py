"""The score pass (scoring/postprocess.py) on hand-computed cases, and its configuration."""

import random

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from scoring.postprocess import apply_score_pass, percentile, score_pass, worst_count


def normalise(values, direction="asc", **options):
    return apply_score_pass(values, direction=direction, mode="normalise", **options)


def cap(values, p, direction="asc"):
    return apply_score_pass(values, direction=direction, mode="cap", cap_percentile=p)


# --- normalisation -------------------------------------------------------------------------------


def test_normalise_worked_example():
    # n = 5: k = ceil(5 x 0.05) = 1, best 0.2, t = 1.0 (the worst); (t - v) / (t - best) = (1 - v) / 0.8
    assert normalise([0.4, 0.2, 1.0, 0.5, 0.8]) == pytest.approx([0.75, 1.0, 0.0, 0.625, 0.25], abs=1e-15)


def test_normalise_a_gain_higher_is_better():
    # desc: best 0.9 -> 1, worst 0.2 -> 0, 0.5 -> (0.5 - 0.2) / (0.9 - 0.2)
    assert normalise([0.2, 0.9, 0.5], direction="desc") == pytest.approx([0.0, 1.0, 3 / 7], abs=1e-15)


def test_the_worst_five_percent_map_to_zero():
    # n = 40: k = ceil(40 x 0.05) = 2, t = the 2nd worst = 39; 20 -> (39 - 20) / (39 - 1) = 0.5
    out = normalise([float(v) for v in range(1, 41)])
    assert out[0] == 1.0
    assert out[38:] == [0.0, 0.0]
    assert out[37] == pytest.approx(1 / 38, abs=1e-15)
    assert out[19] == pytest.approx(0.5, abs=1e-15)


def test_worst_count_is_exact_for_decimal_fractions():
    # 60 x 0.05 is 3.0000000000000004 in floating point; the k used is 3.
    assert [worst_count(n, 0.05) for n in (1, 19, 20, 21, 40, 60, 100, 101)] == [1, 1, 1, 2, 2, 3, 5, 6]
    assert worst_count(10, 0.0) == 1  # at least the worst value
    out = normalise([float(v) for v in range(1, 61)])
    assert out[56] == pytest.approx(1 / 57, abs=1e-15)
    assert out[57:] == [0.0, 0.0, 0.0]


def test_ties_get_equal_values():
    # k = 1, t = 0.9 (two values tie there: both 0), the best two tie at 1
    assert normalise([0.3, 0.9, 0.3, 0.5, 0.9]) == pytest.approx([1.0, 0.0, 1.0, 2 / 3, 0.0], abs=1e-15)


def test_all_equal_values_and_a_population_of_one_are_all_best():
    assert normalise([0.7, 0.7, 0.7]) == [1.0, 1.0, 1.0]
    assert normalise([0.3]) == [1.0]
    assert normalise([None, 0.3, None]) == [None, 1.0, None]


def test_best_wins_when_the_worst_fraction_reaches_the_best_value():
    # worst_fraction 0.5 of 4: k = 2, t = 1.0 = the best: the tied best stay 1, the worse value 0.
    assert normalise([1.0, 1.0, 1.0, 5.0], worst_fraction=0.5) == [1.0, 1.0, 1.0, 0.0]


def test_none_stays_none_and_is_not_in_the_population():
    assert normalise([None, 2.0, None, 4.0, 3.0]) == [None, 1.0, None, 0.0, 0.5]
    assert normalise([None, None]) == [None, None]
    assert normalise([]) == []


def test_none_mode_returns_the_values_unchanged():
    values = [0.3, None, 0.1]
    assert apply_score_pass(values, direction="asc", mode="none") == values


# --- capping -------------------------------------------------------------------------------------


def test_cap_worked_example():
    # sorted 1, 2, 3, 4, 100; p = 90: h = 4 x 0.9 = 3.6, cap = 4 + 0.6 x (100 - 4) = 61.6
    assert cap([100.0, 1.0, 2.0, 3.0, 4.0], 90) == pytest.approx([61.6, 1.0, 2.0, 3.0, 4.0], abs=1e-12)
    # p = 75: h = 3, cap = 4 exactly
    assert cap([100.0, 1.0, 2.0, 3.0, 4.0], 75) == [4.0, 1.0, 2.0, 3.0, 4.0]


def test_cap_a_gain_caps_the_low_side():
    # desc: p = 75 on the worse side is the 25th percentile of the values: h = 1, cap = 2
    assert cap([100.0, 1.0, 2.0, 3.0, 4.0], 75, direction="desc") == [100.0, 2.0, 2.0, 3.0, 4.0]


def test_cap_at_100_changes_nothing_and_one_value_is_its_own_cap():
    values = [5.0, None, 1.0, 3.0]
    assert cap(values, 100) == values
    assert cap([7.0], 50) == [7.0]


def test_cap_percentile_is_numpys_linear_percentile():
    rng = random.Random(7)
    for _ in range(200):
        values = sorted(rng.uniform(-5, 5) for _ in range(rng.randint(1, 30)))
        p = rng.uniform(0.1, 100)
        assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)), rel=1e-12, abs=1e-12)


def test_cap_then_normalise():
    out = apply_score_pass([100.0, 1.0, 2.0], direction="asc", mode="normalise", cap_percentile=90)
    # sorted 1, 2, 100; p = 90: h = 1.8, cap = 2 + 0.8 x 98 = 80.4; 2 -> (80.4 - 2) / (80.4 - 1)
    assert out == pytest.approx([0.0, 1.0, 78.4 / 79.4], abs=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "rescale"}, "mode 'rescale'"),
        ({"mode": "cap"}, "needs cap_percentile"),
        ({"mode": "cap", "cap_percentile": 0}, r"\(0, 100\]"),
        ({"mode": "cap", "cap_percentile": 101}, r"\(0, 100\]"),
        ({"mode": "none", "cap_percentile": 90}, "mode is 'none'"),
        ({"mode": "normalise", "worst_fraction": 1.0}, r"\[0, 1\)"),
        ({"mode": "normalise", "direction": "up"}, "direction 'up'"),
    ],
)
def test_bad_arguments_are_refused(options, message):
    kwargs = {"direction": "asc", **options}
    with pytest.raises(ValueError, match=message):
        apply_score_pass([1.0, 2.0], **kwargs)


def test_a_non_finite_value_is_refused():
    with pytest.raises(ValueError, match="not a finite number"):
        normalise([1.0, float("nan")])


# --- configuration (contract and environment) ------------------------------------------------------


def test_default_is_no_pass(settings):
    configured = score_pass()
    assert (configured.mode, configured.active, configured.stored_direction) == ("none", False, "asc")


def test_the_contract_configures_the_pass(settings):
    settings.CRUNCH_CONTRACT = "tests.scoring.contracts:BRIER_NORMALISED"
    configured = score_pass()
    assert (configured.mode, configured.cap_percentile, configured.worst_fraction) == ("normalise", 90, 0.05)
    assert (configured.raw_direction, configured.stored_direction) == ("asc", "desc")


def test_the_environment_overrides_mode_and_cap(settings):
    settings.CRUNCH_CONTRACT = "tests.scoring.contracts:BRIER_NORMALISED"
    settings.SCORE_PASS_CAP_PERCENTILE = "none"
    assert score_pass().cap_percentile is None
    settings.SCORE_PASS_CAP_PERCENTILE = "97.5"
    assert score_pass().cap_percentile == 97.5


def test_a_cap_from_the_environment_on_the_starter_contract(settings):
    settings.SCORE_PASS = "cap"
    settings.SCORE_PASS_CAP_PERCENTILE = "95"
    configured = score_pass()
    assert (configured.mode, configured.cap_percentile, configured.stored_direction) == ("cap", 95.0, "asc")


def test_switching_off_a_normalising_contracts_pass_is_refused(settings):
    settings.CRUNCH_CONTRACT = "tests.scoring.contracts:BRIER_NORMALISED"
    settings.SCORE_PASS = "none"
    with pytest.raises(ImproperlyConfigured, match="ranks 'desc'"):
        score_pass()  # raw Brier (asc) under a desc ranking would reward the worst


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SCORE_PASS": "sometimes"}, "SCORE_PASS='sometimes'"),
        ({"SCORE_PASS": "cap"}, "needs cap_percentile"),
        ({"SCORE_PASS": "cap", "SCORE_PASS_CAP_PERCENTILE": "abc"}, "SCORE_PASS_CAP_PERCENTILE='abc'"),
        ({"SCORE_PASS": "cap", "SCORE_PASS_CAP_PERCENTILE": "150"}, r"\(0, 100\]"),
        ({"SCORE_PASS": "cap", "SCORE_PASS_CAP_PERCENTILE": "nan"}, r"\(0, 100\]"),
        # normalised values are "higher is better": the starter contract ranks asc
        ({"SCORE_PASS": "normalise"}, "needs ranking_direction='desc'"),
    ],
)
def test_unusable_settings_are_a_clear_error(settings, env, message):
    for name, value in env.items():
        setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        score_pass()


def test_a_fixed_missing_answer_value_must_be_on_the_normalised_scale(settings):
    settings.CRUNCH_CONTRACT = "tests.scoring.contracts:BRIER_NORMALISED"
    settings.MISSING_PREDICTION_POLICY = "1.5"
    with pytest.raises(ImproperlyConfigured, match=r"outside \[0, 1\]"):
        score_pass()
    settings.MISSING_PREDICTION_POLICY = "0"
    assert score_pass().mode == "normalise"


@pytest.mark.django_db
def test_run_score_stops_at_start_on_an_unusable_pass(settings):
    from django.core.management import call_command

    settings.SCORE_PASS = "sometimes"
    with pytest.raises(ImproperlyConfigured, match="SCORE_PASS"):
        call_command("run_score", "--once")
