"""Coin flip with a fixed seed: a reproducible baseline every real model should beat."""

import random

from cruncher import ModelBaseClass


class CoinFlipModel(ModelBaseClass):
    def __init__(self):
        super().__init__()
        self.rng = random.Random(7)

    def predict(self, subject, horizon_seconds, step_seconds):
        return {"p_up": round(self.rng.random(), 4)}
