"""Stream mode with Pyth: Hermes server-sent events from a local server on loopback (no network).

The server (tests/feeds/stream_servers.py) speaks SSE with the recorded `latest` body shape, and
serves `latest` and the UDF history from the same timeline, so a gap can be back-filled."""

import json
import queue
import signal
import threading
import time

import pytest

from coordinator_site.models import WorkerHeartbeat
from feeds.dims import FeedDims, NormalizedRecord
from feeds.models import FeedIngestionState, FeedRecord
from feeds.providers import ProviderConfigError
from feeds.providers.base import CONNECTED, ProviderUnavailable, from_epoch, sse_events
from feeds.providers.pyth import PythProvider, feed_id
from feeds.selectors import is_streamed, stream_cadence
from feeds.services import ingest_records
from feeds.streaming import StreamConnection, StreamEvent, StreamIngestor, reconnect_delay, split_streams
from tests.e2e.processes import start, stop, wait_for
from tests.feeds.helpers import BTC_FEED_ID
from tests.feeds.stream_servers import HermesServer, Session, price_of

TICK = FeedDims("pyth", "BTC", "tick", "1s")


@pytest.fixture
def streaming(settings):
    settings.PYTH_API_KEY = "test-key"
    settings.PYTH_HISTORY_TOKEN = ""
    settings.FEED_MODE = "stream"
    settings.FEED_STREAM_IDLE_SECONDS = 1.0
    settings.FEED_STREAM_RECONNECT_MAX_SECONDS = 0.2
    settings.FEED_POLL_SECONDS = 3600  # the fallback poll never back-fills on its own here: only reconnects do
    settings.FEED_BACKFILL_MINUTES = 1
    settings.FEED_HTTP_TIMEOUT_SECONDS = 5
    return settings


def point_at(settings, server: HermesServer) -> None:
    settings.PYTH_HERMES_URL = server.url
    settings.PYTH_HISTORY_URL = f"{server.url}/udf"


def base_second() -> int:
    return int(time.time()) - 120


def seed(second: int) -> None:
    """The stream's watermark before streaming starts."""
    values = {"price": price_of(second), "conf": 1.0}
    ingest_records([NormalizedRecord("pyth", "BTC", "tick", "1s", _ts(second), values, {})])


def _ts(second: int):
    return from_epoch(second)


def stored_seconds() -> list[int]:
    records = FeedRecord.objects.filter(source="pyth").order_by("ts_event")
    return [int(t.timestamp()) for t in records.values_list("ts_event", flat=True)]


def run_until(ingestor: StreamIngestor, done, *, timeout: float = 45.0) -> tuple[bool, list[str], dict]:
    """Step the ingestor (as run_feed does) until `done()`; returns (done, errors, summed counts)."""
    errors: list[str] = []
    counts: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = ingestor.step(wait=0.1)
        errors += step.errors
        for key, value in step.counts.items():
            counts[key] = counts.get(key, 0) + value
        if done():
            return True, errors, counts
    return False, errors, counts


@pytest.fixture
def ingestor_for():
    started = []

    def make(streams):
        provider = PythProvider()
        ingestor = StreamIngestor(streams=streams, provider_for=lambda source: provider)
        ingestor.start()
        started.append(ingestor)
        return ingestor

    yield make
    for ingestor in started:
        ingestor.stop()


# --- the whole path -------------------------------------------------------------------------


@pytest.mark.django_db
def test_disconnect_mid_stream_reconnects_and_back_fills_the_gap_without_duplicates(streaming, ingestor_for):
    b = base_second()
    seed(b - 1)
    first_part_stored = threading.Event()
    sessions = [
        # b..b+4 streamed; the server drops the connection; b+5..b+9 are published while nobody listens.
        Session(send=list(range(b, b + 5)), hold=first_part_stored, offline=list(range(b + 5, b + 10))),
        Session(send=list(range(b + 10, b + 13)), then="silent"),
    ]
    with HermesServer(sessions) as server:
        point_at(streaming, server)
        ingestor = ingestor_for([TICK])
        done, errors, _ = run_until(ingestor, lambda: set(stored_seconds()) >= set(range(b - 1, b + 5)))
        assert done, (sorted(set(stored_seconds())), errors)
        assert not set(stored_seconds()) & set(range(b + 5, b + 13))
        first_part_stored.set()
        expected = set(range(b - 1, b + 13))
        done, more_errors, _ = run_until(ingestor, lambda: set(stored_seconds()) >= expected)
        errors += more_errors
        assert done, (sorted(set(stored_seconds())), errors)
        seconds = stored_seconds()
        assert len(seconds) == len(set(seconds)) == len(expected)  # no duplicates, nothing beyond the timeline
        assert server.connections >= 2
        # After the reconnect, history was asked from just after the watermark the first connection left
        # (b + 4; one bar earlier because history ticks are bar closes stamped at the bar's end).
        assert b + 3 in [r["from"] for r in server.history_requests]
    rows = {int(r.ts_event.timestamp()): r for r in FeedRecord.objects.filter(source="pyth")}
    assert all(rows[s].values["price"] == pytest.approx(price_of(s)) for s in expected)
    assert {s for s in range(b + 5, b + 10) if rows[s].meta == {"from": "udf-history"}} == set(range(b + 5, b + 10))
    assert rows[b + 11].meta["slot"] == 218765432  # streamed records carry Hermes metadata
    assert rows[b + 4].meta["slot"] == 218765432  # the watermark record was not re-fetched and overwritten
    assert any("closed by the server" in e for e in errors)
    state = FeedIngestionState.objects.get(**TICK.as_filter())
    assert state.last_event_ts == _ts(b + 12)
    assert state.record_count == len(expected)


