"""Shared bits of the feeds tests: recorded bodies, dims, frozen clocks."""

import json
from datetime import timedelta
from pathlib import Path

from feeds.dims import FeedDims, NormalizedRecord
from tests.factories import T0

FIXTURES = Path(__file__).parent / "fixtures"
BTC_FEED_ID = "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43"
T0_S = int(T0.timestamp())


def body(name: str) -> str:
    """A recorded response body, verbatim."""
    return (FIXTURES / name).read_text()


def doc(name: str):
    return json.loads(body(name))


def dims(source="synthetic", subject="BTC", kind="candle", granularity="1m") -> FeedDims:
    return FeedDims(source, subject, kind, granularity)


def candle(minute: int, close: float = 100.0, d: FeedDims | None = None) -> NormalizedRecord:
    d = d or dims()
    values = {"open": close - 1, "high": close + 1, "low": close - 2, "close": close, "volume": 1.0}
    return NormalizedRecord(d.source, d.subject, d.kind, d.granularity, T0 + timedelta(minutes=minute), values, {})
