"""Scoring functions (SCORING_FUNCTION): one prediction against its Input's ground truth.

Called as `fn(prediction, ground_truth)` where `prediction` is the model's output validated by
the contract's `output_type` and `ground_truth` the Input's actuals validated by
`ground_truth_type`. Each returns a dict the contract's `score_type` validates; `value` is what
windows average. Both defaults are losses: lower is better (ranking_direction "asc").
Swap with the environment alone: `SCORING_FUNCTION=scoring.functions:log_loss_score`.
"""

import math
from typing import Any

# Probabilities are clipped so a confident wrong answer costs a large but finite loss.
LOG_LOSS_EPSILON = 1e-15


def _field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def _outcome(ground_truth: Any) -> float:
    """1.0 when the price went up over the horizon, else 0.0 (an unchanged price is not up)."""
    return 1.0 if _field(ground_truth, "direction_up") else 0.0


def _probability(prediction: Any) -> float:
    p = float(_field(prediction, "p_up"))
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"p_up {p!r} is not a probability in [0, 1]")
    return p


def brier_score(prediction: Any, ground_truth: Any) -> dict[str, float]:
    """Brier score (p_up - outcome)^2, in [0, 1]; 0 is a perfect forecast, 0.25 a coin flip."""
    p = _probability(prediction)
    y = _outcome(ground_truth)
    return {"value": (p - y) ** 2, "p_up": p, "outcome": y}


def log_loss_score(prediction: Any, ground_truth: Any) -> dict[str, float]:
    """Binary log-loss -(y ln p + (1-y) ln(1-p)), p clipped to [1e-15, 1-1e-15]; ln 2 is a coin flip."""
    p = min(max(_probability(prediction), LOG_LOSS_EPSILON), 1.0 - LOG_LOSS_EPSILON)
    y = _outcome(ground_truth)
    return {"value": -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p)), "p_up": p, "outcome": y}
