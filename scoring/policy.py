"""The missing-answer policy: what FAILED and ABSENT predictions score (DESIGN.md §8).

The contract's `missing_prediction_policy` decides, unless MISSING_PREDICTION_POLICY overrides
it: `worst` (default; the worst value any model got on the same Input, none if nobody was
scored), `exclude` (no value: the prediction counts only against coverage) or a number (a fixed
value). Predictions of an Input that had no ground truth never get a value: nobody failed.
"""

import math
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from coordinator_site.boundary import MAX_ABS_SCORE
from coordinator_site.contract import get_contract


@dataclass(frozen=True)
class MissingPolicy:
    mode: str  # worst | exclude | fixed
    value: float | None = None

    def penalty(self, values: list[float], *, direction: str) -> float | None:
        """The value a missing answer gets, given the values scored on its Input."""
        if self.mode == "fixed":
            return self.value
        if self.mode == "worst" and values:
            # The worst is the value the ranking puts last.
            return max(values) if direction == "asc" else min(values)
        return None


def missing_policy() -> MissingPolicy:
    """The policy in force; raises ImproperlyConfigured for an unusable setting."""
    raw = settings.MISSING_PREDICTION_POLICY.strip()
    if raw:
        if raw in ("worst", "exclude"):
            return MissingPolicy(raw)
        try:
            value = float(raw)
        except ValueError:
            raise ImproperlyConfigured(
                f"MISSING_PREDICTION_POLICY={raw!r}: expected 'worst', 'exclude' or a number"
            ) from None
        if not math.isfinite(value) or abs(value) > MAX_ABS_SCORE:
            raise ImproperlyConfigured(
                f"MISSING_PREDICTION_POLICY={raw!r}: the fixed value must be finite and within ±{MAX_ABS_SCORE:g}"
            )
        return MissingPolicy("fixed", value)
    policy = get_contract().missing_prediction_policy
    if policy.mode == "fixed" and (
        policy.value is None or not math.isfinite(policy.value) or abs(policy.value) > MAX_ABS_SCORE
    ):
        raise ImproperlyConfigured(
            f"contract missing_prediction_policy: mode 'fixed' needs a finite value within ±{MAX_ABS_SCORE:g}"
        )
    return MissingPolicy(policy.mode, policy.value)
