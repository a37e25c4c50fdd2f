"""Callables the tests wire into contract slots through the environment/settings."""

from scoring.functions import brier_score
from scoring.ground_truth import resolve_ground_truth

RAISE_AT = 0.123
NAN_AT = 0.321


def flaky_brier(prediction, ground_truth):
    """Brier, except it raises for p_up == 0.123 and returns NaN for p_up == 0.321."""
    if prediction.p_up == RAISE_AT:
        raise ZeroDivisionError("scorer exploded")
    if prediction.p_up == NAN_AT:
        return {"value": float("nan")}
    return brier_score(prediction, ground_truth)


def poisoned_resolver(input):
    """The default resolver, except Inputs whose scope says `poison` raise."""
    if input.scope.get("poison"):
        raise RuntimeError("resolver exploded")
    return resolve_ground_truth(input)


def poison_scorer(prediction, ground_truth):
    """Brier, except p_up 0.11 -> a NUL in the result, 0.12 -> a huge value, 0.13 -> a lone
    surrogate in the exception message, 0.14 -> a lone surrogate nested in the result."""
    if prediction.p_up == 0.11:
        return {"value": 0.5, "note": "bad\x00text"}
    if prediction.p_up == 0.12:
        return {"value": 1e308}
    if prediction.p_up == 0.13:
        raise ValueError("bad \ud800 message\x00")
    if prediction.p_up == 0.14:
        return {"value": 0.5, "extra": [{"deep": "\ud800"}]}
    return brier_score(prediction, ground_truth)


def always_raising_resolver(input):
    raise RuntimeError("resolver exploded \x00 for good")


def nul_ground_truth(input):
    """The default ground truth plus a field PostgreSQL cannot store."""
    truth = resolve_ground_truth(input)
    return None if truth is None else {**truth, "note": "bad\x00"}
