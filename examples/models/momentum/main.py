"""Momentum: the recent trend continues."""

import math

from cruncher import ModelBaseClass


class MomentumModel(ModelBaseClass):
    lookback = 20

    def predict(self, subject, horizon_seconds, step_seconds):
        prices = self.prices(subject)[-self.lookback :]
        if len(prices) < 2 or prices[0] <= 0:
            return {"p_up": 0.5}
        change = prices[-1] / prices[0] - 1.0
        # A squashed trend: +/-0.1 % over the window moves the probability by ~0.12.
        return {"p_up": 1.0 / (1.0 + math.exp(-change * 500.0))}
