"""The score pass: capping and normalisation of raw scores over a population (docs/rules.md).

Runs after per-prediction scoring. The score worker applies it to each Input's successfully
scored predictions (population = that Input; see `scoring.services.score_outcome` for how it
meets the missing-answer policy); a tournament applies `apply_score_pass` to a round.

`apply_score_pass(values, direction=, mode=, cap_percentile=, worst_fraction=)` is pure; `None`
entries stay `None` and are not part of the population. `direction` is that of the raw values
("asc": lower is better, a loss such as CRPS; "desc": higher is better). Values are first seen
as "badness" b = v (asc) or b = -v (desc), so below lower b is better.

- **cap** (`cap_percentile` p in (0, 100]): the cap c is the p-th percentile of b over the
  population, by linear interpolation between closest ranks (numpy's default "linear", type 7
  of Hyndman & Fan): sort b ascending as b_0..b_{n-1}, h = (n - 1) p / 100,
  c = b_floor(h) + (h - floor(h)) (b_floor(h)+1 - b_floor(h)). Every b > c becomes c. So p = 95
  caps a loss at its 95th percentile and a gain (desc) at its 5th percentile. Output in the raw
  scale and direction.
- **normalise** (after capping, if `cap_percentile` is given too): best = b_0 (the best value);
  k = max(1, ceil(n * worst_fraction)) (the worst 5 %, at least one value); t = b_{n-k} (the
  best of the worst k). Then
      1                          if b == best (ties with the best, and a population whose
                                 values are all equal or of size 1, all get 1: best wins);
      0                          if b >= t (the worst k and every value tied with them);
      (t - b) / (t - best)       otherwise (linear in between; strictly between 0 and 1).
  Output: higher is better (best 1, worst 0) whatever the raw direction. Ties always get equal
  outputs (each output is a function of the value alone).
"""

import math
from dataclasses import dataclass
from fractions import Fraction

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from coordinator_site.contract import get_contract
from scoring.policy import missing_policy

MODES = ("none", "cap", "normalise")
DIRECTIONS = ("asc", "desc")


def percentile(sorted_values: list[float], p: float) -> float:
    """The p-th percentile (0..100) of ascending values, linear interpolation (numpy's default)."""
    n = len(sorted_values)
    h = (n - 1) * p / 100.0
    low = math.floor(h)
    if low >= n - 1:
        return sorted_values[-1]
    return sorted_values[low] + (h - low) * (sorted_values[low + 1] - sorted_values[low])


def worst_count(n: int, worst_fraction: float) -> int:
    """k = max(1, ceil(n * worst_fraction)), computed on the fraction's decimal text (so 60 x 0.05 is 3, not 4)."""
    return max(1, math.ceil(Fraction(repr(float(worst_fraction))) * n))


def _check(direction: str, mode: str, cap_percentile: float | None, worst_fraction: float) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}: expected 'asc' or 'desc'")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    if cap_percentile is not None and not (0.0 < cap_percentile <= 100.0):  # also refuses NaN
        raise ValueError(f"cap_percentile {cap_percentile!r}: expected a number in (0, 100]")
    if mode == "cap" and cap_percentile is None:
        raise ValueError("mode 'cap' needs cap_percentile")
    if mode == "none" and cap_percentile is not None:
        raise ValueError("cap_percentile is set but mode is 'none'")
    if not (0.0 <= worst_fraction < 1.0):
        raise ValueError(f"worst_fraction {worst_fraction!r}: expected a number in [0, 1)")


