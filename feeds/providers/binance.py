"""Binance spot through python-binance: klines for candles, the symbol ticker for ticks.

The client is built with `ping=False` (no network call at start-up). `BINANCE_API_URL` replaces the
REST base (e.g. `http://127.0.0.1:8080/api`), which is how tests point it at a local server.
Only closed candles are returned: a bar whose close time is still in the future is dropped.
"""

from datetime import datetime, timedelta

import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException
from django.conf import settings
from django.utils import timezone

from feeds.dims import FeedDims, NormalizedRecord, granularity_seconds
from feeds.providers.base import (
    BAD_TIMESTAMP,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    RecordRejected,
    from_epoch,
    parse_page,
    retry_after_seconds,
)

# Each granularity is its real Binance interval (1s exists on spot; never served as 1m).
INTERVALS = {
    "1s": Client.KLINE_INTERVAL_1SECOND,
    "1m": Client.KLINE_INTERVAL_1MINUTE,
    "5m": Client.KLINE_INTERVAL_5MINUTE,
    "15m": Client.KLINE_INTERVAL_15MINUTE,
    "1h": Client.KLINE_INTERVAL_1HOUR,
    "4h": Client.KLINE_INTERVAL_4HOUR,
    "1d": Client.KLINE_INTERVAL_1DAY,
}
MAX_KLINES = 1000  # Binance's per-request cap
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "EUR")


def symbol_for(subject: str) -> str:
    """BTC -> BTCUSDT; a subject that already names a pair (ETHBTC, BTCUSDC) is used as is."""
    subject = subject.upper()
    return subject if len(subject) > 4 and subject.endswith(QUOTES) else f"{subject}USDT"


def interval_for(granularity: str) -> str:
    try:
        return INTERVALS[granularity]
    except KeyError:
        raise ProviderConfigError(f"Binance has no interval for granularity {granularity!r}") from None


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class BinanceProvider:
    source = "binance"

    def __init__(self) -> None:
        self.client = Client(
            settings.BINANCE_API_KEY or None,
            settings.BINANCE_API_SECRET or None,
            requests_params={"timeout": settings.FEED_HTTP_TIMEOUT_SECONDS},
            ping=False,
        )
        if settings.BINANCE_API_URL:
            self.client.API_URL = settings.BINANCE_API_URL.rstrip("/")

    def _call(self, method, **params):
        """Call the client, mapping its failures onto the provider errors the worker understands."""
        try:
            return method(**params)
        except BinanceAPIException as exc:
            if exc.status_code in (418, 429):  # 418: IP banned after ignoring 429s
                wait = retry_after_seconds(getattr(exc.response, "headers", None))
                raise ProviderRateLimited(
                    f"binance: HTTP {exc.status_code}, retry after {wait:g}s", retry_after=wait
                ) from exc
            if exc.status_code >= 500:
                raise ProviderUnavailable(f"binance: HTTP {exc.status_code}: {exc.message}") from exc
            raise ProviderError(f"binance: HTTP {exc.status_code} code {exc.code}: {exc.message}") from exc
        except BinanceRequestException as exc:
            raise ProviderUnavailable(f"binance: malformed response: {exc.message[:200]}") from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"binance: {type(exc).__name__}: {exc}") from exc

    def _klines(self, dims: FeedDims, **params) -> list[list]:
        body = self._call(
            self.client.get_klines, symbol=symbol_for(dims.subject), interval=interval_for(dims.granularity), **params
        )
        if not isinstance(body, list):
            raise ProviderUnavailable(f"binance klines: unexpected body {str(body)[:200]!r}")
        return body

    def fetch(self, dims: FeedDims, start: datetime, end: datetime, limit: int) -> list[NormalizedRecord]:
        bar = timedelta(seconds=granularity_seconds(dims.granularity))
        # Ticks from history are bar closes stamped at the bar's end, so ask for bars one bar earlier.
        shift = bar if dims.kind == "tick" else timedelta(0)
        rows = self._klines(
            dims, startTime=ms(start - shift), endTime=ms(end - shift) - 1, limit=max(1, min(limit, MAX_KLINES))
        )
        records = self._closed(dims, rows)
        return [r for r in records if start <= r.ts_event < end][:limit]

    def latest(self, dims: FeedDims) -> list[NormalizedRecord]:
        if dims.kind == "candle":
            # The newest kline is usually still forming; ask for two and keep the closed one.
            return self._closed(dims, self._klines(dims, limit=2))[-1:]
        body = self._call(self.client.get_symbol_ticker, symbol=symbol_for(dims.subject))
        now = timezone.now().replace(microsecond=0)
        return parse_page([body], lambda item: self._parse_ticker(dims, item, now), source=self.source)

    def _closed(self, dims: FeedDims, rows: list) -> list[NormalizedRecord]:
        now_ms = ms(timezone.now())
        closed = []
        for row in rows:
            # kline[6] is the close time (open + interval - 1 ms): a bar is closed once now is past it.
            if isinstance(row, list) and len(row) > 6 and isinstance(row[6], int) and row[6] >= now_ms:
                continue
            closed.append(row)
        records = parse_page(closed, lambda row: self._parse_kline(dims, row), source=self.source)
        records.sort(key=lambda r: r.ts_event)
        return records

    def _parse_kline(self, dims: FeedDims, row: list) -> NormalizedRecord:
        if not isinstance(row, list) or len(row) < 7:
            raise RecordRejected(f"kline is not a 12-field array: {row!r}")
        open_ms = row[0]
        if isinstance(open_ms, bool) or not isinstance(open_ms, int):
            raise RecordRejected(f"kline open time is not an integer: {open_ms!r}", BAD_TIMESTAMP)
        opened = from_epoch(open_ms / 1000)
        if dims.kind == "tick":
            ts_event, values = from_epoch((row[6] + 1) / 1000), {"price": row[4]}
        else:
            ts_event = opened
            values = {"open": row[1], "high": row[2], "low": row[3], "close": row[4], "volume": row[5]}
        meta = {"trades": row[8]} if len(row) > 8 and isinstance(row[8], int) else {}
        return NormalizedRecord(self.source, dims.subject, dims.kind, dims.granularity, ts_event, values, meta)

    def _parse_ticker(self, dims: FeedDims, item: dict, now: datetime) -> NormalizedRecord:
        if not isinstance(item, dict):
            raise RecordRejected(f"ticker is not an object: {item!r}")
        return NormalizedRecord(
            self.source,
            dims.subject,
            "tick",
            dims.granularity,
            now,
            {"price": item.get("price")},
            {"symbol": item.get("symbol")},
        )
