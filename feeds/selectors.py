"""Tape-first reads for the other apps (DESIGN.md §6).

Prices come from the stored tape: the last tick at or before t, or the close of the last bar
that *ended* at or before t. Lists are always returned oldest-first.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import QuerySet

from feeds.dims import FeedDims, granularity_seconds, record_price
from feeds.models import FeedIngestionState, FeedRecord


@dataclass(frozen=True)
class TapePrice:
    """A price read from the tape and the time it holds from (tick time, or bar close time)."""

    price: float
    at: datetime
    record_id: int


def is_streamed(dims: FeedDims) -> bool:
    """True when the stream is fed by a push connection: FEED_MODE=stream and its provider streams its kind.

    Everything else (synthetic, csv, pyth candles, FEED_MODE=poll) is polled every FEED_POLL_SECONDS."""
    from django.conf import settings

    from feeds.providers import streaming_kinds

    return settings.FEED_MODE == "stream" and dims.kind in streaming_kinds(dims.source)


def stream_cadence(dims: FeedDims) -> timedelta:
    """How often a new record of this stream normally reaches the tape (what freshness rules assume).

    Streamed: one record per granularity (pyth publishes at most one price per second, binance
    trades are sampled to the last one of each granularity bucket, bars close once per bar).
    Polled: one per poll, and never more often than the granularity."""
    from django.conf import settings

    seconds = float(granularity_seconds(dims.granularity))
    if is_streamed(dims):
        return timedelta(seconds=seconds)
    return timedelta(seconds=max(seconds, settings.FEED_POLL_SECONDS))


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST_VALUES_PG = f"""
    SELECT (extract(epoch FROM ts_event) * 1000000)::int8, "values"::text FROM {FeedRecord._meta.db_table}
    WHERE source = %s AND subject = %s AND kind = %s AND granularity = %s AND ts_event <= %s
    ORDER BY ts_event DESC LIMIT %s
"""  # noqa: S608 - the table name is ours, every value is a bound parameter


def latest_values(dims: FeedDims, n: int, *, until: datetime) -> list[tuple[datetime, dict]]:
    """The rows of `latest(dims, n, until=until)` as (ts_event, values) pairs, oldest first.

    The predict worker reads this window every cycle. On Postgres the timestamps travel as
    integer microseconds and the values as JSON text: psycopg's timestamptz parsing cost more
    than the rest of the read (same values, about 3x faster for a 120-record window).
    """
    if connection.vendor != "postgresql":
        newest = records(dims).filter(ts_event__lte=until).order_by("-ts_event").values_list("ts_event", "values")
        return list(newest[:n])[::-1]
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_VALUES_PG, [dims.source, dims.subject, dims.kind, dims.granularity, until, n])
        rows = cursor.fetchall()
    loads = json.loads
    return [(_EPOCH + timedelta(microseconds=micros), loads(values)) for micros, values in reversed(rows)]


def latest(dims: FeedDims, n: int, *, until: datetime | None = None) -> list[FeedRecord]:
    """The newest `n` records (at or before `until`), returned oldest-first."""
    qs = records(dims)
    if until is not None:
        qs = qs.filter(ts_event__lte=until)
    newest = list(qs.order_by("-ts_event")[:n])
    newest.reverse()
    return newest


def price_at_or_fetch(
    dims: FeedDims, t: datetime, *, lookback_bars: int = 10, timeout: float | None = None
) -> TapePrice | None:
    """`price_at`, but when the tape has nothing the provider is asked once and what it returns is stored.

    The plain `price_at` stays a pure index read; only a miss costs a provider call, through
    `feeds.services.fetch_gap` (time-boxed to `timeout`, default FEED_HTTP_TIMEOUT_SECONDS, and at
    most one ask per stream per GROUND_TRUTH_FETCH_INTERVAL_SECONDS). A failed or skipped ask
    leaves the tape as it was: the result is then None, and the caller may retry later.
    """
    found = price_at(dims, t)
    if found is not None:
        return found
    from django.conf import settings

    from feeds.services import fetch_gap  # a write, kept out of the read path's imports

    bar = timedelta(seconds=granularity_seconds(dims.granularity))
    if dims.kind == "candle":
        start, end = t - lookback_bars * bar, t - bar + timedelta(microseconds=1)
    else:
        start, end = t - max(lookback_bars * bar, timedelta(minutes=1)), t + timedelta(microseconds=1)
    fetch_gap(
        dims=dims,
        start=start,
        end=end,
        timeout=settings.FEED_HTTP_TIMEOUT_SECONDS if timeout is None else timeout,
        limit=lookback_bars * 60,
    )
    return price_at(dims, t)


def _stream_bounds(dims: FeedDims) -> tuple[datetime | None, datetime | None]:
    qs = records(dims).order_by()
    # Each is one probe of the (source, subject, kind, granularity, ts_event) unique index.
    oldest = qs.order_by("ts_event").values_list("ts_event", flat=True).first()
    newest = qs.order_by("-ts_event").values_list("ts_event", flat=True).first()
    return oldest, newest


def feed_summaries() -> list[dict]:
    """One dict per stream (configured or with ingestion state): counts, bounds, watermark, health.

    Cheap on a big tape: `record_count` is maintained on FeedIngestionState by ingest and retention
    (no COUNT(*)), oldest/newest are two index probes per stream. Records written behind ingest's
    back (e.g. test factories) are not in record_count.
    """
    from feeds.services import configured_dims

    states = {
        FeedDims(s.source, s.subject, s.kind, s.granularity): s
        for s in FeedIngestionState.objects.order_by("source", "subject", "kind", "granularity")
    }
    streams = list(states)
    streams += [dims for dims in configured_dims() if dims not in states]
    summaries = []
    for dims in streams:
        state = states.get(dims)
        oldest, newest = _stream_bounds(dims)
        summaries.append(
            {
                "source": dims.source,
                "subject": dims.subject,
                "kind": dims.kind,
                "granularity": dims.granularity,
                "record_count": state.record_count if state else 0,
                "oldest_ts": oldest,
                "newest_ts": newest,
                "watermark_ts": state.last_event_ts if state else None,
                "watermark_updated_at": state.updated_at if state else None,
                "last_polled_at": state.last_polled_at if state else None,
                "last_error": state.last_error if state else "",
            }
        )
    return summaries