@pytest.mark.django_db
def test_a_silent_connection_is_detected_by_the_idle_timeout_and_reconnected(streaming, ingestor_for):
    b = base_second()
    seed(b - 1)
    sessions = [
        Session(send=[b, b + 1, b + 2], then="silent", offline=[b + 3, b + 4]),
        Session(send=[b + 5, b + 6], then="silent"),
    ]
    with HermesServer(sessions) as server:
        point_at(streaming, server)
        ingestor = ingestor_for([TICK])
        started = time.monotonic()
        expected = set(range(b - 1, b + 7))
        done, errors, _ = run_until(ingestor, lambda: set(stored_seconds()) >= expected)
        assert done, (sorted(set(stored_seconds())), errors)
        assert server.connections >= 2
    assert any("idle for 1s" in e for e in errors), errors
    assert time.monotonic() - started < 30
    assert sorted(stored_seconds()) == sorted(expected)


@pytest.mark.django_db
def test_streamed_records_are_stored_in_small_batches_not_one_transaction_per_message(streaming, ingestor_for):
    streaming.FEED_STREAM_BATCH_MS = 200
    streaming.FEED_STREAM_LINGER_MS = 100  # a loaded machine may pause the 1 ms sender: still one batch
    b = base_second()
    seed(b - 1)
    with HermesServer([Session(send=list(range(b, b + 40)), then="silent")], interval=0.001) as server:
        point_at(streaming, server)
        ingestor = ingestor_for([TICK])
        counts: dict[str, int] = {}
        deadline = time.monotonic() + 45
        while counts.get("streamed", 0) < 40 and time.monotonic() < deadline:
            for key, value in ingestor.step(wait=0.1).counts.items():
                counts[key] = counts.get(key, 0) + value
    assert sorted(stored_seconds()) == list(range(b - 1, b + 40))
    assert counts["streamed"] == 40  # every message went through a batch
    assert 1 <= counts["batches"] <= 8, counts  # 40 messages in a few transactions


@pytest.mark.django_db
def test_a_lone_record_is_stored_after_the_linger_not_the_whole_batch_delay_and_a_burst_shares_a_batch(streaming):
    streaming.FEED_STREAM_BATCH_MS = 5000
    streaming.FEED_STREAM_LINGER_MS = 5
    b = base_second()
    ingestor = StreamIngestor(streams=[TICK], provider_for=lambda source: PythProvider())
    ingestor.connections = []  # no thread: this test plays the connection's events itself
    ingestor.live.add(TICK)  # connected and back-filled: nothing to poll

    def event(second: int) -> StreamEvent:
        values = {"price": price_of(second), "conf": 1.0}
        return StreamEvent("records", (TICK,), [NormalizedRecord("pyth", "BTC", "tick", "1s", _ts(second), values, {})])

    ingestor.events.put(event(b))
    started = time.monotonic()
    lone = ingestor.step(wait=1.0)
    assert time.monotonic() - started < 2.5  # the batch delay (5 s) was not waited out
    assert (lone.counts["streamed"], lone.counts["batches"]) == (1, 1)
    for second in (b + 1, b + 2, b + 3):
        ingestor.events.put(event(second))
    burst = ingestor.step(wait=1.0)
    assert (burst.counts["streamed"], burst.counts["batches"]) == (3, 1)
    assert stored_seconds() == [b, b + 1, b + 2, b + 3]


