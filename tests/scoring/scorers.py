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
