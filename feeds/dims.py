"""Feed dimensions and the normalised record every provider returns."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FeedDims:
    """Names one stream of the tape: source (pyth, binance, ...), subject, kind, granularity."""

    source: str
    subject: str
    kind: str
    granularity: str

    def as_filter(self) -> dict[str, str]:
        return {"source": self.source, "subject": self.subject, "kind": self.kind, "granularity": self.granularity}

    def __str__(self) -> str:
        return f"{self.source}/{self.subject}/{self.kind}/{self.granularity}"


@dataclass(frozen=True)
class NormalizedRecord:
    """One tick or bar as a provider returns it. Candles: ts_event is the bar's open time."""

    source: str
    subject: str
    kind: str
    granularity: str
    ts_event: datetime
    values: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> FeedDims:
        return FeedDims(self.source, self.subject, self.kind, self.granularity)


GRANULARITY_SECONDS = {"1s": 1, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}


def granularity_seconds(granularity: str) -> int:
    """Length of one bar in seconds; raises ValueError for an unknown granularity."""
    try:
        return GRANULARITY_SECONDS[granularity]
    except KeyError:
        raise ValueError(f"unknown granularity {granularity!r}; known: {', '.join(GRANULARITY_SECONDS)}") from None


def record_price(kind: str, values: dict[str, Any]) -> float | None:
    """The price a record stands for: a tick's `price`, a bar's `close`."""
    value = values.get("close") if kind == "candle" else values.get("price", values.get("close"))
    return float(value) if value is not None else None