@pytest.mark.django_db
def test_a_bad_update_in_a_streamed_event_is_rejected_alone(streaming):
    provider = PythProvider()
    wanted = {BTC_FEED_ID: TICK}
    body = HermesServer([]).body([1_800_000_000, 1_800_000_001])
    body["parsed"][0]["price"]["price"] = "not-a-number"
    records = provider._streamed_event(wanted, json.dumps(body))
    assert [int(r.ts_event.timestamp()) for r in records] == [1_800_000_001]
    assert provider._streamed_event(wanted, "{not json") == []


# --- pieces ---------------------------------------------------------------------------------


def test_sse_events_joins_data_lines_and_handles_crlf_comments_and_split_chunks():
    chunks = iter([b": keep-alive\r\n", b'data:{"a"', b":1}\r\n\r\nevent: x\ndata: one\ndata: two\n", b"\n", b""])
    assert list(sse_events(lambda: next(chunks))) == ['{"a":1}', "one\ntwo"]


def test_reconnect_delay_doubles_up_to_the_cap_with_jitter(settings):
    settings.FEED_STREAM_RECONNECT_MAX_SECONDS = 8
    delays = [reconnect_delay(n) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(4 <= d <= 8 for d in delays[5:])
    assert len({round(reconnect_delay(3), 6) for _ in range(20)}) > 1  # jittered


def test_cadence_is_the_granularity_when_streamed_and_the_poll_interval_when_polled(settings):
    settings.FEED_POLL_SECONDS = 5
    settings.FEED_MODE = "stream"
    assert is_streamed(TICK)
    assert stream_cadence(TICK).total_seconds() == 1
    assert not is_streamed(FeedDims("pyth", "BTC", "candle", "1m"))  # Hermes streams prices, not bars
    assert stream_cadence(FeedDims("synthetic", "BTC", "tick", "1s")).total_seconds() == 5
    settings.FEED_MODE = "poll"
    assert not is_streamed(TICK)
    assert stream_cadence(TICK).total_seconds() == 5


def test_stream_refused_with_401_is_a_config_error_and_never_connects(streaming):
    with HermesServer([]) as server:
        streaming.PYTH_HERMES_URL = server.url
        streaming.PYTH_API_KEY = "wrong"
        with pytest.raises(ProviderConfigError, match="401"):
            list(PythProvider().stream([TICK], idle_seconds=1, stop=threading.Event()))
        assert server.connections == 0


def test_idle_stream_raises_provider_unavailable_after_the_idle_timeout(streaming):
    with HermesServer([Session(send=[1_800_000_000], then="silent")]) as server:
        streaming.PYTH_HERMES_URL = server.url
        items = PythProvider().stream([TICK], idle_seconds=0.5, stop=threading.Event())
        assert next(items) == CONNECTED
        [record] = next(items)
        assert record.values["price"] == pytest.approx(price_of(1_800_000_000))
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="idle"):
            next(items)
        assert 0.3 < time.monotonic() - started < 10


# --- run_feed as a real process ---------------------------------------------------------------


