"""A backtest fixture: answers what the live `model-a` of tests/replay/helpers.py answered (0.7 on
the first Input, 0.3 on the second: the last price of the window decides)."""

from cruncher import ModelBaseClass


class AnswersLikeModelA(ModelBaseClass):
    def predict(self, subject, horizon_seconds, step_seconds):
        prices = self.prices(subject)
        return {"p_up": 0.3 if prices and prices[-1] > 100.5 else 0.7}
