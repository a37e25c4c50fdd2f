"""Distribution forecasts: the output types the CRPS scoring functions score.

Two forms, each a pydantic model a contract can declare as its `output_type`:

- `QuantileForecast`: `{"quantiles": {"0.05": -0.012, "0.5": 0.001, "0.95": 0.014}}` — levels
  are JSON object keys (decimal text of a number strictly between 0 and 1), values the
  forecast quantiles of the target. Values must not decrease as the level increases (equal
  values are a point mass and allowed). `quantile_forecast_type(levels)` builds a subclass that
  also requires exactly that set of levels, so every model is scored on the same grid (CRPS from
  different grids is not comparable).
- `EnsembleForecast`: `{"samples": [-0.004, 0.002, 0.0, ...]}` — draws (ensemble members) from
  the forecast distribution, in any order.

`quantile_pairs` and `sample_values` are the one validation path: the types call them and so do
the scoring functions (which therefore also refuse junk handed to them as plain dicts), each
failure a ValueError whose message says what is wrong.
"""

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

# Bounds on what one prediction may hold: scoring is O(n log n) per prediction, inside the
# score worker's write transaction.
MAX_QUANTILES = 1000
MAX_SAMPLES = 10000


def _finite(value: Any, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is {type(value).__name__} {value!r}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} is {number!r}, not a finite number")
    return number


def _level(key: Any) -> float:
    if isinstance(key, bool):
        raise ValueError(f"quantile level {key!r} is not a number")
    try:
        level = float(key)
    except (TypeError, ValueError):
        raise ValueError(f"quantile level {key!r} is not a number") from None
    if not (0.0 < level < 1.0):  # also refuses NaN
        raise ValueError(f"quantile level {key!r} is not strictly between 0 and 1")
    return level


def quantile_pairs(quantiles: Any) -> list[tuple[float, float]]:
    """`(level, value)` pairs sorted by level; ValueError unless they form a valid quantile forecast.

    Valid: a non-empty mapping of at most MAX_QUANTILES levels, each a number in (0, 1) (as a
    number or its decimal text) appearing once, each value a finite number, values
    non-decreasing in the level.
    """
    if not isinstance(quantiles, Mapping):
        raise ValueError(f"quantiles must be an object of level -> value, got {type(quantiles).__name__}")
    if not quantiles:
        raise ValueError("quantiles is empty: at least one level is needed")
    if len(quantiles) > MAX_QUANTILES:
        raise ValueError(f"{len(quantiles)} quantiles: at most {MAX_QUANTILES}")
    pairs: dict[float, float] = {}
    for key, value in quantiles.items():
        level = _level(key)
        if level in pairs:
            raise ValueError(f"quantile level {key!r} appears twice")
        pairs[level] = _finite(value, what=f"quantile {key!r}")
    ordered = sorted(pairs.items())
    for (low_level, low), (high_level, high) in itertools.pairwise(ordered):
        if high < low:
            raise ValueError(
                f"quantiles are not monotone: q({high_level:g}) = {high!r} is below q({low_level:g}) = {low!r}"
            )
    return ordered


def sample_values(samples: Any) -> list[float]:
    """The samples as floats; ValueError unless a non-empty list of at most MAX_SAMPLES finite numbers."""
    if isinstance(samples, str | bytes | Mapping) or not isinstance(samples, Iterable):
        raise ValueError(f"samples must be a list of numbers, got {type(samples).__name__}")
    values = list(samples)
    if not values:
        raise ValueError("samples is empty: at least one sample is needed")
    if len(values) > MAX_SAMPLES:
        raise ValueError(f"{len(values)} samples: at most {MAX_SAMPLES}")
    return [_finite(v, what=f"sample {i}") for i, v in enumerate(values)]


class QuantileForecast(BaseModel):
    """A forecast distribution given by its quantiles: `{"quantiles": {"0.05": x, "0.5": y, ...}}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    quantiles: dict[str, float]

    @field_validator("quantiles")
    @classmethod
    def _valid(cls, quantiles: dict[str, float]) -> dict[str, float]:
        quantile_pairs(quantiles)
        return quantiles

    def pairs(self) -> list[tuple[float, float]]:
        """(level, value) sorted by level."""
        return quantile_pairs(self.quantiles)


class EnsembleForecast(BaseModel):
    """A forecast distribution given by draws from it: `{"samples": [x1, x2, ...]}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    samples: list[float]

    @field_validator("samples")
    @classmethod
    def _valid(cls, samples: list[float]) -> list[float]:
        sample_values(samples)
        return samples


def quantile_forecast_type(levels: Sequence[float], *, name: str = "QuantileForecastOnGrid") -> type[QuantileForecast]:
    """A QuantileForecast subclass that requires exactly `levels` (e.g. (0.05, 0.25, 0.5, 0.75, 0.95))."""
    required = frozenset(_level(level) for level in levels)
    if len(required) != len(levels) or not required:
        raise ValueError(f"levels {list(levels)!r}: expected distinct numbers in (0, 1)")
    shown = ", ".join(f"{level:g}" for level in sorted(required))

    def _on_grid(self: QuantileForecast) -> QuantileForecast:
        given = frozenset(level for level, _ in self.pairs())
        if given != required:
            missing = ", ".join(f"{level:g}" for level in sorted(required - given)) or "none"
            extra = ", ".join(f"{level:g}" for level in sorted(given - required)) or "none"
            raise ValueError(f"quantile levels must be exactly {shown} (missing: {missing}; unexpected: {extra})")
        return self

    return type(
        name,
        (QuantileForecast,),
        {
            "__doc__": f"A quantile forecast at exactly the levels {shown}.",
            "__module__": __name__,
            "_on_grid": model_validator(mode="after")(_on_grid),
        },
    )