def test_run_feed_in_stream_mode_stores_streamed_records_and_stops_cleanly_on_sigterm(manage_py, worker_env):
    b = int(time.time()) - 30
    with HermesServer([Session(send=list(range(b, b + 20)), then="silent")], interval=0.05) as server:
        env = {
            **worker_env,
            "FEED_SOURCE": "pyth",
            "FEED_SUBJECTS": "BTC",
            "FEED_KIND": "tick",
            "FEED_GRANULARITY": "1s",
            "FEED_MODE": "stream",
            "FEED_BACKFILL_MINUTES": "1",
            "FEED_STREAM_IDLE_SECONDS": "5",
            "PYTH_API_KEY": "test-key",
            "PYTH_HERMES_URL": server.url,
            "PYTH_HISTORY_URL": f"{server.url}/udf",
            "WORKER_HEARTBEAT_SECONDS": "0.5",
        }
        process, output = start([*manage_py, "run_feed"], env)
        try:
            streamed = FeedRecord.objects.filter(source="pyth", meta__slot=218765432)
            assert wait_for(lambda: streamed.filter(ts_event=_ts(b + 19)).exists(), timeout=90), output.text
            assert wait_for(lambda: server.connections >= 1, timeout=5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, output.text
        finally:
            stop(process)
    assert output.contains("(stream)"), output.text
    assert sorted(int(t.timestamp()) for t in streamed.values_list("ts_event", flat=True)) == list(range(b, b + 20))
    beat = WorkerHeartbeat.objects.get(name="run_feed")
    assert beat.stopped_at is not None
    assert FeedRecord.objects.filter(source="pyth").count() == len(set(stored_seconds()))


@pytest.mark.django_db
def test_a_poll_while_the_connection_is_down_does_not_hide_the_gap_from_the_reconnect_back_fill(streaming):
    """A restarted worker polls `latest` (b+9) before its connection opens: the back-fill after the connect
    still starts from the watermark the stream had when it went down (b+2), not from b+9."""
    b = base_second()
    seed(b + 2)
    with HermesServer([]) as server:
        point_at(streaming, server)
        server.published.update(range(b, b + 10))
        provider = PythProvider()
        ingestor = StreamIngestor(streams=[TICK], provider_for=lambda source: provider)
        ingestor.connections = []  # no thread: this test plays the connection's events itself
        ingestor.start()
        ingestor.events.put(StreamEvent("connected", (TICK,)))
        first = ingestor.step(wait=0)
        assert stored_seconds() == [b + 2, b + 9]  # the fallback poll's latest; then the connect was seen
        assert first.found
        assert TICK in ingestor.gaps
        ingestor.step(wait=0)
    assert sorted(stored_seconds()) == list(range(b + 2, b + 10))
    assert not ingestor.gaps


@pytest.mark.django_db
def test_a_bad_update_on_the_stream_is_rejected_alone_and_shown_on_the_stream(streaming, ingestor_for):
    b = base_second()
    seed(b - 1)
    with HermesServer([]) as server:
        bad = server.body([b + 1])
        bad["parsed"][0]["price"]["price"] = "NaN-ish"
        server.sessions = [Session(send=[b, bad, b + 2], then="silent")]
        point_at(streaming, server)
        ingestor = ingestor_for([TICK])
        done, errors, counts = run_until(ingestor, lambda: {b, b + 2} <= set(stored_seconds()))
        assert done, errors
        done, _, more = run_until(ingestor, lambda: "NOT_A_NUMBER" in FeedIngestionState.objects.get().last_error)
        assert done
    assert b + 1 not in stored_seconds()
    assert counts.get("rejected", 0) + more.get("rejected", 0) == 1
    state = FeedIngestionState.objects.get(**TICK.as_filter())
    assert state.consecutive_errors == 0  # a rejected record is not a stream error


@pytest.mark.django_db
def test_a_refused_stream_waits_as_long_as_the_servers_retry_after(streaming):
    queue_ = queue.Queue()
    b = base_second()
    with HermesServer(
        [Session(send=[], refuse=(429, {"Retry-After": "2"})), Session(send=[b], then="silent")]
    ) as server:
        point_at(streaming, server)
        connection = StreamConnection(provider=PythProvider(), streams=[TICK], events=queue_)
        started = time.monotonic()
        connection.start()
        try:
            first = queue_.get(timeout=20)
            second = queue_.get(timeout=20)
            waited = time.monotonic() - started
        finally:
            connection.stop()
    assert first.kind == "disconnected"
    assert "429" in first.detail
    assert second.kind == "connected"
    assert waited >= 2  # not the 0.2 s reconnect cap: the server said 2 s


def test_one_connection_serves_several_subjects_and_routes_each_update_to_its_stream(streaming):
    eth = FeedDims("pyth", "ETH", "tick", "1s")
    provider = PythProvider()
    wanted = {feed_id("BTC"): TICK, feed_id("ETH"): eth}
    body = HermesServer([]).body([1_800_000_000, 1_800_000_001])
    body["parsed"][1]["id"] = feed_id("ETH")
    body["parsed"].append({**body["parsed"][0], "id": "ab" * 32})  # not asked for: rejected
    records = provider._streamed_event(wanted, json.dumps(body))
    assert [(r.subject, int(r.ts_event.timestamp())) for r in records] == [
        ("BTC", 1_800_000_000),
        ("ETH", 1_800_000_001),
    ]


def test_split_streams_polls_what_cannot_stream_and_everything_on_a_one_shot_pass(settings):
    candle = FeedDims("pyth", "BTC", "candle", "1m")
    synthetic = FeedDims("synthetic", "BTC", "tick", "1s")
    settings.FEED_MODE = "stream"
    assert split_streams([TICK, candle, synthetic]) == ([TICK], [candle, synthetic])
    assert split_streams([TICK, candle], once=True) == ([], [TICK, candle])
    settings.FEED_MODE = "poll"
    assert split_streams([TICK]) == ([], [TICK])
    settings.FEED_MODE = "push"
    with pytest.raises(ValueError, match="FEED_MODE='push'"):
        split_streams([TICK])
