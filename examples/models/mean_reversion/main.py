"""Mean reversion: a price above its recent mean tends to come back down."""

from cruncher import ModelBaseClass
from stats import mean


class MeanReversionModel(ModelBaseClass):
    def predict(self, subject, horizon_seconds, step_seconds):
        prices = self.prices(subject)
        if not prices:
            return {"p_up": 0.5}
        gap = prices[-1] / mean(prices) - 1.0
        return {"p_up": min(1.0, max(0.0, 0.5 - gap * 200.0))}
