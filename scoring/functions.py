"""Scoring functions (SCORING_FUNCTION): one prediction against its Input's ground truth.

Called as `fn(prediction, ground_truth)` where `prediction` is the model's output validated by
the contract's `output_type` and `ground_truth` the Input's actuals validated by
`ground_truth_type`. Each returns a dict the contract's `score_type` validates; `value` is what
windows average. All of them are losses: lower is better (ranking_direction "asc", or the
score pass's `raw_direction` "asc" when the pass normalises).
Swap with the environment alone: `SCORING_FUNCTION=scoring.functions:log_loss_score`.

Probability of "up" (`{"p_up": p}`): `brier_score`, `log_loss_score`.
Distribution forecasts (scoring/distributions.py), scored by the CRPS against the realised value
of a ground-truth field, `return` by default (the relative price change over the horizon;
scale-free, so scores stay comparable across subjects and price levels). Another field, e.g.
`resolved_price`, with `functools.partial(crps_quantile_score, target="resolved_price")`:
- `crps_quantile_score`: `{"quantiles": {"0.05": x, ...}}`, the quantile (pinball) form;
- `crps_ensemble_score`: `{"samples": [...]}`, the energy (NRG) estimator = the exact CRPS of the
  samples' empirical distribution;
- `crps_ensemble_fair_score`: `{"samples": [...]}`, the fair estimator (equal to PWM), >= 2 samples.
"""

import math
from typing import Any

from pydantic import BaseModel

from scoring.distributions import quantile_pairs, sample_values

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


# --- CRPS (distribution forecasts) --------------------------------------------------------------

# The ground-truth field CRPS scores against, unless a `target` is given.
CRPS_TARGET = "return"


def _realised(ground_truth: Any, target: str) -> float:
    """The realised value of `target` in the ground truth (a pydantic field may carry it as an
    alias: the starter ground truth's `return` is the attribute `return_`)."""
    if isinstance(ground_truth, dict):
        raw = ground_truth.get(target)
    elif isinstance(ground_truth, BaseModel):
        raw = getattr(ground_truth, target, None)
        if raw is None:
            for name, info in type(ground_truth).model_fields.items():
                if info.alias == target:
                    raw = getattr(ground_truth, name)
                    break
            else:
                raw = (ground_truth.model_extra or {}).get(target)
    else:
        raw = getattr(ground_truth, target, None)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise ValueError(f"ground truth {target!r} is {raw!r}, not a finite number")
    return float(raw)


def _distribution(prediction: Any, name: str) -> Any:
    try:
        return _field(prediction, name)
    except (KeyError, AttributeError):
        raise ValueError(f"the prediction has no {name!r}") from None


def crps_quantile(pairs: list[tuple[float, float]], observed: float) -> float:
    """CRPS of quantiles `[(level, value)]` at the observation: the mean pinball loss times 2,

        (2 / |Q|) * sum over q of  q (y - x_q)  if x_q <= y,  else  (1 - q) (x_q - y)

    (Berrisch & Ziel 2023; `scoringrules.crps_quantile`). Summed with math.fsum."""
    losses = [
        level * (observed - value) if value <= observed else (1.0 - level) * (value - observed)
        for level, value in pairs
    ]
    return 2.0 * math.fsum(losses) / len(losses)


def _spread(samples: list[float]) -> float:
    """sum over i < j of |x_i - x_j| from the sorted samples: sum over i of (2i - M - 1) x_(i), i = 1..M."""
    m = len(samples)
    return math.fsum((2 * i - m - 1) * x for i, x in enumerate(sorted(samples), start=1))


def crps_ensemble_nrg(samples: list[float], observed: float) -> float:
    """Energy (NRG) estimator: (1/M) sum |x_i - y| - (1 / 2M^2) sum_i sum_j |x_i - x_j|.

    This is the exact CRPS of the samples' empirical distribution (scoringrules
    `crps_ensemble(..., estimator="nrg")`; also its "qd" and "int" estimators and
    properscoring's `crps_ensemble`). O(M log M): the double sum is 2 * `_spread`."""
    m = len(samples)
    return math.fsum(abs(x - observed) for x in samples) / m - _spread(samples) / (m * m)


def crps_ensemble_fair(samples: list[float], observed: float) -> float:
    """Fair estimator: (1/M) sum |x_i - y| - (1 / 2M(M-1)) sum_i sum_j |x_i - x_j|; needs M >= 2.

    Unbiased for the CRPS of the distribution the samples are drawn from, so an ensemble's size
    does not move its expected score (scoringrules `estimator="fair"`, equal to "pwm")."""
    m = len(samples)
    if m < 2:
        raise ValueError("the fair CRPS estimator needs at least 2 samples")
    return math.fsum(abs(x - observed) for x in samples) / m - _spread(samples) / (m * (m - 1))


def crps_quantile_score(prediction: Any, ground_truth: Any, *, target: str = CRPS_TARGET) -> dict[str, float]:
    """CRPS of a quantile forecast `{"quantiles": {"0.05": x, ...}}` against ground truth `target`
    (default `return`); 0 is perfect, lower is better. Returns `{"value", "observed"}`."""
    pairs = quantile_pairs(_distribution(prediction, "quantiles"))
    y = _realised(ground_truth, target)
    return {"value": crps_quantile(pairs, y), "observed": y}


def crps_ensemble_score(prediction: Any, ground_truth: Any, *, target: str = CRPS_TARGET) -> dict[str, float]:
    """CRPS of a sample forecast `{"samples": [...]}` (energy/NRG estimator) against ground truth
    `target` (default `return`); 0 is perfect, lower is better. Returns `{"value", "observed"}`."""
    samples = sample_values(_distribution(prediction, "samples"))
    y = _realised(ground_truth, target)
    return {"value": crps_ensemble_nrg(samples, y), "observed": y}


def crps_ensemble_fair_score(prediction: Any, ground_truth: Any, *, target: str = CRPS_TARGET) -> dict[str, float]:
    """As `crps_ensemble_score` with the fair estimator (at least 2 samples)."""
    samples = sample_values(_distribution(prediction, "samples"))
    y = _realised(ground_truth, target)
    return {"value": crps_ensemble_fair(samples, y), "observed": y}
