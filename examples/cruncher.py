"""Starter base class for participant models (MODEL_BASE_CLASSNAME=cruncher.ModelBaseClass).

The coordinator calls, every cycle:

    tick(data)                                     the newest window of the feed
    predict(subject, horizon_seconds, step_seconds) -> {"p_up": float in [0, 1]}

`data` is {"symbol", "subject", "source", "kind", "granularity", "as_of", "records": [...]},
each record {"ts_event": ISO time, "price"} for ticks or {"ts_event", "open", "high", "low",
"close", "volume"} for candles, oldest first. Return plain Python values (dict of floats):
tuples or numpy values do not cross the wire.
"""


class ModelBaseClass:
    def __init__(self) -> None:
        self.latest: dict[str, dict] = {}

    def tick(self, data: dict) -> None:
        """Keep the newest data per subject (override to keep more state)."""
        self.latest[data.get("symbol") or data.get("subject")] = data

    def prices(self, subject: str) -> list[float]:
        """The prices of the last window seen for `subject`, oldest first."""
        records = self.latest.get(subject, {}).get("records", [])
        return [float(r["close"] if "close" in r else r["price"]) for r in records]

    def predict(self, subject: str, horizon_seconds: int, step_seconds: int) -> dict:
        raise NotImplementedError("implement predict(subject, horizon_seconds, step_seconds)")
