"""Model folders, tape rows and gateways for the predictions tests."""

import textwrap
from datetime import timedelta
from pathlib import Path

from feeds.models import FeedRecord
from predictions.gateway.local import LocalModelGateway
from tests.factories import T0

BASE = "tests.predictions.challenge.ModelBaseClass"
DIMS = {"source": "synthetic", "subject": "BTC", "kind": "candle", "granularity": "1m"}

HEADER = "import math, time\nfrom tests.predictions.challenge import ModelBaseClass\n\n"

MODELS = {
    "good": "class Good(ModelBaseClass):\n    def predict(self, subject, horizon, step):\n        return {'p_up': 0.7}\n",
    "raising": "class Raising(ModelBaseClass):\n    def predict(self, subject, horizon, step):\n        raise RuntimeError('boom')\n",
    "sleeping": "class Sleeping(ModelBaseClass):\n    def predict(self, subject, horizon, step):\n        time.sleep(0.6)\n        return {'p_up': 0.5}\n",
    "missing": "class Missing(ModelBaseClass):\n    pass\n",
    "out_of_range": "class OutOfRange(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': 1.5}\n",
    "wrong_type": "class WrongType(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': 'high'}\n",
    "nan": "class NaN(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': math.nan}\n",
    "extra_keys": "class Extra(ModelBaseClass):\n    def predict(self, *a):\n        return {'p_up': 0.5, 'confidence': 1}\n",
    "not_a_dict": "class NotADict(ModelBaseClass):\n    def predict(self, *a):\n        return 0.5\n",
    "tuple": "class Tuple(ModelBaseClass):\n    def predict(self, *a):\n        return (0.5,)\n",
}


def write_model(models_dir: Path, folder: str, body: str | None = None, *, files: dict | None = None, manifest=None):
    """Write `<models_dir>/<folder>/main.py` (the named body from MODELS, or `body`) and extras."""
    path = Path(models_dir) / folder
    path.mkdir(parents=True, exist_ok=True)
    code = body if body is not None else MODELS[folder]
    (path / "main.py").write_text(HEADER + textwrap.dedent(code))
    for name, text in (files or {}).items():
        (path / name).write_text(textwrap.dedent(text))
    if manifest is not None:
        import json

        (path / "model.json").write_text(json.dumps(manifest))
    return path


def make_gateway(models_dir: Path, *, timeout: float = 0.2) -> LocalModelGateway:
    gateway = LocalModelGateway(models_dir=models_dir, base_classname=BASE, timeout=timeout, rescan_seconds=0)
    gateway.start()
    return gateway


def fill_tape(count: int = 30, *, end=T0, start_price: float = 100.0) -> list[FeedRecord]:
    """`count` closed 1-minute candles whose last bar closes at `end`."""
    rows = []
    for i in range(count):
        opened = end - timedelta(minutes=count - i)
        close = start_price + i
        rows.append(
            FeedRecord(
                **DIMS,
                ts_event=opened,
                values={"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0},
            )
        )
    return FeedRecord.objects.bulk_create(rows)


def wait_until(predicate, timeout: float = 5.0, step: float = 0.02) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
