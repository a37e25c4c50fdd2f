"""Stream mode with Binance: python-binance's WebSocket client against a local WebSocket server.

The client is pointed at the server through BINANCE_STREAM_URL (python-binance's STREAM_URL) and the
REST side through BINANCE_API_URL; both serve one timeline (tests/feeds/stream_servers.py)."""

import signal
import threading
import time
from datetime import timedelta

import pytest

from feeds.dims import FeedDims, NormalizedRecord
from feeds.models import FeedIngestionState, FeedRecord
from feeds.providers import ProviderUnavailable
from feeds.providers.base import CONNECTED, from_epoch
from feeds.providers.binance import BinanceProvider, TradeSampler, stream_name
from feeds.services import ingest_records
from feeds.streaming import StreamIngestor
from tests.e2e.processes import free_port, start, stop, wait_for
from tests.feeds.stream_servers import BinanceServer, WsSession, price_of

CANDLE = FeedDims("binance", "BTC", "candle", "1s")
TICK = FeedDims("binance", "BTC", "tick", "1s")


@pytest.fixture
def streaming(settings):
    settings.FEED_MODE = "stream"
    settings.FEED_STREAM_IDLE_SECONDS = 1.5
    settings.FEED_STREAM_RECONNECT_MAX_SECONDS = 0.2
    settings.FEED_POLL_SECONDS = 3600  # the fallback poll never back-fills on its own here: only reconnects do
    settings.FEED_BACKFILL_MINUTES = 1
    settings.FEED_HTTP_TIMEOUT_SECONDS = 5
    return settings


def point_at(settings, server: BinanceServer) -> None:
    settings.BINANCE_STREAM_URL = server.stream_url
    settings.BINANCE_API_URL = server.api_url


def seed(second: int) -> None:
    p = price_of(second)
    values = {"open": p, "high": p + 1, "low": p - 1, "close": p, "volume": 1.5}
    ingest_records([NormalizedRecord(*CANDLE.__dict__.values(), from_epoch(second), values, {})])


def bars() -> dict[int, FeedRecord]:
    return {int(r.ts_event.timestamp()): r for r in FeedRecord.objects.filter(**CANDLE.as_filter())}


def run_until(ingestor: StreamIngestor, done, *, timeout: float = 60.0) -> tuple[bool, list[str]]:
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        errors += ingestor.step(wait=0.1).errors
        if done():
            return True, errors
    return False, errors


@pytest.fixture
def ingestor_for():
    started = []

    def make(streams):
        provider = BinanceProvider()
        ingestor = StreamIngestor(streams=streams, provider_for=lambda source: provider)
        ingestor.start()
        started.append(ingestor)
        return ingestor

    yield make
    for ingestor in started:
        ingestor.stop(timeout=5)


def closed_and_forming(server: BinanceServer, seconds) -> list[dict]:
    """For each bar: a forming update with a different close first (never stored), then the closed bar."""
    messages = []
    for s in seconds:
        messages.append(server.kline_message(s, closed=False, close=price_of(s) + 0.5))
        messages.append(server.kline_message(s, closed=True))
    return messages


@pytest.mark.django_db
def test_candles_disconnect_mid_stream_reconnect_and_the_gap_is_back_filled_without_forming_bars(
    streaming, ingestor_for
):
    b = int(time.time()) - 120
    seed(b - 1)
    first_part_stored = threading.Event()
    with BinanceServer([]) as server:
        server.sessions = [
            WsSession(
                send=closed_and_forming(server, range(b, b + 5)),
                hold=first_part_stored,
                offline=list(range(b + 5, b + 10)),
            ),
            WsSession(
                send=[*closed_and_forming(server, range(b + 10, b + 13)), server.kline_message(b + 13, closed=False)],
                then="silent",
            ),
        ]
        point_at(streaming, server)
        ingestor = ingestor_for([CANDLE])
        done, errors = run_until(ingestor, lambda: set(bars()) >= set(range(b - 1, b + 5)))
        assert done, (sorted(bars()), errors)
        assert not set(bars()) & set(range(b + 5, b + 14))
        first_part_stored.set()
        expected = set(range(b - 1, b + 13))
        done, more = run_until(ingestor, lambda: set(bars()) >= expected)
        errors += more
        assert done, (sorted(bars()), errors)
        assert server.connections >= 2
        assert server.paths[0] == "/stream?streams=btcusdt@kline_1s"
        # After the reconnect, REST history was asked from the bar after the watermark the first connection left.
        assert str((b + 5) * 1000) in [q.get("startTime") for q in server.kline_requests]
    stored = bars()
    assert set(stored) == expected  # no forming bar b+13, nothing twice
    assert FeedRecord.objects.filter(**CANDLE.as_filter()).count() == len(expected)
    for s in expected:  # the closed values, never the forming update's close (+0.5)
        assert stored[s].values["close"] == pytest.approx(price_of(s))
        assert stored[s].values["high"] == pytest.approx(price_of(s) + 1)
    # python-binance reports the close as ConnectionClosedOK or BinanceWebsocketClosed, whichever it sees first.
    assert any("ConnectionClosed" in e or "BinanceWebsocketClosed" in e for e in errors), errors
    assert FeedIngestionState.objects.get(**CANDLE.as_filter()).record_count == len(expected)


