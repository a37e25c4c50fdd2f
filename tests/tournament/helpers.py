"""Round files, truth and local models for the tournament tests.

Models answer `predict(features)` with `{"p_up": features["p"]}` (so each sample's answer is
known from its own features: a prediction paired with the wrong sample's truth gets a wrong
score), except where a test model says otherwise.
"""

from pathlib import Path

from tests.predictions.helpers import BASE, make_gateway, write_model

__all__ = ["BASE", "MODELS", "make_gateway", "round_samples", "truth_for", "write_round_models"]

# Sample i has p = P[i]; its truth says the price went up when UP[i].
P = [0.9, 0.2, 0.6, 0.4, 0.7, 0.1]
UP = [True, False, False, True, True, False]

MODELS = {
    # answers every sample from its own features
    "echo": "class Echo(ModelBaseClass):\n    def predict(self, features):\n        return {'p_up': features['p']}\n",
    # skips sample s2 (answers nothing valid for it), answers the others like echo
    "skipper": (
        "class Skipper(ModelBaseClass):\n"
        "    def predict(self, features):\n"
        "        if features['sid'] == 's2':\n"
        "            return None\n"
        "        return {'p_up': 1 - features['p']}\n"
    ),
    # always too slow: TIMEOUT on every sample
    "sleeper": (
        "class Sleeper(ModelBaseClass):\n"
        "    def predict(self, features):\n"
        "        time.sleep(3)\n"
        "        return {'p_up': 0.5}\n"
    ),
}


def round_samples(n: int = 6, *, out_of_sample_from: int = 4) -> list[dict]:
    """Samples s0..s(n-1); those from `out_of_sample_from` on are out-of-sample."""
    return [
        {
            "sample_id": f"s{i}",
            "features": {"sid": f"s{i}", "p": P[i]},
            "part": "out_of_sample" if i >= out_of_sample_from else "in_sample",
        }
        for i in range(n)
    ]


def truth_for(i: int) -> dict:
    return {
        "entry_price": 100.0,
        "resolved_price": 101.0 if UP[i] else 99.0,
        "return": 0.01 if UP[i] else -0.01,
        "direction_up": UP[i],
    }


def write_round_models(models_dir: Path, names=("echo", "skipper", "sleeper")) -> Path:
    for name in names:
        write_model(models_dir, name, MODELS[name])
    return models_dir
