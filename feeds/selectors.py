"""Tape-first reads for the other apps (DESIGN.md §6).

Prices come from the stored tape: the last tick at or before t, or the close of the last bar
that *ended* at or before t. Lists are always returned oldest-first.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet

from feeds.dims import FeedDims, granularity_seconds, record_price
from feeds.models import FeedRecord


@dataclass(frozen=True)
class TapePrice:
    """A price read from the tape and the time it holds from (tick time, or bar close time)."""

    price: float
    at: datetime
    record_id: int


def records(dims: FeedDims) -> QuerySet[FeedRecord]:
    """All records of one stream (unordered)."""
    return FeedRecord.objects.filter(**dims.as_filter())


def price_at(dims: FeedDims, t: datetime) -> TapePrice | None:
    """The price in force at `t` from the tape, or None if the tape has nothing that early."""
    qs = records(dims)
    if dims.kind == "candle":
        bar = timedelta(seconds=granularity_seconds(dims.granularity))
        row = qs.filter(ts_event__lte=t - bar).order_by("-ts_event").values("id", "ts_event", "values").first()
        if row is None:
            return None
        at = row["ts_event"] + bar
    else:
        row = qs.filter(ts_event__lte=t).order_by("-ts_event").values("id", "ts_event", "values").first()
        if row is None:
            return None
        at = row["ts_event"]
    price = record_price(dims.kind, row["values"])
    if price is None:
        return None
    return TapePrice(price=price, at=at, record_id=row["id"])


def window(dims: FeedDims, start: datetime, end: datetime) -> QuerySet[FeedRecord]:
    """Records with start <= ts_event < end, oldest first."""
    return records(dims).filter(ts_event__gte=start, ts_event__lt=end).order_by("ts_event")


def latest(dims: FeedDims, n: int, *, until: datetime | None = None) -> list[FeedRecord]:
    """The newest `n` records (at or before `until`), returned oldest-first."""
    qs = records(dims)
    if until is not None:
        qs = qs.filter(ts_event__lte=until)
    newest = list(qs.order_by("-ts_event")[:n])
    newest.reverse()
    return newest