@pytest.mark.django_db
def test_a_silent_websocket_is_detected_by_the_idle_timeout_and_reconnected(streaming, ingestor_for):
    b = int(time.time()) - 120
    seed(b - 1)
    with BinanceServer([]) as server:
        server.sessions = [
            WsSession(send=closed_and_forming(server, range(b, b + 3)), then="silent", offline=[b + 3, b + 4]),
            WsSession(send=closed_and_forming(server, range(b + 5, b + 7)), then="silent"),
        ]
        point_at(streaming, server)
        ingestor = ingestor_for([CANDLE])
        expected = set(range(b - 1, b + 7))
        done, errors = run_until(ingestor, lambda: set(bars()) >= expected)
        assert done, (sorted(bars()), errors)
        assert server.connections >= 2
    assert any("idle for 1.5s" in e for e in errors), errors
    assert set(bars()) == expected


def test_trades_are_sampled_to_the_last_trade_of_each_second(streaming):
    """Real-time trades (4 a second for 3 seconds) on the trade stream: one tick per second, the last trade."""
    start_ms = int(time.time() * 1000) + 300
    trades = [(start_ms + i * 250, 68000.0 + i, 1000 + i) for i in range(12)]
    records: list[NormalizedRecord] = []
    with BinanceServer([WsSession(send=[], then="silent")]) as server:
        point_at(streaming, server)
        stop = threading.Event()
        items = BinanceProvider().stream([TICK], idle_seconds=60, stop=stop)
        try:
            assert next(items) == CONNECTED
            assert wait_for(lambda: server.paths, timeout=10) == ["/stream?streams=btcusdt@trade"]
            server.send_later([(at / 1000, server.trade_message(at, price, tid)) for at, price, tid in trades])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and {r.meta["trade_id"] for r in records} != expected_ids(trades):
                records += next(items)
            stop.set()
            for item in items:
                records += item
        finally:
            items.close()
    assert {r.meta["trade_id"] for r in records} == expected_ids(trades)
    buckets = [int(r.ts_event.timestamp()) for r in records]
    assert len(buckets) == len(set(buckets))  # one tick per second
    by_id = {trade_id: (at, price) for at, price, trade_id in trades}
    for r in records:
        at, price = by_id[r.meta["trade_id"]]
        assert r.ts_event == from_epoch(at // 1000) + timedelta(milliseconds=at % 1000)  # its own trade time
        assert r.values["price"] == pytest.approx(price)


def expected_ids(trades) -> set[int]:
    last = {}
    for at, _price, trade_id in trades:
        last[at // 1000] = trade_id
    return set(last.values())


# --- pieces ---------------------------------------------------------------------------------


def test_stream_names_use_the_real_interval_and_the_trade_stream():
    assert stream_name(CANDLE) == "btcusdt@kline_1s"
    assert stream_name(FeedDims("binance", "ETHBTC", "candle", "1h")) == "ethbtc@kline_1h"
    assert stream_name(TICK) == "btcusdt@trade"


def test_the_trade_sampler_releases_the_last_trade_of_a_bucket_once_it_is_over():
    def trade(ms: int) -> NormalizedRecord:
        return NormalizedRecord(*TICK.__dict__.values(), from_epoch(ms / 1000), {"price": 1.0}, {"ms": ms})

    sampler = TradeSampler()
    assert sampler.add(trade(10_100)) == []
    assert sampler.add(trade(10_900)) == []
    assert [r.meta["ms"] for r in sampler.add(trade(11_050))] == [10_900]  # the next second began
    assert sampler.add(trade(10_950)) == []  # late for a released second: dropped
    assert sampler.finished(now_ms=11_999) == []
    assert [r.meta["ms"] for r in sampler.finished(now_ms=12_000)] == [11_050]
    assert sampler.flush() == []


@pytest.mark.django_db
def test_a_stream_that_cannot_connect_is_a_provider_error(streaming, settings):
    settings.BINANCE_STREAM_URL = f"ws://127.0.0.1:{free_port()}/"
    items = BinanceProvider().stream([CANDLE], idle_seconds=1, stop=threading.Event())
    with pytest.raises(ProviderUnavailable, match="cannot connect"):
        next(items)


def test_run_feed_streams_binance_candles_and_stops_cleanly_on_sigterm(manage_py, worker_env):
    """The asyncio client runs in a thread of the worker; SIGTERM still ends the process promptly."""
    b = int(time.time()) - 60
    with BinanceServer([]) as server:
        server.sessions = [WsSession(send=closed_and_forming(server, range(b, b + 10)), then="silent")]
        env = {
            **worker_env,
            "FEED_SOURCE": "binance",
            "FEED_SUBJECTS": "BTC",
            "FEED_KIND": "candle",
            "FEED_GRANULARITY": "1s",
            "FEED_MODE": "stream",
            "FEED_BACKFILL_MINUTES": "1",
            "FEED_STREAM_IDLE_SECONDS": "5",
            "BINANCE_STREAM_URL": server.stream_url,
            "BINANCE_API_URL": server.api_url,
        }
        process, output = start([*manage_py, "run_feed"], env)
        try:
            assert wait_for(lambda: set(bars()) >= set(range(b, b + 10)), timeout=90), output.text
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, output.text
        finally:
            stop(process)
    assert output.contains("binance/BTC/candle/1s (stream)"), output.text
    stored = bars()
    assert all(stored[s].values["close"] == pytest.approx(price_of(s)) for s in range(b, b + 10))
    assert FeedRecord.objects.filter(**CANDLE.as_filter()).count() == len(stored)
