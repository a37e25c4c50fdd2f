"""Binance spot through python-binance: klines for candles, the symbol ticker for ticks.

The client is built with `ping=False` (no network call at start-up). `BINANCE_API_URL` replaces the
REST base (e.g. `http://127.0.0.1:8080/api`), which is how tests point it at a local server.
Only closed candles are returned: a bar whose close time is still in the future is dropped.

Stream mode: python-binance's WebSocket streams (kline streams for candles, trade streams for
ticks) on one combined connection; `BINANCE_STREAM_URL` replaces its `STREAM_URL`.
"""

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import requests
from binance.async_client import AsyncClient
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException
from binance.ws.streams import BinanceSocketManager
from django.conf import settings
from django.utils import timezone

from feeds.dims import FeedDims, NormalizedRecord, granularity_seconds
from feeds.providers.base import (
    BAD_TIMESTAMP,
    CONNECTED,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    RecordRejected,
    from_epoch,
    parse_page,
    request_timeout,
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
STREAM_POLL_SECONDS = 0.25  # the reader wakes this often (stop flag, idle clock, finished trade buckets)
STREAM_QUEUE_SIZE = 10_000  # python-binance's own message queue (its default of 100 ends the socket when full)


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
            requests_params={"timeout": request_timeout()},
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

    # --- stream: python-binance WebSocket streams ---------------------------------------------------
    def stream(self, streams: list[FeedDims], *, idle_seconds: float, stop: Any) -> Iterator[Any]:
        """One combined WebSocket (`/stream?streams=btcusdt@kline_1m/btcusdt@trade/...`) for all streams.

        Candles: a bar is stored only when the stream marks it closed (`"x": true`); forming updates
        are dropped. Ticks: trades are sampled to the last trade of each granularity bucket, stamped
        with its own trade time and released once the bucket is over (no look-ahead, one row per
        bucket instead of one per trade).

        python-binance runs on asyncio: this generator drives its own event loop in the calling
        thread. Its reconnecting socket is not trusted to recover (it misses a silent connection,
        gives up after 5 reconnects, stops when its queue fills): any error message it reports ends
        this connection, and the caller reconnects (and back-fills) itself.
        """
        routes: dict[str, list[FeedDims]] = {}
        for dims in streams:
            routes.setdefault(stream_name(dims), []).append(dims)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # python-binance looks its loop up with get_event_loop()
        session = _BinanceStreamSession(list(routes), idle_seconds=idle_seconds)
        sampler = TradeSampler()
        try:
            loop.run_until_complete(session.open())
            yield CONNECTED
            while not stop.is_set():
                try:
                    message = loop.run_until_complete(session.next_message())
                except ProviderError:
                    yield sampler.flush()  # the trades held so far are real prices: keep them
                    raise
                records = self._streamed(routes, message, sampler) if message is not None else []
                records += sampler.finished(now_ms=int(time.time() * 1000))
                if records:
                    yield records
            yield sampler.flush()
        finally:
            try:
                loop.run_until_complete(session.close())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def _streamed(self, routes: dict[str, list[FeedDims]], message: dict, sampler: "TradeSampler") -> list:
        name, data = message.get("stream"), message.get("data")
        records: list[NormalizedRecord] = []
        for dims in routes.get(name, []) if isinstance(name, str) else []:
            if dims.kind == "candle":
                records += parse_page([data], lambda item, d=dims: self._streamed_kline(d, item), source=self.source)
            else:
                trades = parse_page([data], lambda item, d=dims: self._streamed_trade(d, item), source=self.source)
                records += [r for trade in trades for r in sampler.add(trade)]
        return records

    def _streamed_kline(self, dims: FeedDims, item: Any) -> NormalizedRecord | None:
        kline = item.get("k") if isinstance(item, dict) else None
        if not isinstance(kline, dict):
            raise RecordRejected(f"kline event without a 'k' object: {item!r}")
        if kline.get("x") is not True:
            return None  # the bar is still forming: never stored
        row = [kline.get(key) for key in ("t", "o", "h", "l", "c", "v", "T", "q", "n")]
        return self._parse_kline(dims, row)

    def _streamed_trade(self, dims: FeedDims, item: Any) -> NormalizedRecord:
        if not isinstance(item, dict):
            raise RecordRejected(f"trade event is not an object: {item!r}")
        at = item.get("T")
        if isinstance(at, bool) or not isinstance(at, int):
            raise RecordRejected(f"trade time is not an integer: {at!r}", BAD_TIMESTAMP)
        ts_event = from_epoch(at // 1000) + timedelta(milliseconds=at % 1000)
        trade_id = item.get("t")
        meta = {"trade_id": trade_id} if isinstance(trade_id, int) and not isinstance(trade_id, bool) else {}
        return NormalizedRecord(
            self.source, dims.subject, "tick", dims.granularity, ts_event, {"price": item.get("p")}, meta
        )


def stream_name(dims: FeedDims) -> str:
    """The Binance stream of a tape stream: `btcusdt@kline_1m` for candles, `btcusdt@trade` for ticks."""
    symbol = symbol_for(dims.subject).lower()
    return f"{symbol}@kline_{interval_for(dims.granularity)}" if dims.kind == "candle" else f"{symbol}@trade"


class TradeSampler:
    """Keeps the last trade of each granularity bucket per stream; releases it once the bucket is over."""

    def __init__(self) -> None:
        self.pending: dict[FeedDims, tuple[int, NormalizedRecord]] = {}

    @staticmethod
    def _bucket(record: NormalizedRecord) -> int:
        return int(record.ts_event.timestamp()) // granularity_seconds(record.granularity)

    def add(self, trade: NormalizedRecord) -> list[NormalizedRecord]:
        bucket = self._bucket(trade)
        held = self.pending.get(trade.dims)
        if held is not None and held[0] > bucket:
            return []  # older than what is held (out of order): that bucket is already released
        self.pending[trade.dims] = (bucket, trade)
        if held is not None and held[0] < bucket:
            return [held[1]]
        return []

    def finished(self, *, now_ms: int) -> list[NormalizedRecord]:
        """Held trades whose bucket has ended by `now_ms` (a quiet market still gets its last price)."""
        done = [
            dims
            for dims, (bucket, record) in self.pending.items()
            if (bucket + 1) * granularity_seconds(record.granularity) * 1000 <= now_ms
        ]
        return [self.pending.pop(dims)[1] for dims in done]

    def flush(self) -> list[NormalizedRecord]:
        """Everything held (the connection is closing): each is a real trade at its own time."""
        held = [record for _, record in self.pending.values()]
        self.pending.clear()
        return held


class _BinanceStreamSession:
    """python-binance's combined socket, read with our own idle clock; every failure is a ProviderUnavailable."""

    def __init__(self, names: list[str], *, idle_seconds: float) -> None:
        self.names = names
        self.idle_seconds = idle_seconds
        self.client: AsyncClient | None = None
        self.socket = None
        self.last_message = time.monotonic()

    async def open(self) -> None:
        self.client = AsyncClient(settings.BINANCE_API_KEY or None, settings.BINANCE_API_SECRET or None)
        manager = BinanceSocketManager(self.client, max_queue_size=STREAM_QUEUE_SIZE)
        if settings.BINANCE_STREAM_URL:
            # An instance attribute, read when a socket is created (python-binance takes no URL parameter).
            manager.STREAM_URL = settings.BINANCE_STREAM_URL.rstrip("/") + "/"
        self.socket = manager.multiplex_socket(self.names)
        self.socket.TIMEOUT = 1  # its read loop wakes once a second, so closing it is quick
        try:
            await asyncio.wait_for(self.socket.connect(), timeout=settings.FEED_HTTP_TIMEOUT_SECONDS)
        except Exception as exc:
            raise ProviderUnavailable(f"binance stream: cannot connect: {type(exc).__name__}: {exc}") from exc
        self.last_message = time.monotonic()

    async def next_message(self) -> dict | None:
        """The next message, or None after STREAM_POLL_SECONDS without one; raises when idle too long."""
        try:
            message = await asyncio.wait_for(self.socket.recv(), timeout=STREAM_POLL_SECONDS)
        except TimeoutError:
            if time.monotonic() - self.last_message > self.idle_seconds:
                raise ProviderUnavailable(f"binance stream: idle for {self.idle_seconds:g}s") from None
            return None
        except Exception as exc:  # ReadLoopClosed: python-binance gave up on the socket
            raise ProviderUnavailable(f"binance stream: {type(exc).__name__}: {exc}") from exc
        if isinstance(message, dict) and message.get("e") == "error":
            raise ProviderUnavailable(f"binance stream: {message.get('type')}: {message.get('m')}")
        self.last_message = time.monotonic()
        return message if isinstance(message, dict) else None

    async def close(self) -> None:
        """Close the socket and cancel python-binance's read loop (its own close can wait on a reconnect)."""
        if self.socket is not None and self.socket.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.socket.ws.close(), timeout=1)
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=2)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close_connection()