def apply_score_pass(
    values: list[float | None],
    *,
    direction: str,
    mode: str,
    cap_percentile: float | None = None,
    worst_fraction: float = 0.05,
) -> list[float | None]:
    """Cap and/or normalise `values` over their non-None population (module docstring); pure."""
    _check(direction, mode, cap_percentile, worst_fraction)
    for v in values:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"value {v!r} is not a finite number")
    population = [v for v in values if v is not None]
    if mode == "none" or not population:
        return list(values)
    sign = 1.0 if direction == "asc" else -1.0
    bad = sorted(sign * v for v in population)
    cap = percentile(bad, cap_percentile) if cap_percentile is not None else None

    def badness(v: float) -> float:
        b = sign * v
        return b if cap is None or b <= cap else cap

    if mode == "cap":
        # Untouched values are returned as they were (no sign round trip).
        return [None if v is None else (v if sign * v <= cap else sign * cap) for v in values]
    bad = sorted(badness(v) for v in population)
    best, threshold = bad[0], bad[len(bad) - worst_count(len(bad), worst_fraction)]
    out: list[float | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        b = badness(v)
        if b <= best:
            out.append(1.0)
        elif b >= threshold:
            out.append(0.0)
        else:
            out.append((threshold - b) / (threshold - best))
    return out


@dataclass(frozen=True)
class ScorePass:
    """The pass in force. `raw_direction` is the scorer's; the stored values' direction is
    `stored_direction` (desc after normalising) and must be the contract's ranking direction."""

    mode: str = "none"
    cap_percentile: float | None = None
    worst_fraction: float = 0.05
    raw_direction: str = "asc"

    @property
    def active(self) -> bool:
        return self.mode != "none"

    @property
    def stored_direction(self) -> str:
        return "desc" if self.mode == "normalise" else self.raw_direction

    def apply(self, values: list[float | None]) -> list[float | None]:
        return apply_score_pass(
            values,
            direction=self.raw_direction,
            mode=self.mode,
            cap_percentile=self.cap_percentile,
            worst_fraction=self.worst_fraction,
        )

    def describe(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "cap_percentile": self.cap_percentile,
            "worst_fraction": self.worst_fraction,
            "raw_direction": self.raw_direction,
        }


def _cap_setting(raw: str) -> float | None:
    if raw.lower() == "none":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"SCORE_PASS_CAP_PERCENTILE={raw!r}: expected a number in (0, 100] or 'none'"
        ) from None


def score_pass() -> ScorePass:
    """The pass in force: the contract's `score_pass`, with SCORE_PASS (none | cap | normalise)
    and SCORE_PASS_CAP_PERCENTILE (a number or `none`) overriding mode and cap when set.

    Raises ImproperlyConfigured for an unusable combination, so `run_score` stops at start:
    an unknown mode, a cap outside (0, 100], `cap` without a percentile, or a pass whose output
    direction is not the contract's ranking direction (normalising gives "higher is better", so
    it needs `ranking_direction="desc"`, with `score_pass.raw_direction="asc"` for a loss)."""
    contract = get_contract()
    configured = contract.score_pass
    ranking = contract.aggregation.ranking_direction
    mode_env = settings.SCORE_PASS.strip()
    cap_env = settings.SCORE_PASS_CAP_PERCENTILE.strip()
    mode = mode_env or configured.mode
    if mode_env and mode_env not in MODES:
        raise ImproperlyConfigured(f"SCORE_PASS={mode_env!r}: expected one of {', '.join(MODES)} (or empty)")
    cap = _cap_setting(cap_env) if cap_env else configured.cap_percentile
    where = "SCORE_PASS" if mode_env else "contract score_pass"
    if mode == "none":
        cap = None  # a contract's cap does not apply once the pass is switched off
    passed = ScorePass(
        mode=mode,
        cap_percentile=cap,
        worst_fraction=configured.worst_fraction,
        raw_direction=configured.raw_direction or ranking,
    )
    try:
        _check(passed.raw_direction, mode, cap, passed.worst_fraction)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{where} (SCORE_PASS_CAP_PERCENTILE={cap_env!r}): {exc}") from None
    if passed.stored_direction != ranking:
        raise ImproperlyConfigured(
            f"{where}={mode!r} stores values where {'higher' if passed.stored_direction == 'desc' else 'lower'} "
            f"is better, but the contract ranks {ranking!r}: a normalising pass needs ranking_direction='desc' "
            f"(and score_pass.raw_direction='asc' for a loss such as CRPS); a cap keeps raw_direction"
        )
    if mode == "normalise":
        policy = missing_policy()
        if policy.mode == "fixed" and not (0.0 <= policy.value <= 1.0):
            raise ImproperlyConfigured(
                f"missing-answer policy fixed value {policy.value!r} is outside [0, 1], "
                "the scale of normalised scores (the fixed value is taken after the pass)"
            )
    return passed
